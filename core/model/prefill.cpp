#include "core/model/prefill.h"

#include <algorithm>
#include <vector>

namespace supra {

torch::Tensor prefill(CausalLM& model, const torch::Tensor& ids, const torch::Tensor& real, InferenceCache& cache,
                      bool all_positions) {
  const int64_t T = ids.size(1);
  // Bounded K/V caches (transformers only): the first K columns in parallel, the rest one token at a time.
  const bool bounded = cache.kv.bounded() && !model->config().supra;
  const int64_t first = bounded ? std::min(T, cache.kv.size) : T;
  std::vector<torch::Tensor> parts{
      model->forward_cached(ids.narrow(1, 0, first), real.narrow(1, 0, first), cache, all_positions)};
  for (int64_t t = first; t < T; ++t) {
    auto logits = model->forward_cached(ids.narrow(1, t, 1), real.narrow(1, t, 1), cache, all_positions);
    if (all_positions)
      parts.push_back(std::move(logits));
    else
      parts.back() = std::move(logits);
  }
  return parts.size() == 1 ? parts.front() : torch::cat(parts, 1);
}

}  // namespace supra
