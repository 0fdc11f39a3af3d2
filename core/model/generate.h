// Generation with a causal LM used as an RNN: one parallel (chunked) prefill of the left-padded prompts hands its
// state to the recurrent decoder, which then adds one token per sequence per step. SUPRA models carry a constant-size
// state; transformers a K/V cache, optionally bounded to K tokens (sliding window or TOVA) for equal-state comparisons.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "core/model/causal_lm.h"
#include "core/model/decoder.h"
#include "core/model/inference_cache.h"
#include "core/model/token_sampling.h"

namespace supra {

struct GenerateOptions {
  int64_t max_new_tokens = 128;
  SamplingOptions sampling;
  uint64_t seed = 0;
  at::Generator* generator = nullptr;  // when set, sample from it instead of a fresh one seeded with `seed`
  std::vector<int64_t> stop_ids;       // a sequence ends after producing one of these (kept in its output)
  KvCacheOptions kv;                   // softmax layers only
  bool reference_decode = false;       // decode with CausalLM::forward_cached instead of the fast path (Decoder)
  bool cuda_graph = false;             // fast path on CUDA: replay the step as a CUDA graph (DecoderOptions)
};

struct GenerateStats {
  int64_t prompt_tokens = 0;  // real (unpadded) prompt tokens of the batch
  int64_t new_tokens = 0;     // tokens generated for unfinished sequences
  int64_t decode_steps = 0;
  double prefill_seconds = 0, decode_seconds = 0;
  std::vector<double> step_seconds;  // each decode step's wall time (sampling included; on CUDA up to the logits copy)
  int64_t state_bytes = 0;           // the whole batch's states / caches at the end
};

struct GenerateResult {
  std::vector<std::vector<int64_t>> tokens;  // the new tokens of each prompt
  GenerateStats stats;
};

// Called as each new token of an unfinished sequence is chosen (streaming).
using TokenCallback = std::function<void(int64_t row, int64_t id)>;

// Generates for a batch of prompts (token ids, BOS included as the model expects; lengths may differ). Deterministic
// for a seed on a given device. Sampling runs on the device; the host reads each step's tokens (for streaming and
// stop tokens) while the device already runs the next step. With a bounded K/V policy, a transformer reads prompts
// longer than K token by token after the first K, so that no query ever sees more than K cached tokens.
GenerateResult generate(CausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
                        const GenerateOptions& options, const TokenCallback& on_token = {});

}  // namespace supra
