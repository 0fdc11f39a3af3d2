#include "core/model/decode_floor.h"

#include <algorithm>
#include <chrono>

namespace supra {

double median(std::vector<double> values) {
  TORCH_CHECK(!values.empty(), "median of nothing");
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

DecodeFloor measure_decode_floor(const CausalLM& model, int64_t batch, int sweeps) {
  torch::NoGradGuard no_grad;
  // Every matrix a step multiplies by: all 2-D parameters except the input embedding (a step gathers B of its rows),
  // which a tied model multiplies by once more as its LM head.
  std::vector<torch::Tensor> weights;
  for (const auto& item : model->named_parameters())
    if (item.value().dim() == 2 && item.key() != "model.embed_tokens.weight") weights.push_back(item.value());
  if (model->config().tie_word_embeddings) weights.push_back(model->lm_head_weight());
  DecodeFloor floor;
  floor.matrices = static_cast<int64_t>(weights.size());
  for (const auto& w : weights) floor.bytes += w.numel() * static_cast<int64_t>(w.element_size());
  std::vector<torch::Tensor> inputs;  // one per input width, random so no BLAS shortcut applies
  for (const auto& w : weights) inputs.push_back(torch::randn({batch, w.size(1)}, w.options()));
  const bool cuda = weights.front().is_cuda();
  auto sweep = [&] {
    torch::Tensor y;
    for (size_t i = 0; i < weights.size(); ++i) y = torch::linear(inputs[i], weights[i]);
    if (cuda) torch::cuda::synchronize();
  };
  sweep();
  for (int s = 0; s < sweeps; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    sweep();
    floor.sweep_seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return floor;
}

}  // namespace supra
