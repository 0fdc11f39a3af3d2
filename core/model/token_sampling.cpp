#include "core/model/token_sampling.h"

#include <limits>

namespace supra {

torch::Tensor seen_tokens(const std::vector<std::vector<int64_t>>& rows, int64_t vocab, torch::Device device) {
  auto seen = torch::zeros({static_cast<int64_t>(rows.size()), vocab}, torch::kBool);
  for (size_t b = 0; b < rows.size(); ++b)
    if (!rows[b].empty()) seen[static_cast<int64_t>(b)].index_put_({torch::tensor(rows[b], torch::kLong)}, true);
  return seen.to(device);
}

torch::Tensor sample_next(const torch::Tensor& raw, const SamplingOptions& o, const torch::Tensor& seen,
                          at::Generator& gen) {
  TORCH_CHECK(raw.dim() == 2, "sample_next: logits must be [B, V]");
  auto logits = raw.to(torch::kFloat);
  const int64_t V = logits.size(1);
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  if (o.repetition_penalty != 1.0 && seen.defined())
    logits = torch::where(seen, torch::where(logits > 0, logits / o.repetition_penalty, logits * o.repetition_penalty),
                          logits);
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
