#include "training/loss.h"

namespace supra::training {

LossParts lm_loss(const torch::Tensor& logits, const torch::Tensor& targets, double z_loss) {
  auto flat = logits.reshape({-1, logits.size(-1)}).to(torch::kFloat);
  auto lse = torch::logsumexp(flat, -1);
  auto target_logit = flat.gather(1, targets.reshape({-1, 1})).squeeze(1);
  auto ce = (lse - target_logit).mean();
  auto z = lse.pow(2).mean();
  return {z_loss != 0.0 ? ce + z_loss * z : ce, ce, z};
}

}  // namespace supra::training
