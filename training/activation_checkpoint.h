// Activation checkpointing per decoder block: the forward keeps only the block's input; the backward recomputes
// the block with gradients enabled and back-propagates through it (what torch.utils.checkpoint does, reentrant).
#pragma once
#include <torch/torch.h>

#include "core/model/causal_lm.h"

namespace supra::training {

// y = layer(x, ctx), storing only x. Gradients reach x and, through the recomputation, the layer's parameters.
torch::Tensor checkpointed_block(DecoderLayer layer, const torch::Tensor& x, const AttentionContext& ctx);

// Forward of the whole model with every block checkpointed: logits [B, T, V].
torch::Tensor forward_checkpointed(CausalLM& model, const torch::Tensor& input_ids, const torch::Tensor& resets);

}  // namespace supra::training
