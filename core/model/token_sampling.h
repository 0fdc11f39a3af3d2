// Choosing the next token from a model's logits: greedy, temperature, top-k, top-p (nucleus) and the CTRL/HF
// repetition penalty. Tensor ops only, on the logits' device (no host synchronisation, so a decode loop on a GPU
// never waits for the host). Used by generation (core/model/generate.h); not to be confused with sampling teacher
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

// The next token of each row of `logits` [B, V] (int64 [B], on the logits' device; computed in float32). `seen`
// (bool [B, V], same device) marks the tokens row b has read or produced so far, for the repetition penalty; it may
// be undefined when the penalty is 1. Consumes `gen` (a generator of the logits' device) only when sampling
// (temperature > 0).
torch::Tensor sample_next(const torch::Tensor& logits, const SamplingOptions& options, const torch::Tensor& seen,
                          at::Generator& gen);

// The `seen` mask of each row's tokens: bool [B, vocab] on `device`.
torch::Tensor seen_tokens(const std::vector<std::vector<int64_t>>& rows, int64_t vocab, torch::Device device);

}  // namespace supra
