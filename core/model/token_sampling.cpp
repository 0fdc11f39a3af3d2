#include "core/model/token_sampling.h"

#include <limits>

namespace supra {

torch::Tensor sample_next(torch::Tensor logits, const SamplingOptions& o,
                          const std::vector<std::vector<int64_t>>& history, at::Generator& gen) {
  TORCH_CHECK(logits.dim() == 2 && logits.device().is_cpu(), "sample_next: logits must be [B, V] on the CPU");
  logits = logits.to(torch::kFloat).clone();
  const int64_t B = logits.size(0), V = logits.size(1);
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  if (o.repetition_penalty != 1.0) {
    for (int64_t b = 0; b < B && b < static_cast<int64_t>(history.size()); ++b) {
      if (history[b].empty()) continue;
      auto seen = std::get<0>(at::_unique(torch::tensor(history[b], torch::kLong)));
      auto row = logits[b];
      auto l = row.index({seen});
      row.index_put_({seen}, torch::where(l > 0, l / o.repetition_penalty, l * o.repetition_penalty));
    }
  }
  // Extreme penalties overflow to ±inf: keep every logit finite so that nothing below turns into NaN.
  logits = logits.clamp(std::numeric_limits<float>::lowest(), std::numeric_limits<float>::max());
  if (o.temperature <= 0) return logits.argmax(-1);
  // softmax((l − max) / T) = softmax(l / T), and it stays defined for a temperature so small that l / T overflows:
  // the best token gets 0, the others −inf (greedy in the limit).
  logits = (logits - std::get<0>(logits.max(-1, /*keepdim=*/true))) / o.temperature;
  if (o.top_k > 0 && o.top_k < V) {
    auto kth = std::get<0>(logits.topk(o.top_k, -1)).select(-1, o.top_k - 1).unsqueeze(-1);
    logits = logits.masked_fill(logits < kth, kNegInf);
  }
  if (o.top_p < 1.0) {
    auto [sorted, order] = logits.sort(-1, /*descending=*/true);
    auto probs = torch::softmax(sorted, -1);
    // Drop a token when the tokens ranked before it already hold top_p of the mass (the first always stays).
    auto drop = (probs.cumsum(-1) - probs) >= o.top_p;
    drop.select(-1, 0).fill_(false);  // top_p = 0 keeps only the most likely token (greedy)
    logits = logits.scatter(-1, order, sorted.masked_fill(drop, kNegInf));
  }
  return torch::multinomial(torch::softmax(logits, -1), 1, /*replacement=*/true, gen).squeeze(-1);
}

}  // namespace supra
