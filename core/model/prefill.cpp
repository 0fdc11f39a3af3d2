#include "core/model/prefill.h"

#include <algorithm>
#include <vector>

#include "core/model/decoder.h"

namespace supra {

torch::Tensor prefill(CausalLM& model, const torch::Tensor& ids, const torch::Tensor& real, InferenceCache& cache,
                      bool all_positions) {
  const int64_t T = ids.size(1);
  // Bounded K/V caches (transformers only): the first K columns in parallel, the rest one token at a time.
  const bool bounded = cache.kv.bounded() && !model->config().supra;
  const int64_t first = bounded ? std::min(T, cache.kv.size) : T;
  std::vector<torch::Tensor> parts{
      model->forward_cached(ids.narrow(1, 0, first), real.narrow(1, 0, first), cache, all_positions)};
  if (first == T) return parts.front();
  // The one-token steps go through the decode fast path when no padding is left (one host check); with padding in
  // these columns (a row shorter than T − K), through the model's forward with the mask.
  std::unique_ptr<Decoder> decoder;
  if (real.narrow(1, first, T - first).all().item<bool>()) decoder = std::make_unique<Decoder>(model, cache, T + 1);
  for (int64_t t = first; t < T; ++t) {
    auto logits = decoder ? decoder->step(ids.select(1, t))
                          : model->forward_cached(ids.narrow(1, t, 1), real.narrow(1, t, 1), cache, false);
    if (all_positions)
      parts.push_back(logits.unsqueeze(1));
    else
      parts.back() = std::move(logits);
  }
  return parts.size() == 1 ? parts.front() : torch::cat(parts, 1);
}

}  // namespace supra
