#include "core/model/generate.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/core/Event.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include <algorithm>
#include <chrono>
#include <optional>

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

// A generator of `device` seeded with `seed`.
at::Generator seeded_generator(const torch::Device& device, uint64_t seed) {
  at::Generator gen = device.is_cuda() ? at::detail::getCUDAHooks().getNewGenerator(device.index())
                                       : at::make_generator<at::CPUGeneratorImpl>(seed);
  gen.set_current_seed(seed);
  return gen;
}

// The host copy of a step's tokens, taken without stopping the device: a non-blocking copy (into pinned memory)
// and an event recorded after it; ready() waits for that event only, not for work queued after it.
class HostTokens {
 public:
  explicit HostTokens(const torch::Tensor& ids) {
    if (!ids.is_cuda()) {
      host_ = ids.to(torch::kCPU);
      return;
    }
    host_ = ids.to(torch::kCPU, /*non_blocking=*/true);
    event_.emplace(ids.device().type());
    event_->record(c10::impl::getDeviceGuardImpl(ids.device().type())->getStream(ids.device()));
  }
  const int64_t* ready() {
    if (event_) event_->synchronize();
    return host_.data_ptr<int64_t>();
  }

 private:
  torch::Tensor host_;
  std::optional<c10::Event> event_;
};

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
  for (int64_t b = 0; b < B; ++b) {
    const auto& p = prompts[b];
    const int64_t n = static_cast<int64_t>(p.size()), pad = T - n;
    ids[b].narrow(0, pad, n).copy_(torch::tensor(p, torch::kLong));
    real[b].narrow(0, pad, n).fill_(true);
    result.stats.prompt_tokens += n;
  }
  ids = ids.to(device), real = real.to(device);

  // Sampling runs where the generator lives: the model's device (its own generator seeded with o.seed) unless the
  // caller passes one (e.g. a CPU generator, to draw the same documents on any device).
  auto own_gen = seeded_generator(device, o.seed);
  at::Generator& gen = o.generator != nullptr ? *o.generator : own_gen;
  const torch::Device sample_device = gen.device();
  torch::Tensor seen;  // repetition penalty: the tokens each row has read or produced
  if (o.sampling.repetition_penalty != 1.0) seen = seen_tokens(prompts, model->config().vocab_size, sample_device);
  auto sample = [&](const torch::Tensor& logits) {
    auto next = sample_next(logits.to(sample_device), o.sampling, seen, gen);
    if (seen.defined()) seen.scatter_(1, next.unsqueeze(1), true);
    return next.to(device);
  };

  InferenceCache cache(static_cast<int64_t>(model->model->layers->size()), o.kv);
  const double t0 = now_seconds();
  auto logits = prefill(model, ids, real, cache);
  sync(device);
  const double t1 = now_seconds();
  result.stats.prefill_seconds = t1 - t0;

  // The fast path's preparation (fused weights on first use, RoPE table) counts as decode time.
  std::unique_ptr<Decoder> decoder;
  if (!o.reference_decode && o.max_new_tokens > 1)
    decoder = std::make_unique<Decoder>(model, cache, T + o.max_new_tokens, DecoderOptions{o.cuda_graph});
  // One decode step and the sampling of its tokens. Greedy sampling on the model's device uses no random numbers
  // and never waits for the host, so it runs inside the decoder's step (and its CUDA graph); sampling with a
  // temperature runs after the step (a seeded generator's state would have to be registered with the graph).
  const bool sample_in_step = o.sampling.temperature <= 0 && sample_device == device;
  auto decode_and_sample = [&](const torch::Tensor& next) {
    ++result.stats.decode_steps;
    if (!decoder) return sample(model->forward_cached(next.view({B, 1}), {}, cache));
    return sample_in_step ? decoder->step(next, sample) : sample(decoder->step(next));
  };

  // Pipelined: step s+1 is queued before the host reads step s's tokens, so the device never waits for the host
  // (streaming, stop tokens); when every sequence has stopped, that one queued step is wasted.
  result.tokens.assign(B, {});
  std::vector<bool> done(B, false);
  int64_t active = B;
  torch::Tensor next = o.max_new_tokens > 0 ? sample(logits) : torch::Tensor();
  double t_step = now_seconds();
  for (int64_t step = 0; step < o.max_new_tokens; ++step) {
    HostTokens host(next);
    if (step + 1 < o.max_new_tokens) next = decode_and_sample(next);
    const int64_t* nx = host.ready();
    for (int64_t b = 0; b < B; ++b) {
      if (done[b]) continue;
      result.tokens[b].push_back(nx[b]);
      ++result.stats.new_tokens;
      if (on_token) on_token(b, nx[b]);
      if (std::find(o.stop_ids.begin(), o.stop_ids.end(), nx[b]) != o.stop_ids.end()) done[b] = true, --active;
    }
    if (step > 0) result.stats.step_seconds.push_back(now_seconds() - t_step);  // the first step warms caches up
    t_step = now_seconds();
    if (active == 0) break;
  }
  sync(device);
  result.stats.decode_seconds = now_seconds() - t1;
  result.stats.state_bytes = cache.bytes();
  return result;
}

}  // namespace supra
