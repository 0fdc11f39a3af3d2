// The training objectives beyond plain uptraining (training/loss.h: CE + z-loss), used to recover the teacher with
// few tokens (docs/training.md, "Recovering the teacher"):
//  - attention transfer: each converted block's attention output is fitted to the teacher's softmax attention
//    output on the same input hidden states, taken from the teacher's own forward pass (layer-local: no gradient
//    leaves an attention block);
//  - distillation: KL(teacher ‖ student) on next-token distributions at a temperature, optionally plus CE.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "core/model/causal_lm.h"

namespace supra::training {

struct AttentionTransferLoss {
  torch::Tensor total;                   // mean over layers of the per-layer losses (scalar, differentiable)
  std::vector<torch::Tensor> per_layer;  // ‖s_l − y_l‖² / ‖y_l‖² per layer (scalars, detached)
};

// Runs the teacher (no gradient) block by block on `inputs` [B, T] (documents reset at `resets` [B, T]); at block
// l it feeds the teacher's normalised hidden states x_l to the student's attention of block l and scores
//   loss_l = mean((s_l − y_l)²) / mean(y_l²),   y_l = teacher attention(x_l),  s_l = student attention(x_l),
// in fp32: a relative squared error (MSE normalised by the teacher output's mean square), so that every layer
// weighs alike whatever its output scale; the total is the mean over layers. The teacher's logits are never
// computed; the student's MLPs and norms are never run.
AttentionTransferLoss attention_transfer_loss(CausalLM& teacher, CausalLM& student, const torch::Tensor& inputs,
                                              const torch::Tensor& resets);

struct DistillLoss {
  torch::Tensor total;  // τ²·KL + ce_weight·CE + z_loss·mean(lse²) (scalar, differentiable)
  torch::Tensor kl;     // mean over tokens of KL(p_t ‖ p_s) at temperature τ (scalar, unscaled)
  torch::Tensor ce;     // mean cross-entropy of the student on the targets
};

// student/teacher logits [B, T, V], targets [B, T]. p = softmax(logits / τ); KL summed over the vocabulary,
// averaged over tokens; the τ² factor keeps gradient sizes comparable across temperatures (Hinton et al.).
DistillLoss distill_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                         const torch::Tensor& targets, double temperature, double ce_weight, double z_loss);

}  // namespace supra::training
