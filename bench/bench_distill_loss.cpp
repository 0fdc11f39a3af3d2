// bench_distill_loss: forward + backward time of the fused distillation loss (training/objectives.h distill_loss)
// against the composite autograd form it replaced (log_softmax of student and teacher, p_t·(log p_t − log p_s),
// plus CE and z-loss through logsumexp), on one micro-batch of logits. Runs the two interleaved, reports min and
// median seconds of each and the ratio (composite / fused) measured in the same run, and checks that both give the
// same loss and gradient. Default shape: SmolLM2-135M's distill micro-batch (4 × 512 tokens, vocabulary 49152).
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <vector>

#include "training/objectives.h"

using Clock = std::chrono::steady_clock;

namespace {

// The composite form: what autograd differentiates when the loss is written with ATen ops.
torch::Tensor composite_total(const torch::Tensor& s, const torch::Tensor& t, const torch::Tensor& targets, double tau,
                              double w, double zeta) {
  auto log_ps = torch::log_softmax(s / tau, -1), log_pt = torch::log_softmax(t / tau, -1);
  auto kl = (log_pt.exp() * (log_pt - log_ps)).sum(-1).mean();
  auto lse = torch::logsumexp(s, -1);
  auto ce = (lse - s.gather(1, targets.unsqueeze(1)).squeeze(1)).mean();
  return tau * tau * kl + w * ce + zeta * lse.pow(2).mean();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_distill_loss: fused distillation loss vs the composite autograd form"};
  int64_t rows = 2048, vocab = 49152, repeats = 5, threads = 0;
  double tau = 1.0, w = 0.0, zeta = 1e-4;
  app.add_option("--rows", rows, "tokens in the micro-batch");
  app.add_option("--vocab", vocab, "vocabulary size");
  app.add_option("--repeats", repeats, "timed repetitions of each form (interleaved)");
  app.add_option("--temperature", tau, "distill.temperature");
  app.add_option("--ce-weight", w, "distill.ce_weight");
  app.add_option("--z-loss", zeta, "optim.z_loss");
  app.add_option("--threads", threads, "intra-op threads (0: LibTorch's default)");
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) torch::set_num_threads(static_cast<int>(threads));

  torch::manual_seed(0);
  auto s0 = torch::randn({rows, vocab}) * 4, t = torch::randn({rows, vocab}) * 4;
  auto targets = torch::randint(0, vocab, {rows});
  auto run = [&](bool fused, torch::Tensor* grad, double* loss) {
    auto s = s0.clone().requires_grad_(true);
    const auto start = Clock::now();
    auto total = fused ? supra::training::distill_loss(s, t, targets, tau, w, zeta).total
                       : composite_total(s, t, targets, tau, w, zeta);
    total.backward();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (grad != nullptr) *grad = s.grad();
    if (loss != nullptr) *loss = total.item<double>();
    return seconds;
  };

  torch::Tensor g_fused, g_comp;
  double l_fused = 0, l_comp = 0;
  run(true, &g_fused, &l_fused);  // warm-up, and the agreement check
  run(false, &g_comp, &l_comp);
  const double gdiff = (g_fused - g_comp).abs().max().item<double>(), gmax = g_comp.abs().max().item<double>();
  spdlog::info("{} x {} logits, tau {}, ce_weight {}, z_loss {}, {} threads: loss fused {:.6f} composite {:.6f}, "
               "max |grad difference| {:.2e} (max |grad| {:.2e})",
               rows, vocab, tau, w, zeta, torch::get_num_threads(), l_fused, l_comp, gdiff, gmax);
  g_fused = g_comp = torch::Tensor();

  std::vector<double> fused, comp;
  for (int64_t i = 0; i < repeats; ++i) {
    fused.push_back(run(true, nullptr, nullptr));
    comp.push_back(run(false, nullptr, nullptr));
  }
  spdlog::info("forward+backward seconds: fused min {:.3f} median {:.3f}; composite min {:.3f} median {:.3f}; "
               "composite/fused (median) {:.2f}",
               *std::min_element(fused.begin(), fused.end()), median(fused),
               *std::min_element(comp.begin(), comp.end()), median(comp), median(comp) / median(fused));
  return gdiff <= 1e-5 * std::max(gmax, 1.0) ? 0 : 1;
}
