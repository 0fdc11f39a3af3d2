// CausalLM: the Llama/Mistral decoder-only language model as torch::nn::Modules. Parameter names are exactly
// Hugging Face's ("model.layers.3.self_attn.q_proj.weight", "lm_head.weight"), so checkpoints load by name.
// The attention of each block is pluggable (softmax for the pretrained teacher; SUPRA after conversion).
#pragma once
#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/model/attention.h"
#include "core/model/config.h"
#include "core/model/layers.h"

namespace supra {

class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const ModelConfig& config, std::shared_ptr<AttentionImpl> attention);
  // Pre-norm block: h = x + attn(norm(x)); y = h + mlp(norm(h)).
  torch::Tensor forward(const torch::Tensor& x, const AttentionContext& ctx);
  // Replaces this block's attention module (used by conversion).
  void set_attention(std::shared_ptr<AttentionImpl> attention);

  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  std::shared_ptr<AttentionImpl> self_attn;
  MLP mlp{nullptr};
};
TORCH_MODULE(DecoderLayer);

// The "model." part of a HF causal LM: embeddings, blocks, final norm.
class BackboneImpl : public torch::nn::Module {
 public:
  explicit BackboneImpl(const ModelConfig& config);
  Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
};
TORCH_MODULE(Backbone);

class CausalLMImpl : public torch::nn::Module {
 public:
  explicit CausalLMImpl(const ModelConfig& config);

  // input_ids [B, T] int64; attention_mask optional [B, T] (1 real / 0 padding); position_ids optional [B, T]
  // (default 0..T-1); resets optional [B, T] (true where a packed document starts; SUPRA attention resets its
  // state there). Returns the final hidden states [B, T, hidden] after the last norm.
  torch::Tensor hidden_states(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                              const torch::Tensor& position_ids = {}, const torch::Tensor& resets = {});
  // Logits [B, T, vocab] in the model's dtype.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                        const torch::Tensor& position_ids = {}, const torch::Tensor& resets = {});
  // Generation: runs this call's tokens (a prompt, or one new token per sequence) through the model, reading and
  // updating `cache` (SUPRA states, K/V caches, positions). attention_mask [B, T] marks real tokens: prompts of
  // different lengths are left-padded (padding is never cached in a way any query can see). Returns the float32
  // logits of each sequence's last token [B, vocab], or of every token [B, T, vocab] with all_positions.
  torch::Tensor forward_cached(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                               InferenceCache& cache, bool all_positions = false);
  // The forward with each block run through `run_block(layer, h, ctx)` (e.g. activation checkpointing).
  using BlockRunner = std::function<torch::Tensor(DecoderLayer, const torch::Tensor&, const AttentionContext&)>;
  torch::Tensor forward_with(const torch::Tensor& input_ids, const torch::Tensor& resets, const BlockRunner& run_block);
  // Only the blocks of forward_with: the last block's output [B, T, hidden] (before the final norm; no logits).
  torch::Tensor run_blocks(const torch::Tensor& input_ids, const torch::Tensor& resets, const BlockRunner& run_block);
  torch::Tensor lm_head_weight() const;  // the tied embedding or lm_head.weight
  const torch::Tensor& inv_freq() const { return inv_freq_; }  // RoPE, fp32 [head_dim/2]
  DecoderLayer layer(int64_t i) const;

  const ModelConfig& config() const { return config_; }
  ModelConfig& mutable_config() { return config_; }  // conversion records its settings here
  int64_t parameter_count() const;
  torch::Dtype dtype() const;

  Backbone model{nullptr};
  Dense lm_head{nullptr};  // null when tie_word_embeddings

 private:
  AttentionContext make_context(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                const torch::Tensor& position_ids, const torch::Tensor& resets) const;
  ModelConfig config_;
  torch::Tensor inv_freq_;  // fp32 [head_dim/2], not a parameter
};
TORCH_MODULE(CausalLM);

// Fills every parameter of `model` from `tensors` (by HF name), converting dtypes. Missing tensors or shape
// mismatches throw supra::Error naming `source`; `lm_head.weight` is ignored for tied models, RoPE `inv_freq`
// buffers are ignored, other unknown tensors are refused (they would mean a different architecture).
void load_weights(CausalLM& model, const std::map<std::string, torch::Tensor>& tensors, const std::string& source);

}  // namespace supra
