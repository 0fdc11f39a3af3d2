// The training objectives beyond plain uptraining (training/loss.h: CE + z-loss), used to recover the teacher with
// few tokens (docs/training.md, "Recovering the teacher"):
//  - attention transfer: each converted block's attention output is fitted to the teacher's softmax attention
//    output on the same input hidden states, taken from the teacher's own forward pass (layer-local: no gradient
//    leaves an attention block);
//  - distillation: KL(teacher ‖ student) on next-token distributions at a temperature, optionally plus CE.
#pragma once
#include <torch/torch.h>

#include <functional>
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

// The start of an attention-transfer stage: every SUPRA block's o_proj set to the least-squares map from its
// GroupNorm-ed heads to the teacher's attention output on the same inputs. The block's output is o_proj(z) with
// z = GroupNorm(linear attention) [N, H·d] (unit variance per head, whatever the teacher's head scales), linear in
// o_proj, so given the feature maps the best o_proj has a closed form (ridge regression):
//   W = argmin_W Σ_tokens ‖z Wᵀ − y‖² + λ‖W‖²  ⇒  Wᵀ = (G + λI)⁻¹ C,   G = Σ zᵀz,  C = Σ zᵀy,  λ = 1e-6·tr(G)/(H·d)
// (GroupNorm makes G singular: each head's d values sum to 0; λ picks the smallest such W). A layer's relative error
// Σ‖z Wᵀ − y‖² / Σ‖y‖² = 1 − (2·tr(W C) − tr(W G Wᵀ)) / Σ‖y‖² is at most 1 after the fit (W = 0 scores 1); with the
// pretrained o_proj right after conversion it is typically far above 1. G, C, Σ‖y‖² accumulate in float64 on the
// model's device: (H·d)·(H·d + hidden)·8 bytes per layer.
class OutputProjectionFit {
 public:
  // Adds one micro-batch (inputs [B, T], resets [B, T]): the teacher runs block by block as in
  // attention_transfer_loss, without gradients (call it under the training step's autocast).
  void accumulate(CausalLM& teacher, CausalLM& student, const torch::Tensor& inputs, const torch::Tensor& resets);
  struct Report {
    std::vector<double> before, after;  // per layer: relative error with the pretrained o_proj, and with the fit
    double tokens = 0;                  // over all ranks
  };
  // Sums the statistics over ranks with `allreduce_sum` (in place; the identity in one process), solves and writes
  // every block's o_proj (in its dtype). Throws supra::Error when nothing was accumulated.
  Report solve(CausalLM& student, const std::function<void(torch::Tensor&)>& allreduce_sum);

 private:
  std::vector<torch::Tensor> gram_, cross_;  // per layer: G [n, n], C [n, hidden] (n = H·d)
  std::vector<torch::Tensor> yy_;            // per layer: Σ‖y‖² (0-dim)
  double tokens_ = 0;
};

struct DistillLoss {
  torch::Tensor total;  // τ²·KL + ce_weight·CE + z_loss·mean(lse²) (scalar, differentiable)
  torch::Tensor kl;     // mean over tokens of KL(p_t ‖ p_s) at temperature τ (scalar, unscaled)
  torch::Tensor ce;     // mean cross-entropy of the student on the targets
};

// student/teacher logits [B, T, V], targets [B, T]. p = softmax(logits / τ); KL summed over the vocabulary,
// averaged over tokens; the τ² factor keeps gradient sizes comparable across temperatures (Hinton et al.).
// Computed fused over chunks of chunk_rows tokens (0: about 8M logits per chunk), gradient included: memory beyond
// the logits and their gradient is one chunk's temporaries, whatever the vocabulary.
DistillLoss distill_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                         const torch::Tensor& targets, double temperature, double ce_weight, double z_loss,
                         int64_t chunk_rows = 0);

}  // namespace supra::training
