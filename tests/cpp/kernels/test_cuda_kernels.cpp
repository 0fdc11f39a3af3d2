// The CUDA linear-attention kernels against the float64 naive reference (../shared/docs/kernel-benchmark-protocol.md,
// "Correctness gate"): outputs, final states and gradients for bf16 and fp32, head dims 64 and 128, ragged lengths,
// GQA, initial states, packed documents; outputs poisoned with NaN first; the sequence-parallel mode
// (SUPRA_LINEAR_ATTENTION_SEGMENTS); prefill→decode continuity; the decode step eager and under a CUDA graph; the
// fused SUPRA decode step against the CPU op and under a CUDA graph; and a SUPRA model's loss and gradients on CUDA
// against CPU.
// Every test skips cleanly when LibTorch has no CUDA or the machine has no GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "core/supra/convert.h"
#include "core/supra/supra_attention.h"
#include "kernels/linear_attention.h"

#if defined(SUPRA_WITH_CUDA)
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace {

using torch::Tensor;

bool have_gpu() {
#if defined(SUPRA_WITH_CUDA)
  return torch::cuda::is_available();
#else
  return false;
#endif
}

#define SKIP_WITHOUT_GPU()                                                                          \
  do {                                                                                              \
    if (!have_gpu()) GTEST_SKIP() << "no CUDA device (or LibTorch without CUDA): GPU test skipped"; \
  } while (0)

// RMS(ref − x) / RMS(ref), in float64 on the CPU.
double rel_rms(const Tensor& ref, const Tensor& x) {
  const Tensor r = ref.detach().to(torch::kCPU, torch::kDouble);
  const Tensor d = x.detach().to(torch::kCPU, torch::kDouble) - r;
  const double denom = r.pow(2).mean().sqrt().item<double>();
  return d.pow(2).mean().sqrt().item<double>() / (denom > 0 ? denom : 1.0);
}

bool all_finite(const Tensor& x) { return torch::isfinite(x.detach()).all().item<bool>(); }

// Fills a large block of the CUDA caching allocator with NaN and frees it, so that the next allocations (the ops'
// outputs) very likely reuse NaN memory: an output element the kernel forgets to write shows up as NaN.
void poison_cuda_memory(int64_t bytes) {
  Tensor t = torch::full({bytes / 4}, std::nanf(""), torch::TensorOptions().device(torch::kCUDA).dtype(torch::kFloat));
  t.reset();
}

struct Case {
  int64_t B, T, H, Hkv, D;
  torch::Dtype dtype;
  bool initial_state, resets, positive;
  std::string segments = "";  // SUPRA_LINEAR_ATTENTION_SEGMENTS for this case ("": as the environment has it)
  std::string name() const {
    return "B=" + std::to_string(B) + " T=" + std::to_string(T) + " H=" + std::to_string(H) + "/" +
           std::to_string(Hkv) + " D=" + std::to_string(D) + (dtype == torch::kBFloat16 ? " bf16" : " fp32") +
           (initial_state ? " S0" : "") + (resets ? " resets" : "") + (positive ? " positive" : "") +
           (segments.empty() ? "" : " segments=" + segments);
  }
};

// Sets an environment variable for one scope, then restores it (or unsets it).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

Tensor reference_log_gamma(int64_t H) {
  // The SUPRA reference slopes span fast and slow heads: log γ_h = −2^{−8(h+1)/H}.
  return -torch::pow(2.0, -8.0 * (torch::arange(H, torch::kDouble) + 1) / static_cast<double>(H)).to(torch::kFloat);
}

Tensor random_resets(int64_t B, int64_t T, std::vector<int64_t> extra = {}) {
  Tensor r = torch::rand({B, T}, torch::kDouble) < 0.02;
  extra.insert(extra.end(), {0, 31, 32, 63, 64, 65, 100, 1000});
  for (int64_t t : extra) {
    if (t < T) r.index_put_({0, t}, true);
  }
  return r;
}

// One correctness-gate check: the kernels' o, final state, dq, dk, dv (and d initial state) against autograd
// through the float64 naive form on the CPU, on the same (dtype-rounded) inputs.
void check_case(const Case& c, uint64_t seed) {
  SCOPED_TRACE(c.name());
  torch::manual_seed(seed);
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.D));
  auto rnd = [&](std::vector<int64_t> shape, bool positive) {
    Tensor x = torch::randn(shape, torch::kDouble);
    if (positive) x = x.clamp_min(0);
    return x.to(c.dtype).to(torch::kDouble);  // rounded to the kernel dtype: both sides see the same values
  };
  const Tensor q = rnd({c.B, c.T, c.H, c.D}, c.positive), k = rnd({c.B, c.T, c.Hkv, c.D}, c.positive),
               v = rnd({c.B, c.T, c.Hkv, c.D}, false), d_o = rnd({c.B, c.T, c.H, c.D}, false);
  const Tensor d_state = torch::randn({c.B, c.H, c.D, c.D}, torch::kDouble);
  const Tensor s0 = c.initial_state ? torch::randn({c.B, c.H, c.D, c.D}, torch::kDouble) : Tensor();
  // With segments (multiples of 64 tokens): also resets on the first and last token of a 128- or 256-token segment.
  const Tensor resets =
      c.resets ? random_resets(c.B, c.T,
                               c.segments.empty() ? std::vector<int64_t>{} : std::vector<int64_t>{128, 255, 256, 511})
               : Tensor();
  const Tensor log_gamma = reference_log_gamma(c.H);
  std::optional<ScopedEnv> segments_env;
  if (!c.segments.empty()) segments_env.emplace("SUPRA_LINEAR_ATTENTION_SEGMENTS", c.segments);

  // float64 reference on the CPU
  std::vector<Tensor> ref_in = {q.clone().requires_grad_(), k.clone().requires_grad_(), v.clone().requires_grad_()};
  supra::kernels::LinearAttentionArgs ra;
  ra.log_gamma = log_gamma;
  ra.scale = scale;
  if (s0.defined()) ra.initial_state = s0.clone().requires_grad_();
  ra.resets = resets;
  auto [ro, rs] = supra::reference::naive(ref_in[0], ref_in[1], ref_in[2], ra);
  ((ro * d_o).sum() + (rs * d_state).sum()).backward();

  // the kernels on the GPU
  poison_cuda_memory(int64_t{256} << 20);
  const auto dev = torch::TensorOptions().device(torch::kCUDA);
  std::vector<Tensor> in = {q.to(dev.dtype(c.dtype)).requires_grad_(), k.to(dev.dtype(c.dtype)).requires_grad_(),
                            v.to(dev.dtype(c.dtype)).requires_grad_()};
  supra::kernels::LinearAttentionArgs ka;
  ka.log_gamma = log_gamma.to(torch::kCUDA);
  ka.scale = scale;
  if (s0.defined()) ka.initial_state = s0.to(dev.dtype(torch::kFloat)).requires_grad_();
  if (resets.defined()) ka.resets = resets.to(torch::kCUDA);
  auto [o, s] = supra::kernels::linear_attention(in[0], in[1], in[2], ka, 64);
  ASSERT_EQ(o.scalar_type(), c.dtype);
  ASSERT_EQ(s.scalar_type(), torch::kFloat);
  ASSERT_TRUE(o.is_cuda());
  ((o.to(torch::kFloat) * d_o.to(dev.dtype(torch::kFloat))).sum() + (s * d_state.to(dev.dtype(torch::kFloat))).sum())
      .backward();

  const double tol = c.dtype == torch::kFloat ? 1e-5 : 5e-3;
  std::vector<std::pair<std::string, std::pair<Tensor, Tensor>>> checks = {{"o", {ro, o}},
                                                                           {"final state", {rs, s}},
                                                                           {"dq", {ref_in[0].grad(), in[0].grad()}},
                                                                           {"dk", {ref_in[1].grad(), in[1].grad()}},
                                                                           {"dv", {ref_in[2].grad(), in[2].grad()}}};
  if (s0.defined()) checks.push_back({"d initial state", {ra.initial_state.grad(), ka.initial_state.grad()}});
  for (const auto& [what, pair] : checks) {
    ASSERT_TRUE(pair.second.defined()) << what << " has no gradient";
    EXPECT_TRUE(all_finite(pair.second)) << what << " has NaN/Inf (unwritten output?)";
    const double err = rel_rms(pair.first, pair.second);
    EXPECT_LE(err, tol) << what;
  }
}

// Readable test parameters in gtest / ctest output.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name(); }

class CudaChunked : public ::testing::TestWithParam<Case> {};

TEST_P(CudaChunked, MatchesFloat64Reference) {
  SKIP_WITHOUT_GPU();
  check_case(GetParam(), 1234);
  check_case(GetParam(), 99);  // fresh inputs
}

std::vector<Case> chunked_cases() {
  std::vector<Case> cases;
  for (torch::Dtype dt : {torch::kBFloat16, torch::kFloat}) {
    for (int64_t D : {64, 128}) {
      cases.push_back({1, 1, 2, 2, D, dt, false, false, false});    // one token
      cases.push_back({2, 1000, 4, 4, D, dt, true, false, false});  // ragged (not a multiple of any chunk)
      cases.push_back({2, 256, 4, 2, D, dt, false, false, true});   // GQA, positive feature maps
      cases.push_back({2, 300, 4, 1, D, dt, true, true, false});    // GQA (MQA) + packed documents + S0
      cases.push_back({1, 130, 2, 2, D, dt, false, true, false});   // boundaries on chunk edges
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaChunked, ::testing::ValuesIn(chunked_cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           std::string n = "case" + std::to_string(info.index);
                           return n;
                         });

// The sequence-parallel mode (kernels/cuda/segments.cuh): several CTAs per (batch row, head), forced through
// SUPRA_LINEAR_ATTENTION_SEGMENTS for forward and backward; both implementations (fp32 runs the CUDA-core path).
class CudaChunkedSegments : public ::testing::TestWithParam<Case> {};

TEST_P(CudaChunkedSegments, MatchesFloat64Reference) {
  SKIP_WITHOUT_GPU();
  check_case(GetParam(), 4321);
}

std::vector<Case> segmented_cases() {
  std::vector<Case> cases;
  for (torch::Dtype dt : {torch::kBFloat16, torch::kFloat}) {
    for (int64_t D : {64, 128}) {
      // 4 segments of 256 tokens, the last one 232: ragged, S0 through every segment (no resets)
      cases.push_back({2, 1000, 4, 4, D, dt, true, false, false, "4"});
      // MQA, packed documents (resets on segment edges), S0: 3 segments of 128, the last one 44
      cases.push_back({2, 300, 4, 1, D, dt, true, true, false, "3"});
      // auto: B·H = 4 → min(SMs / 4, T / 256) = 4 segments of 256 (any GPU with ≥ 16 SMs); GQA, positive maps
      cases.push_back({1, 1024, 4, 2, D, dt, false, true, true, "auto"});
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Segments, CudaChunkedSegments, ::testing::ValuesIn(segmented_cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return "case" + std::to_string(info.index);
                         });

// SUPRA_LINEAR_ATTENTION_SEGMENTS: off gives the same numbers as unset; a bad value is refused naming the variable.
TEST(CudaChunkedSegments, OffMatchesDefaultAndBadValueIsRefused) {
  SKIP_WITHOUT_GPU();
  torch::manual_seed(12);
  const auto opt = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kBFloat16);
  const Tensor q = torch::randn({1, 512, 2, 64}, opt), k = torch::randn({1, 512, 2, 64}, opt),
               v = torch::randn({1, 512, 2, 64}, opt);
  supra::kernels::LinearAttentionArgs a;
  a.log_gamma = reference_log_gamma(2).to(torch::kCUDA);
  a.scale = 0.125;
  auto [o1, s1] = supra::kernels::linear_attention(q, k, v, a, 64);
  {
    ScopedEnv env("SUPRA_LINEAR_ATTENTION_SEGMENTS", "off");
    auto [o2, s2] = supra::kernels::linear_attention(q, k, v, a, 64);
    EXPECT_EQ(rel_rms(o1, o2), 0.0);
    EXPECT_EQ(rel_rms(s1, s2), 0.0);
  }
  {
    ScopedEnv env("SUPRA_LINEAR_ATTENTION_SEGMENTS", "many");
    try {
      supra::kernels::linear_attention(q, k, v, a, 64);
      FAIL() << "SUPRA_LINEAR_ATTENTION_SEGMENTS=many accepted";
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what()).find("SUPRA_LINEAR_ATTENTION_SEGMENTS"), std::string::npos) << e.what();
    }
  }
}

TEST(CudaChunked, SimtAndTensorCorePathsAgreeForBf16) {
  SKIP_WITHOUT_GPU();
#if defined(SUPRA_WITH_CUDA)
  torch::manual_seed(5);
  const auto opt = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kBFloat16);
  const Tensor q = torch::randn({2, 200, 4, 128}, opt), k = torch::randn({2, 200, 4, 128}, opt),
               v = torch::randn({2, 200, 4, 128}, opt);
  supra::kernels::LinearAttentionArgs a;
  a.log_gamma = reference_log_gamma(4).to(torch::kCUDA);
  a.scale = 1 / std::sqrt(128.0);
  setenv("SUPRA_LINEAR_ATTENTION_IMPL", "simt", 1);
  auto [o1, s1] = supra::kernels::linear_attention(q, k, v, a, 64);
  setenv("SUPRA_LINEAR_ATTENTION_IMPL", "mma", 1);
  auto [o2, s2] = supra::kernels::linear_attention(q, k, v, a, 64);
  unsetenv("SUPRA_LINEAR_ATTENTION_IMPL");
  EXPECT_LE(rel_rms(o1, o2), 5e-3);
  EXPECT_LE(rel_rms(s1, s2), 5e-3);
#endif
}

TEST(CudaChunked, UnsupportedHeadDimFallsBackToReferenceForm) {
  SKIP_WITHOUT_GPU();
  torch::manual_seed(6);
  const auto opt = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kFloat);
  const Tensor q = torch::randn({1, 50, 2, 8}, opt), k = torch::randn({1, 50, 2, 8}, opt),
               v = torch::randn({1, 50, 2, 8}, opt);
  supra::kernels::LinearAttentionArgs a;
  a.log_gamma = reference_log_gamma(2).to(torch::kCUDA);
  a.scale = 0.3;
  auto [o, s] = supra::kernels::linear_attention(q, k, v, a, 16);
  supra::kernels::LinearAttentionArgs ac = a;
  ac.log_gamma = a.log_gamma.cpu();
  auto [ro, rs] =
      supra::reference::naive(q.cpu().to(torch::kDouble), k.cpu().to(torch::kDouble), v.cpu().to(torch::kDouble), ac);
  EXPECT_LE(rel_rms(ro, o), 1e-5);
  EXPECT_LE(rel_rms(rs, s), 1e-5);
}

// Chunked prefill of T tokens, then 16 recurrent steps (the in-place decode kernel), equals the chunked op on
// T + 16 tokens: the state handed from prefill to decoding is the same tensor.
TEST(CudaDecode, PrefillThenDecodeContinuesTheSequence) {
  SKIP_WITHOUT_GPU();
  for (torch::Dtype dt : {torch::kFloat, torch::kBFloat16}) {
    for (int64_t Hkv : {4, 2}) {
      SCOPED_TRACE(std::string(dt == torch::kFloat ? "fp32" : "bf16") + " Hkv=" + std::to_string(Hkv));
      torch::manual_seed(7);
      const int64_t B = 3, T = 100, H = 4, D = 128, N = 16;
      const auto opt = torch::TensorOptions().device(torch::kCUDA).dtype(dt);
      const Tensor q = torch::randn({B, T + N, H, D}, opt), k = torch::randn({B, T + N, Hkv, D}, opt),
                   v = torch::randn({B, T + N, Hkv, D}, opt);
      supra::kernels::LinearAttentionArgs a;
      a.log_gamma = reference_log_gamma(H).to(torch::kCUDA);
      a.scale = 1 / std::sqrt(static_cast<double>(D));
      torch::NoGradGuard ng;
      auto [o_full, s_full] = supra::kernels::linear_attention(q, k, v, a, 64);
      using torch::indexing::Slice;
      auto [o_pre, state] = supra::kernels::linear_attention(
          q.index({Slice(), Slice(0, T)}), k.index({Slice(), Slice(0, T)}), v.index({Slice(), Slice(0, T)}), a, 64);
      std::vector<Tensor> outs;
      for (int64_t t = T; t < T + N; ++t) {
        outs.push_back(supra::kernels::linear_attention_step_(q.select(1, t), k.select(1, t), v.select(1, t), state,
                                                              a.log_gamma, a.scale));
      }
      const Tensor o_dec = torch::stack(outs, 1);
      const double tol = dt == torch::kFloat ? 1e-5 : 1e-2;  // bf16: both sides round o to bf16
      EXPECT_LE(rel_rms(o_full.index({Slice(), Slice(T, T + N)}), o_dec), tol);
      EXPECT_LE(rel_rms(s_full, state), dt == torch::kFloat ? 1e-5 : 5e-3);
    }
  }
}

TEST(CudaDecode, StepMatchesReferenceWithResets) {
  SKIP_WITHOUT_GPU();
  for (torch::Dtype dt : {torch::kFloat, torch::kBFloat16}) {
    for (int64_t D : {64, 128}) {
      torch::manual_seed(8);
      const int64_t B = 5, H = 4, Hkv = 2;
      const auto opt = torch::TensorOptions().device(torch::kCUDA).dtype(dt);
      const Tensor q = torch::randn({B, H, D}, opt), k = torch::randn({B, Hkv, D}, opt),
                   v = torch::randn({B, Hkv, D}, opt);
      const Tensor s0 = torch::randn({B, H, D, D}, opt.dtype(torch::kFloat));
      const Tensor reset = torch::tensor({false, true, false, true, false}).to(torch::kCUDA);
      const Tensor lg = reference_log_gamma(H).to(torch::kCUDA);
      const double scale = 1 / std::sqrt(static_cast<double>(D));
      auto [ro, rs] = supra::reference::recurrent_step(q.cpu().to(torch::kDouble), k.cpu().to(torch::kDouble),
                                                       v.cpu().to(torch::kDouble), s0.cpu().to(torch::kDouble),
                                                       lg.cpu(), scale, reset.cpu());
      poison_cuda_memory(int64_t{64} << 20);
      Tensor state = s0.clone();
      const Tensor o = supra::kernels::linear_attention_step_(q, k, v, state, lg, scale, reset);
      EXPECT_TRUE(all_finite(o));
      EXPECT_LE(rel_rms(ro, o), dt == torch::kFloat ? 1e-5 : 5e-3);
      EXPECT_LE(rel_rms(rs, state), 1e-5);
      // the functional step agrees with the in-place one
      auto [o2, s2] = supra::kernels::linear_attention_step(q, k, v, s0, lg, scale, reset);
      EXPECT_LE(rel_rms(o, o2), dt == torch::kFloat ? 1e-5 : 1e-2);
      EXPECT_LE(rel_rms(state, s2), 1e-5);
    }
  }
}

TEST(CudaDecode, StepReplaysUnderCudaGraph) {
  SKIP_WITHOUT_GPU();
#if defined(SUPRA_WITH_CUDA)
  torch::manual_seed(9);
  const int64_t B = 8, H = 4, D = 128;
  const auto opt = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kBFloat16);
  Tensor q = torch::randn({B, H, D}, opt), k = torch::randn({B, H, D}, opt), v = torch::randn({B, H, D}, opt);
  const Tensor lg = reference_log_gamma(H).to(torch::kCUDA);
  const double scale = 1 / std::sqrt(static_cast<double>(D));
  Tensor state = torch::randn({B, H, D, D}, opt.dtype(torch::kFloat));
  Tensor eager_state = state.clone();

  auto stream = c10::cuda::getStreamFromPool();
  Tensor o_graph;
  at::cuda::CUDAGraph graph;
  {
    c10::cuda::CUDAStreamGuard guard(stream);
    Tensor warm_state = state.clone();
    supra::kernels::linear_attention_step_(q, k, v, warm_state, lg, scale);  // warm-up outside capture
    stream.synchronize();
    graph.capture_begin();
    o_graph = supra::kernels::linear_attention_step_(q, k, v, state, lg, scale);
    graph.capture_end();
  }
  torch::cuda::synchronize();
  for (int step = 0; step < 3; ++step) {
    q.normal_();
    k.normal_();
    v.normal_();
    const Tensor o_eager = supra::kernels::linear_attention_step_(q, k, v, eager_state, lg, scale);
    graph.replay();
    torch::cuda::synchronize();
    EXPECT_EQ(rel_rms(o_eager, o_graph), 0.0) << "step " << step;
    EXPECT_EQ(rel_rms(eager_state, state), 0.0) << "step " << step;
  }
#endif
}

// The fused SUPRA decode step (op supra::supra_decode_step_, CUDA key: kernels/cuda/decode_fused.cuh) against the
// CPU op (kernels/cpu/decode_step.cpp) on the same inputs, several steps of one state: outputs and states; bf16 and
// fp32 pre, D 64 / 128, GQA and MQA; pre of both signs (the ReLU matters), real RoPE rows.
TEST(CudaDecode, FusedSupraStepMatchesCpu) {
  SKIP_WITHOUT_GPU();
  struct Shape {
    int64_t B, H, Hkv, D;
  };
  for (torch::Dtype dt : {torch::kFloat, torch::kBFloat16}) {
    // D = 32 is not a kernel head dim: the CUDA op runs the composite there (same function).
    for (const Shape& sh :
         {Shape{3, 4, 2, 64}, Shape{2, 4, 4, 128}, Shape{5, 8, 2, 128}, Shape{1, 6, 1, 64}, Shape{2, 2, 1, 32}}) {
      torch::manual_seed(21);
      const int64_t B = sh.B, H = sh.H, Hkv = sh.Hkv, D = sh.D;
      const double scale = 1 / std::sqrt(static_cast<double>(D));
      const Tensor lg = reference_log_gamma(H);
      Tensor cpu_state = torch::randn({B, H, D, D}) * 0.1;
      Tensor gpu_state = cpu_state.to(torch::kCUDA);
      for (int step = 0; step < 3; ++step) {
        const Tensor pre = torch::randn({B, (H + 2 * Hkv) * D}).to(dt);
        const Tensor angle = torch::rand({B, D}) * 6.3;
        const Tensor cs = angle.cos(), sn = angle.sin();
        const Tensor ref = supra::kernels::supra_decode_step_(pre, cs, sn, cpu_state, lg, scale);
        poison_cuda_memory(int64_t{16} << 20);
        const Tensor out = supra::kernels::supra_decode_step_(
            pre.to(torch::kCUDA), cs.to(torch::kCUDA), sn.to(torch::kCUDA), gpu_state, lg.to(torch::kCUDA), scale);
        const std::string what = "B=" + std::to_string(B) + " H=" + std::to_string(H) + "/" + std::to_string(Hkv) +
                                 " D=" + std::to_string(D) + (dt == torch::kBFloat16 ? " bf16" : " fp32") + " step " +
                                 std::to_string(step);
        ASSERT_EQ(out.scalar_type(), dt) << what;
        ASSERT_EQ(out.sizes(), ref.sizes()) << what;
        EXPECT_TRUE(all_finite(out)) << what;
        // bf16: both sides round their output once (and may differ by one bf16 ulp where fp32 orders differ).
        EXPECT_LE(rel_rms(ref, out), dt == torch::kFloat ? 1e-5 : 5e-3) << what;
        EXPECT_LE(rel_rms(cpu_state, gpu_state), 1e-5) << what;
      }
    }
  }
}

TEST(CudaDecode, FusedSupraStepRefusesBadShapes) {
  SKIP_WITHOUT_GPU();
  const auto opt = torch::TensorOptions().device(torch::kCUDA);
  const int64_t B = 2, H = 4, Hkv = 2, D = 64;
  Tensor state = torch::zeros({B, H, D, D}, opt);
  const Tensor pre = torch::randn({B, (H + 2 * Hkv) * D}, opt.dtype(torch::kBFloat16));
  const Tensor cs = torch::ones({B, D}, opt), sn = torch::zeros({B, D}, opt);
  const Tensor lg = reference_log_gamma(H).to(torch::kCUDA);
  EXPECT_THROW(supra::kernels::supra_decode_step_(pre.narrow(1, 0, 5 * D), cs, sn, state, lg, 1.0), c10::Error);
  EXPECT_THROW(supra::kernels::supra_decode_step_(pre, cs.narrow(1, 0, 8), sn.narrow(1, 0, 8), state, lg, 1.0),
               c10::Error);
  EXPECT_THROW(supra::kernels::supra_decode_step_(pre, cs, sn, state, lg.narrow(0, 0, 2), 1.0), c10::Error);
}

// The fused step captured once in a CUDA graph and replayed: bit-identical to eager launches on the same inputs
// (the op allocates only its output and synchronises nothing), and the composite agrees.
TEST(CudaDecode, FusedSupraStepReplaysUnderCudaGraph) {
  SKIP_WITHOUT_GPU();
#if defined(SUPRA_WITH_CUDA)
  torch::manual_seed(22);
  const int64_t B = 8, H = 4, Hkv = 2, D = 128;
  const auto opt = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kBFloat16);
  Tensor pre = torch::randn({B, (H + 2 * Hkv) * D}, opt);
  Tensor angle = torch::rand({B, D}, opt.dtype(torch::kFloat)) * 6.3;
  Tensor cs = angle.cos(), sn = angle.sin();
  const Tensor lg = reference_log_gamma(H).to(torch::kCUDA);
  const double scale = 1 / std::sqrt(static_cast<double>(D));
  Tensor state = torch::randn({B, H, D, D}, opt.dtype(torch::kFloat)) * 0.1;
  Tensor eager_state = state.clone(), composite_state = state.clone();

  auto stream = c10::cuda::getStreamFromPool();
  Tensor out_graph;
  at::cuda::CUDAGraph graph;
  {
    c10::cuda::CUDAStreamGuard guard(stream);
    Tensor warm_state = state.clone();
    supra::kernels::supra_decode_step_(pre, cs, sn, warm_state, lg, scale);  // warm-up outside capture
    stream.synchronize();
    graph.capture_begin();
    out_graph = supra::kernels::supra_decode_step_(pre, cs, sn, state, lg, scale);
    graph.capture_end();
  }
  torch::cuda::synchronize();
  for (int step = 0; step < 3; ++step) {
    pre.normal_();
    angle.uniform_(0, 6.3);
    cs.copy_(angle.cos());
    sn.copy_(angle.sin());
    const Tensor out_eager = supra::kernels::supra_decode_step_(pre, cs, sn, eager_state, lg, scale);
    const Tensor out_composite = supra::kernels::supra_decode_step_composite(pre, cs, sn, composite_state, lg, scale);
    graph.replay();
    torch::cuda::synchronize();
    EXPECT_EQ(rel_rms(out_eager, out_graph), 0.0) << "step " << step;
    EXPECT_EQ(rel_rms(eager_state, state), 0.0) << "step " << step;
    EXPECT_LE(rel_rms(out_composite, out_eager), 5e-3) << "step " << step;
    EXPECT_LE(rel_rms(composite_state, eager_state), 1e-5) << "step " << step;
  }
#endif
}

TEST(CudaChunked, RejectsNonKernelDtypeWithClearMessage) {
  SKIP_WITHOUT_GPU();
  const auto opt = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kHalf);
  supra::kernels::LinearAttentionArgs a;
  a.log_gamma = reference_log_gamma(2).to(torch::kCUDA);
  const Tensor x = torch::randn({1, 8, 2, 64}, opt);
  try {
    supra::kernels::linear_attention(x, x, x, a, 64);
    FAIL() << "float16 accepted";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("bfloat16 or float32"), std::string::npos) << e.what();
  }
}

// A converted SUPRA model (head dim 64, GQA, two layers) computes the same loss and gradients on CUDA (the kernels)
// as on the CPU (the reference chunked form), in fp32.
TEST(CudaModel, SupraLossAndGradientsMatchCpu) {
  SKIP_WITHOUT_GPU();
  supra::ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  c.vocab_size = 97;
  c.hidden_size = 256;
  c.intermediate_size = 320;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 64;
  c.validate("test");
  torch::manual_seed(3);
  supra::CausalLM cpu_model(c);
  {
    torch::NoGradGuard g;
    for (auto& p : cpu_model->parameters()) p.normal_(0, 0.05);
  }
  supra::convert_to_supra(cpu_model, supra::SupraSettings{}, 11);
  supra::CausalLM gpu_model(c);
  supra::convert_to_supra(gpu_model, supra::SupraSettings{}, 11);
  {
    torch::NoGradGuard g;
    auto src = cpu_model->named_parameters();
    for (auto& p : gpu_model->named_parameters()) p.value().copy_(src[p.key()]);
  }
  gpu_model->to(torch::kCUDA);

  const Tensor ids = torch::randint(0, c.vocab_size, {2, 150}, torch::kLong);
  Tensor resets = torch::zeros({2, 150}, torch::kBool);
  resets.index_put_({1, 70}, true);
  auto loss_of = [&](supra::CausalLM& m, const Tensor& x, const Tensor& r) {
    using torch::indexing::Slice;
    const Tensor logits = m->forward(x.index({Slice(), Slice(0, -1)}), {}, {}, r.index({Slice(), Slice(0, -1)}));
    return torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}).to(torch::kFloat),
                                                x.index({Slice(), Slice(1, torch::indexing::None)}).reshape({-1}));
  };
  const Tensor l_cpu = loss_of(cpu_model, ids, resets);
  const Tensor l_gpu = loss_of(gpu_model, ids.to(torch::kCUDA), resets.to(torch::kCUDA));
  l_cpu.backward();
  l_gpu.backward();
  EXPECT_NEAR(l_cpu.item<double>(), l_gpu.item<double>(), 1e-4 * std::abs(l_cpu.item<double>()));
  auto gpu_params = gpu_model->named_parameters();
  for (const auto& p : cpu_model->named_parameters()) {
    const Tensor g_cpu = p.value().grad(), g_gpu = gpu_params[p.key()].grad();
    ASSERT_TRUE(g_cpu.defined() && g_gpu.defined()) << p.key();
    EXPECT_LE(rel_rms(g_cpu, g_gpu), 1e-3) << p.key();
  }
}

}  // namespace
