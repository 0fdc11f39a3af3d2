#include "training/activation_checkpoint.h"

namespace supra::training {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor x, DecoderLayerImpl* layer,
                               const AttentionContext* attn_ctx) {
    ctx->saved_data["layer"] = reinterpret_cast<int64_t>(layer);
    ctx->saved_data["rope_cos"] = attn_ctx->rope.cos;
    ctx->saved_data["rope_sin"] = attn_ctx->rope.sin;
    ctx->saved_data["padding"] = attn_ctx->key_padding;
    ctx->saved_data["resets"] = attn_ctx->resets;
    ctx->save_for_backward({x});
    torch::NoGradGuard no_grad;
    return layer->forward(x, *attn_ctx);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    auto* layer = reinterpret_cast<DecoderLayerImpl*>(ctx->saved_data["layer"].toInt());
    AttentionContext attn_ctx;
    attn_ctx.rope.cos = ctx->saved_data["rope_cos"].toTensor();
    attn_ctx.rope.sin = ctx->saved_data["rope_sin"].toTensor();
    if (ctx->saved_data["padding"].isTensor()) attn_ctx.key_padding = ctx->saved_data["padding"].toTensor();
    if (ctx->saved_data["resets"].isTensor()) attn_ctx.resets = ctx->saved_data["resets"].toTensor();
    auto x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    torch::Tensor y;
    {
      torch::AutoGradMode enable(true);
      y = layer->forward(x, attn_ctx);
    }
    // Accumulates into the layer's parameter .grad and into x.grad.
    torch::autograd::backward({y}, {grad_out[0]});
    return {x.grad(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor checkpointed_block(DecoderLayer layer, const torch::Tensor& x, const AttentionContext& ctx) {
  return CheckpointFunction::apply(x, layer.get(), &ctx);
}

torch::Tensor forward_checkpointed(CausalLM& model, const torch::Tensor& input_ids, const torch::Tensor& resets) {
  return model->forward_with(input_ids, resets,
                             [](DecoderLayer layer, const torch::Tensor& h, const AttentionContext& ctx) {
                               return checkpointed_block(layer, h, ctx);
                             });
}

}  // namespace supra::training
