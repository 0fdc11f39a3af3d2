#include "core/supra/convert.h"

#include <ATen/CPUGeneratorImpl.h>

#include "core/base/error.h"
#include "core/model/softmax_attention.h"
#include "core/supra/supra_attention.h"

namespace supra {

int64_t supra_added_parameters(const ModelConfig& c) { return c.feature_map_parameters() * c.num_hidden_layers; }

void convert_to_supra(CausalLM& model, const SupraSettings& settings, uint64_t seed) {
  ModelConfig& config = model->mutable_config();
  if (config.supra) throw Error("convert", "the model is already a SUPRA model");
  ModelConfig converted = config;
  converted.supra = settings;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::NoGradGuard no_grad;
  const auto dtype = model->dtype();
  const auto device = model->lm_head_weight().device();
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    auto layer = model->layer(i);
    auto* old_attn = dynamic_cast<SoftmaxAttentionImpl*>(layer->self_attn.get());
    TORCH_CHECK(old_attn, "layer ", i, " has no softmax attention to convert");
    auto attn = std::make_shared<SupraAttentionImpl>(converted, settings);
    // Keep the pretrained projections: the very same tensors, not copies.
    attn->q_proj = attn->replace_module("q_proj", old_attn->q_proj);
    attn->k_proj = attn->replace_module("k_proj", old_attn->k_proj);
    attn->v_proj = attn->replace_module("v_proj", old_attn->v_proj);
    attn->o_proj = attn->replace_module("o_proj", old_attn->o_proj);
    // New feature maps: initialised in fp32 on CPU from the seeded stream, then moved to the model's dtype/device.
    attn->feature_map_q->reset_like_torch_linear(gen);
    if (attn->feature_map_k) attn->feature_map_k->reset_like_torch_linear(gen);
    attn->feature_map_q->to(device, dtype);
    if (attn->feature_map_k) attn->feature_map_k->to(device, dtype);
    layer->set_attention(attn);
  }
  config = converted;
}

}  // namespace supra
