// Choosing the next token from a model's logits: greedy, temperature, top-k, top-p (nucleus) and the CTRL/HF
// repetition penalty. Used by generation (core/model/generate.h); not to be confused with sampling teacher
// documents as training data (data/teacher_documents.h).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace supra {

struct SamplingOptions {
  double temperature = 1.0;         // <= 0: greedy
  int64_t top_k = 0;                // 0: no top-k filter
  double top_p = 1.0;               // nucleus: the smallest set of tokens holding this much probability
  double repetition_penalty = 1.0;  // CTRL/HF style: seen tokens' logits divided (if > 0) or multiplied by it
};

// The next token of each row of `logits` [B, V] (float32, CPU). `history[b]` lists row b's tokens so far (prompt
// and generated) for the repetition penalty. Consumes `gen` only when sampling (temperature > 0).
torch::Tensor sample_next(torch::Tensor logits, const SamplingOptions& options,
                          const std::vector<std::vector<int64_t>>& history, at::Generator& gen);

}  // namespace supra
