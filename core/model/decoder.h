// The decode fast path: one token per sequence through every block with the work that does not depend on the token
// done once per generation — each layer's mixer step bound to its cache and fused weights (AttentionImpl::
// decode_step), the RoPE rows of every position it can reach in one table — so that a step is the embedding gather,
// per block two norms, the mixer step and the MLP, then the final norm and the LM head: no positions built, no
// masks, no host synchronisation. On CUDA, when every mixer step is capturable (SUPRA), the whole step can be
// captured once in a CUDA graph and replayed (DecoderOptions::cuda_graph). Generation (core/model/generate.h) uses
// it unless asked for the reference path (CausalLM::forward_cached on one-token inputs), which defines the same
// function.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <vector>

#include "core/model/causal_lm.h"
#include "core/model/inference_cache.h"

namespace supra {

struct DecoderOptions {
  // Capture the step in a CUDA graph after one eager warm-up step and replay it (CUDA, capturable mixers only;
  // ignored otherwise). Off by default until measured on a GPU (docs/benchmarks.md).
  bool cuda_graph = false;
};

struct DecodeGraph;  // decoder.cpp (CUDA builds)

class Decoder {
 public:
  // `cache` holds the prefill's states and next positions; positions up to max_positions − 1 can be decoded.
  Decoder(CausalLM model, InferenceCache& cache, int64_t max_positions, DecoderOptions options = {});
  // ids [B] int64 on the model's device -> float32 logits [B, vocab] (with a graph: a buffer the next step
  // overwrites); advances every sequence by one position.
  torch::Tensor step(const torch::Tensor& ids);
  // The same step followed by `then(logits)` (e.g. greedy sampling), both inside the graph when there is one: `then`
  // must then be capturable (device ops only, no random numbers, no host synchronisation) and be the same function
  // at every call (the first capture records it). Returns then's result.
  using Then = std::function<torch::Tensor(const torch::Tensor&)>;
  torch::Tensor step(const torch::Tensor& ids, const Then& then);
  bool uses_graph() const { return use_graph_; }

 private:
  torch::Tensor eager_step(const torch::Tensor& ids);
  CausalLM model_;
  InferenceCache& cache_;
  std::vector<std::unique_ptr<MixerStep>> mixers_;
  RopeTables table_;  // cos, sin [max_positions, head_dim]
  bool use_graph_ = false;
  std::shared_ptr<DecodeGraph> graph_;
};

}  // namespace supra
