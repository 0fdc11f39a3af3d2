#include "training/objectives.h"

#include "training/loss.h"

namespace supra::training {

AttentionTransferLoss attention_transfer_loss(CausalLM& teacher, CausalLM& student, const torch::Tensor& inputs,
                                              const torch::Tensor& resets) {
  AttentionTransferLoss out;
  std::vector<torch::Tensor> losses;
  int64_t l = 0;
  teacher->run_blocks(inputs, resets, [&](DecoderLayer block, const torch::Tensor& h, const AttentionContext& ctx) {
    torch::Tensor x, y;
    {
      torch::NoGradGuard no_grad;
      x = block->input_layernorm(h);
      y = block->self_attn->forward(x, ctx);
    }
    // The student's attention of the same block on the teacher's input: the only part with a gradient.
    auto s = student->layer(l++)->self_attn->forward(x, ctx).to(torch::kFloat);
    auto yf = y.to(torch::kFloat);
    losses.push_back((s - yf).pow(2).mean() / yf.pow(2).mean().clamp_min(1e-12));
    torch::NoGradGuard no_grad;
    auto hh = h + y;
    return hh + block->mlp(block->post_attention_layernorm(hh));
  });
  out.total = torch::stack(losses).mean();
  for (const auto& t : losses) out.per_layer.push_back(t.detach());
  return out;
}

DistillLoss distill_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                         const torch::Tensor& targets, double temperature, double ce_weight, double z_loss) {
  const int64_t V = student_logits.size(-1);
  auto s = student_logits.to(torch::kFloat).reshape({-1, V});
  auto t = teacher_logits.to(torch::kFloat).reshape({-1, V}).detach();
  auto log_ps = torch::log_softmax(s / temperature, -1);
  auto log_pt = torch::log_softmax(t / temperature, -1);
  DistillLoss out;
  // KL(p_t ‖ p_s) = Σ_v p_t(v) (log p_t(v) − log p_s(v)), per token, then the mean over tokens.
  out.kl = (log_pt.exp() * (log_pt - log_ps)).sum(-1).mean();
  auto lm = lm_loss(student_logits, targets, z_loss);
  out.ce = lm.ce;
  out.total = out.kl * (temperature * temperature) + ce_weight * lm.ce + z_loss * lm.z;
  return out;
}

}  // namespace supra::training
