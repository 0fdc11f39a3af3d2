// The uptraining loss: token cross-entropy plus the reference's z-loss, CE + z · mean(logsumexp(logits)²),
// computed in fp32 whatever the logits' dtype.
#pragma once
#include <torch/torch.h>

namespace supra::training {

struct LossParts {
  torch::Tensor total;  // CE + z · mean(lse²) (scalar, differentiable)
  torch::Tensor ce;     // mean cross-entropy (scalar)
  torch::Tensor z;      // mean(lse²) (scalar)
};

// logits [B, T, V], targets [B, T] int64.
LossParts lm_loss(const torch::Tensor& logits, const torch::Tensor& targets, double z_loss);

}  // namespace supra::training
