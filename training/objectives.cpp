#include "training/objectives.h"

#include <functional>

#include "core/base/error.h"
#include "core/supra/supra_attention.h"
#include "training/loss.h"

namespace supra::training {

namespace {
// The teacher's forward, block by block, without gradients: each layer's attention input x (the teacher's own
// normed hidden state) and the teacher's attention output y go to visit(layer, x, y, ctx), then the teacher's
// block goes on from its own output (h + y, then the MLP), whatever visit does with them.
void walk_teacher_attention(
    CausalLM& teacher, const torch::Tensor& inputs, const torch::Tensor& resets,
    const std::function<void(int64_t, const torch::Tensor&, const torch::Tensor&, const AttentionContext&)>& visit) {
  int64_t l = 0;
  teacher->run_blocks(inputs, resets, [&](DecoderLayer block, const torch::Tensor& h, const AttentionContext& ctx) {
    torch::Tensor x, y;
    {
      torch::NoGradGuard no_grad;
      x = block->input_layernorm(h);
      y = block->self_attn->forward(x, ctx);
    }
    visit(l++, x, y, ctx);
    torch::NoGradGuard no_grad;
    auto hh = h + y;
    return hh + block->mlp(block->post_attention_layernorm(hh));
  });
}
}  // namespace

AttentionTransferLoss attention_transfer_loss(CausalLM& teacher, CausalLM& student, const torch::Tensor& inputs,
                                              const torch::Tensor& resets) {
  AttentionTransferLoss out;
  std::vector<torch::Tensor> losses;
  walk_teacher_attention(teacher, inputs, resets,
                         [&](int64_t l, const torch::Tensor& x, const torch::Tensor& y, const AttentionContext& ctx) {
                           // The student's attention of the same block on the teacher's input: the only part
                           // with a gradient.
                           auto s = student->layer(l)->self_attn->forward(x, ctx).to(torch::kFloat);
                           auto yf = y.to(torch::kFloat);
                           losses.push_back((s - yf).pow(2).mean() / yf.pow(2).mean().clamp_min(1e-12));
                         });
  out.total = torch::stack(losses).mean();
  for (const auto& t : losses) out.per_layer.push_back(t.detach());
  return out;
}

void OutputProjectionFit::accumulate(CausalLM& teacher, CausalLM& student, const torch::Tensor& inputs,
                                     const torch::Tensor& resets) {
  torch::NoGradGuard no_grad;
  walk_teacher_attention(
      teacher, inputs, resets,
      [&](int64_t l, const torch::Tensor& x, const torch::Tensor& y, const AttentionContext& ctx) {
        auto* attn = dynamic_cast<SupraAttentionImpl*>(student->layer(l)->self_attn.get());
        if (attn == nullptr)
          throw Error("model", "layer " + std::to_string(l) + " of the student is not a SUPRA layer: no o_proj to fit");
        auto z = attn->normalized_heads(x, ctx).flatten(0, 1).to(torch::kDouble);  // [N, H·d]
        auto yd = y.flatten(0, 1).to(torch::kDouble);                              // [N, hidden]
        const auto i = static_cast<size_t>(l);
        if (gram_.size() == i) {
          gram_.push_back(torch::zeros({z.size(1), z.size(1)}, z.options()));
          cross_.push_back(torch::zeros({z.size(1), yd.size(1)}, z.options()));
          yy_.push_back(torch::zeros({}, z.options()));
        }
        gram_[i].addmm_(z.t(), z);
        cross_[i].addmm_(z.t(), yd);
        yy_[i] += yd.pow(2).sum();
      });
  tokens_ += static_cast<double>(inputs.numel());
}

OutputProjectionFit::Report OutputProjectionFit::solve(CausalLM& student,
                                                       const std::function<void(torch::Tensor&)>& allreduce_sum) {
  torch::NoGradGuard no_grad;
  if (gram_.empty()) throw Error("attention.o_proj_fit_batches", "no tokens to fit o_proj on");
  Report r;
  // One collective for the scalars: Σ‖y‖² per layer, then the token count.
  auto scalars = torch::cat({torch::stack(yy_), torch::full({1}, tokens_, yy_[0].options())});
  allreduce_sum(scalars);
  const auto yy = scalars.cpu();
  r.tokens = yy[static_cast<int64_t>(yy_.size())].item<double>();
  for (size_t l = 0; l < gram_.size(); ++l) {
    allreduce_sum(gram_[l]);
    allreduce_sum(cross_[l]);
    const auto& G = gram_[l];
    const auto& C = cross_[l];
    auto* attn = dynamic_cast<SupraAttentionImpl*>(student->layer(static_cast<int64_t>(l))->self_attn.get());
    torch::Tensor& weight = attn->o_proj->weight;  // [hidden, H·d] (o_proj has no bias: attention_bias is refused)
    const auto w0 = weight.to(torch::kDouble);
    const int64_t n = G.size(0);
    const double lambda = 1e-6 * G.diagonal().sum().item<double>() / static_cast<double>(n);
    auto w = torch::linalg_solve(G + lambda * torch::eye(n, G.options()), C).t();  // [hidden, n]
    // Relative error of a map W: 1 − (2·tr(W C) − tr(W G Wᵀ)) / Σ‖y‖², tr(W C) = Σ W ⊙ Cᵀ.
    const double y2 = std::max(yy[static_cast<int64_t>(l)].item<double>(), 1e-300);
    auto rel = [&](const torch::Tensor& m) {
      return 1.0 - (2.0 * (m * C.t()).sum().item<double>() - (m.mm(G) * m).sum().item<double>()) / y2;
    };
    r.before.push_back(rel(w0));
    r.after.push_back(rel(w));
    weight.copy_(w);
  }
  return r;
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
