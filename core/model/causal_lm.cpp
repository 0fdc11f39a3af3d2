#include "core/model/causal_lm.h"

#include <set>
#include <sstream>

#include "core/base/error.h"
#include "core/model/attention_registry.h"

namespace supra {

DecoderLayerImpl::DecoderLayerImpl(const ModelConfig& c, std::shared_ptr<AttentionImpl> attention) {
  input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  self_attn = register_module("self_attn", std::move(attention));
  post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  mlp = register_module("mlp", MLP(c.hidden_size, c.intermediate_size));
}

void DecoderLayerImpl::set_attention(std::shared_ptr<AttentionImpl> attention) {
  self_attn = replace_module("self_attn", std::move(attention));
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& x, const AttentionContext& ctx) {
  auto h = x + self_attn->forward(input_layernorm(x), ctx);
  return h + mlp(post_attention_layernorm(h));
}

BackboneImpl::BackboneImpl(const ModelConfig& c) {
  embed_tokens = register_module("embed_tokens", Embedding(c.vocab_size, c.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(DecoderLayer(c, make_attention(c, i)));
  norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

CausalLMImpl::CausalLMImpl(const ModelConfig& c) : config_(c) {
  model = register_module("model", Backbone(c));
  if (!c.tie_word_embeddings) lm_head = register_module("lm_head", Dense(c.hidden_size, c.vocab_size));
  inv_freq_ = rope_inv_freq(c.head_dim, c.rope_theta, c.rope_scaling);
}

DecoderLayer CausalLMImpl::layer(int64_t i) const { return DecoderLayer(model->layers->ptr<DecoderLayerImpl>(i)); }

AttentionContext CausalLMImpl::make_context(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                            const torch::Tensor& position_ids, const torch::Tensor& resets) const {
  TORCH_CHECK(input_ids.dim() == 2, "input_ids must be [B, T], got ", input_ids.sizes());
  const int64_t B = input_ids.size(0), T = input_ids.size(1);
  auto positions = position_ids.defined()
                       ? position_ids
                       : torch::arange(T, torch::TensorOptions().dtype(torch::kLong).device(input_ids.device()))
                             .unsqueeze(0)
                             .expand({B, T});
  AttentionContext ctx;
  ctx.rope = rope_tables(inv_freq_, positions);
  if (attention_mask.defined()) ctx.key_padding = attention_mask.to(torch::kBool);
  if (resets.defined()) ctx.resets = resets.to(torch::kBool);
  return ctx;
}

torch::Tensor CausalLMImpl::hidden_states(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                          const torch::Tensor& position_ids, const torch::Tensor& resets) {
  auto ctx = make_context(input_ids, attention_mask, position_ids, resets);
  auto h = model->embed_tokens(input_ids);
  for (size_t i = 0; i < model->layers->size(); ++i) h = layer(static_cast<int64_t>(i))->forward(h, ctx);
  return model->norm(h);
}

torch::Tensor CausalLMImpl::run_blocks(const torch::Tensor& input_ids, const torch::Tensor& resets,
                                       const BlockRunner& run_block) {
  auto ctx = make_context(input_ids, {}, {}, resets);
  auto h = model->embed_tokens(input_ids);
  for (size_t i = 0; i < model->layers->size(); ++i) h = run_block(layer(static_cast<int64_t>(i)), h, ctx);
  return h;
}

torch::Tensor CausalLMImpl::forward_with(const torch::Tensor& input_ids, const torch::Tensor& resets,
                                         const BlockRunner& run_block) {
  return torch::linear(model->norm(run_blocks(input_ids, resets, run_block)), lm_head_weight());
}

torch::Tensor CausalLMImpl::forward_cached(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                           InferenceCache& cache, bool all_positions) {
  TORCH_CHECK(input_ids.dim() == 2 && input_ids.size(1) >= 1, "forward_cached: input_ids must be [B, T>=1]");
  TORCH_CHECK(cache.layers.size() == model->layers->size(), "forward_cached: the cache has ", cache.layers.size(),
              " layers, the model ", model->layers->size());
  const int64_t B = input_ids.size(0), T = input_ids.size(1);
  const auto dev = input_ids.device();
  TORCH_CHECK(cache.batch() == 0 || cache.batch() == B, "forward_cached: batch ", B, " but the cache holds ",
              cache.batch(), " sequences");
  auto real = attention_mask.defined() ? attention_mask.to(dev, torch::kBool)
                                       : torch::ones({B, T}, torch::TensorOptions().dtype(torch::kBool).device(dev));
  auto start = cache.next_position.defined()
                   ? cache.next_position
                   : torch::zeros({B}, torch::TensorOptions().dtype(torch::kLong).device(dev));
  // Left padding: a sequence's first real token gets the next position; padding slots get clamped dummies.
  auto positions = (start.unsqueeze(1) + real.to(torch::kLong).cumsum(1) - 1).clamp_min(0);
  cache.next_position = start + real.to(torch::kLong).sum(1);
  auto ctx = make_context(input_ids, attention_mask.defined() ? real : torch::Tensor(), positions, {});
  ctx.positions = positions;
  ctx.kv = cache.kv;
  auto h = model->embed_tokens(input_ids);
  for (size_t i = 0; i < model->layers->size(); ++i) {
    ctx.cache = &cache.layers[i];
    h = layer(static_cast<int64_t>(i))->forward(h, ctx);
  }
  return torch::linear(model->norm(all_positions ? h : h.select(1, T - 1)), lm_head_weight()).to(torch::kFloat);
}

torch::Tensor CausalLMImpl::lm_head_weight() const { return lm_head ? lm_head->weight : model->embed_tokens->weight; }

torch::Tensor CausalLMImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                    const torch::Tensor& position_ids, const torch::Tensor& resets) {
  return torch::linear(hidden_states(input_ids, attention_mask, position_ids, resets), lm_head_weight());
}

int64_t CausalLMImpl::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

torch::Dtype CausalLMImpl::dtype() const { return model->embed_tokens->weight.scalar_type(); }

void load_weights(CausalLM& model, const std::map<std::string, torch::Tensor>& tensors, const std::string& source) {
  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  for (auto& item : model->named_parameters()) {
    const std::string& name = item.key();
    torch::Tensor& param = item.value();
    auto it = tensors.find(name);
    if (it == tensors.end()) throw Error(source, "checkpoint has no tensor '" + name + "'");
    const torch::Tensor& t = it->second;
    if (t.sizes() != param.sizes()) {
      std::ostringstream msg;
      msg << "tensor '" << name << "' has shape " << t.sizes() << ", the config implies " << param.sizes();
      throw Error(source, msg.str());
    }
    param.set_data(t.to(param.device(), param.scalar_type()).contiguous());
    used.insert(name);
  }
  for (const auto& [name, t] : tensors) {
    if (used.count(name)) continue;
    const bool tied_head = name == "lm_head.weight" && model->config().tie_word_embeddings;
    const bool rope_buffer = name.size() >= 9 && name.compare(name.size() - 9, 9, ".inv_freq") == 0;
    if (!tied_head && !rope_buffer) throw Error(source, "unexpected tensor '" + name + "' for this architecture");
  }
}

}  // namespace supra
