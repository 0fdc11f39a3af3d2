#include "core/model/generate.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>

#include "core/base/error.h"
#include "core/model/prefill.h"

namespace supra {
namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void sync(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

}  // namespace

GenerateResult generate(CausalLM& model, const std::vector<std::vector<int64_t>>& prompts, const GenerateOptions& o,
                        const TokenCallback& on_token) {
  TORCH_CHECK(!prompts.empty(), "generate: no prompts");
  for (const auto& p : prompts)
    if (p.empty()) throw Error("generate", "a prompt has no tokens (it needs at least BOS)");
  torch::NoGradGuard no_grad;
  const auto device = model->lm_head_weight().device();
  const int64_t B = static_cast<int64_t>(prompts.size());
  int64_t T = 0;
  for (const auto& p : prompts) T = std::max<int64_t>(T, static_cast<int64_t>(p.size()));

  // Left-padded prompts: every sequence's last prompt token sits in column T-1.
  auto ids = torch::zeros({B, T}, torch::kLong), real = torch::zeros({B, T}, torch::kBool);
  GenerateResult result;
  std::vector<std::vector<int64_t>> history(prompts.begin(), prompts.end());
  for (int64_t b = 0; b < B; ++b) {
    const auto& p = prompts[b];
    const int64_t n = static_cast<int64_t>(p.size()), pad = T - n;
    ids[b].narrow(0, pad, n).copy_(torch::tensor(p, torch::kLong));
    real[b].narrow(0, pad, n).fill_(true);
    result.stats.prompt_tokens += n;
  }
  ids = ids.to(device), real = real.to(device);

  InferenceCache cache(static_cast<int64_t>(model->model->layers->size()), o.kv);
  auto own_gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  at::Generator& gen = o.generator != nullptr ? *o.generator : own_gen;
  const double t0 = now_seconds();
  auto logits = prefill(model, ids, real, cache);
  sync(device);
  const double t1 = now_seconds();
  result.stats.prefill_seconds = t1 - t0;

  result.tokens.assign(B, {});
  std::vector<bool> done(B, false);
  int64_t active = B;
  for (int64_t step = 0; step < o.max_new_tokens && active > 0; ++step) {
    auto next = sample_next(logits.cpu(), o.sampling, history, gen);
    const int64_t* nx = next.data_ptr<int64_t>();
    for (int64_t b = 0; b < B; ++b) {
      if (done[b]) continue;
      result.tokens[b].push_back(nx[b]);
      history[b].push_back(nx[b]);
      ++result.stats.new_tokens;
      if (on_token) on_token(b, nx[b]);
      if (std::find(o.stop_ids.begin(), o.stop_ids.end(), nx[b]) != o.stop_ids.end()) done[b] = true, --active;
    }
    if (active == 0 || step + 1 == o.max_new_tokens) break;
    logits = model->forward_cached(next.view({B, 1}).to(device), {}, cache);
    ++result.stats.decode_steps;
  }
  sync(device);
  result.stats.decode_seconds = now_seconds() - t1;
  result.stats.state_bytes = cache.bytes();
  return result;
}

}  // namespace supra
