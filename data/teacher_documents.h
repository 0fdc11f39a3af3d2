// Sampling documents from a causal LM (a teacher's own text as training data, and generation tests).
// Runs on core/model/generate (cached prefill + recurrent decoding).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "core/model/causal_lm.h"

namespace supra::data {

struct SampleOptions {
  int64_t num_docs = 1;
  int64_t max_tokens = 128;  // per document, BOS included
  double temperature = 1.0;  // 0: greedy
  int64_t top_k = 0;         // 0: all tokens
  uint64_t seed = 0;
  int64_t batch = 64;  // documents sampled together
  int64_t bos_token_id = 1;
  std::optional<int64_t> eos_token_id;  // a document ends with it (appended when max_tokens is reached)
};

// Each document: BOS, sampled tokens, EOS (if an EOS id is given). Deterministic for a seed.
std::vector<std::vector<int64_t>> sample_documents(CausalLM& model, const SampleOptions& options);

}  // namespace supra::data
