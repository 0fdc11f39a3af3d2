// Prefill: a prompt read into a causal LM's InferenceCache — by generation (core/model/generate.h) and by evaluation
// with a bounded K/V cache (eval/evaluate.h), so both read long prompts the same way.
#pragma once
#include <torch/torch.h>

#include "core/model/causal_lm.h"
#include "core/model/inference_cache.h"

namespace supra {

// Runs ids [B, T] (real [B, T] marks real tokens) through `model`, filling `cache`. One parallel call, except that a
// transformer with a bounded K/V policy (cache.kv: window / TOVA) reads the first K columns in parallel and the rest
// one token at a time, so that no query ever sees more than K cached tokens. Returns the float32 logits of each
// row's last column [B, vocab], or of every column [B, T, vocab] with all_positions.
torch::Tensor prefill(CausalLM& model, const torch::Tensor& ids, const torch::Tensor& real, InferenceCache& cache,
                      bool all_positions = false);

}  // namespace supra
