// LibTorch glue for the CUDA linear-attention kernels. Compiled only when LibTorch has CUDA (SUPRA_WITH_CUDA=1;
// CMake adds kernels/cuda/*.cpp to supra_kernels then). It registers CUDA implementations of the operators defined
// in kernels/ops.cpp, so supra::kernels::linear_attention / torch.ops.supra.linear_attention pick them for CUDA
// tensors while CPU tensors keep the composite reference forms:
//   supra::linear_attention   AutogradCUDA: a torch::autograd::Function (forward kernel; backward = the backward
//                             kernels, recomputing from the saved inputs); CUDA (below autograd, e.g. under
//                             InferenceMode): the forward kernel alone.
//   supra::linear_attention_step_   CUDA: the in-place decode kernel.
//   supra::supra_decode_step_       CUDA: the fused SUPRA decode step (decode_fused.cuh; φ, RoPE, state update,
//                                   readout and GroupNorm in one kernel); other shapes / dtypes: the composite.
// Supported by the kernels: bf16 / fp32 q, k, v with head dim 64 or 128. float64 CUDA tensors run the reference
// chunked form (differentiable through ATen; for tests); anything else is refused with a TORCH_CHECK message.
// log_gamma gets no gradient from the kernels (it is a fixed buffer in SUPRA, as in fla's g_gamma).
// SUPRA_LINEAR_ATTENTION_IMPL=auto|simt|mma selects the chunked implementation (auto: tensor cores for bf16,
// CUDA cores for fp32; simt forces the fp32-arithmetic kernels also for bf16 — a cross-check).
// SUPRA_LINEAR_ATTENTION_SEGMENTS=off|auto|N selects the sequence-parallel mode of the chunked kernels (several CTAs
// per (batch row, head), each on one segment of the sequence; docs/kernels.md, "Sequence-parallel mode"): off (the
// default until it is measured on a GPU), auto (segments_for below) or N segments.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <tuple>

#include "kernels/cuda/linear_attention_kernels.h"
#include "kernels/linear_attention.h"
#include "kernels/op_args.h"
#include "kernels/reference/linear_attention.h"

namespace supra::kernels::cuda_glue {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

supra::cuda::Algo algo_from_env() {
  const char* env = std::getenv("SUPRA_LINEAR_ATTENTION_IMPL");
  const std::string value = env ? env : "";
  if (value.empty() || value == "auto") return supra::cuda::Algo::kAuto;
  if (value == "simt") return supra::cuda::Algo::kSimt;
  if (value == "mma") return supra::cuda::Algo::kTensorCore;
  TORCH_CHECK(false, "SUPRA_LINEAR_ATTENTION_IMPL must be auto, simt or mma, got '", value, "'");
  return supra::cuda::Algo::kAuto;
}

// Segment length of the sequence-parallel mode for a [B, T, H, ·] problem (0 = off), from
// SUPRA_LINEAR_ATTENTION_SEGMENTS:
//   off (or unset)  0: one CTA per (batch row, head) walks the whole row.
//   auto            nseg = min(⌊SMs / (B·H)⌋, ⌊T / 256⌋): as many segments as fill the GPU's SMs in one wave (the
//                   kernels run one CTA per SM; a second, partly filled wave would cost a whole segment's time),
//                   each segment at least 4 chunks (256 tokens) so that the extra state-only pass and the scan stay
//                   small next to the segment's work. Off when that is 1 (B·H alone fills half the SMs or more, or
//                   T < 512).
//   N (≥ 1)         N segments (1 = off).
// The segment length is ⌈T / nseg⌉ rounded up to a whole number of 64-token chunks (so at least one chunk; the
// number of segments actually used, ⌈T / segment_len⌉, can come out below nseg).
int64_t segment_len_from_env(int64_t B, int64_t H, int64_t T) {
  constexpr int64_t kChunk = 64, kMinAutoChunks = 4;
  const char* env = std::getenv("SUPRA_LINEAR_ATTENTION_SEGMENTS");
  const std::string value = env ? env : "";
  int64_t nseg = 1;
  if (value.empty() || value == "off") {
    return 0;
  } else if (value == "auto") {
    int device = 0, sms = 0;
    C10_CUDA_CHECK(cudaGetDevice(&device));
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    nseg = std::min<int64_t>(sms / std::max<int64_t>(B * H, 1), T / (kMinAutoChunks * kChunk));
  } else {
    const bool digits = value.size() <= 9 && value.find_first_not_of("0123456789") == std::string::npos;
    TORCH_CHECK(digits && std::stoll(value) >= 1,
                "SUPRA_LINEAR_ATTENTION_SEGMENTS must be off, auto or a number of segments >= 1, got '", value, "'");
    nseg = std::stoll(value);
  }
  if (nseg <= 1) return 0;
  const int64_t len = (T + nseg - 1) / nseg;
  return (len + kChunk - 1) / kChunk * kChunk;
}

bool kernel_dtype(const Tensor& t) { return t.scalar_type() == torch::kBFloat16 || t.scalar_type() == torch::kFloat; }

supra::cuda::ElemType elem_type(const Tensor& t) {
  return t.scalar_type() == torch::kBFloat16 ? supra::cuda::ElemType::kBFloat16 : supra::cuda::ElemType::kFloat32;
}

// Contiguous with a 16-byte aligned data pointer (the kernels copy rows in 16-byte pieces). A contiguous view at
// an odd storage offset is copied.
Tensor aligned_contiguous(const Tensor& t) {
  Tensor c = t.contiguous();
  if (reinterpret_cast<std::uintptr_t>(c.data_ptr()) % 16 != 0) c = c.clone(at::MemoryFormat::Contiguous);
  return c;
}

// Inputs as the kernels want them: contiguous and aligned, on q's device, q/k/v in one dtype, log_gamma and the
// initial state fp32, resets bool.
struct Prepared {
  Tensor q, k, v, log_gamma, initial_state, resets;
  double scale = 1.0;
};

Prepared prepare(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& log_gamma, double scale,
                 const std::optional<Tensor>& initial_state, const std::optional<Tensor>& resets) {
  reference::check_inputs(q, k, v, reference_args(log_gamma, scale, initial_state, resets));
  TORCH_CHECK(q.is_cuda() && k.is_cuda() && v.is_cuda(), "linear_attention (CUDA): q, k, v must be CUDA tensors");
  TORCH_CHECK(k.device() == q.device() && v.device() == q.device(),
              "linear_attention (CUDA): q, k, v on different devices");
  TORCH_CHECK(kernel_dtype(q),
              "linear_attention (CUDA): q, k, v must be bfloat16 or float32 (float64 runs the "
              "reference form), got ",
              q.scalar_type());
  TORCH_CHECK(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(),
              "linear_attention (CUDA): q, k, v must have the same dtype, got ", q.scalar_type(), ", ", k.scalar_type(),
              ", ", v.scalar_type());
  TORCH_CHECK(supra::cuda::chunked_supports_head_dim(q.size(3), v.size(3)),
              "linear_attention (CUDA): the kernels support head dims 64 and 128 with D_k == D_v, got D_k = ",
              q.size(3), ", D_v = ", v.size(3));
  Prepared p;
  p.q = aligned_contiguous(q);
  p.k = aligned_contiguous(k);
  p.v = aligned_contiguous(v);
  p.log_gamma = log_gamma.to(q.device(), torch::kFloat).contiguous();
  if (const Tensor s0 = from_optional(initial_state); s0.defined()) {
    TORCH_CHECK(s0.device() == q.device(), "linear_attention (CUDA): initial_state on another device");
    p.initial_state = s0.to(torch::kFloat).contiguous();
  }
  if (const Tensor r = from_optional(resets); r.defined()) p.resets = r.to(q.device(), torch::kBool).contiguous();
  p.scale = scale;
  return p;
}

supra::cuda::ChunkedArgs kernel_args(const Prepared& p) {
  supra::cuda::ChunkedArgs a;
  a.batch = p.q.size(0);
  a.seq_len = p.q.size(1);
  a.heads = static_cast<int>(p.q.size(2));
  a.kv_heads = static_cast<int>(p.k.size(2));
  a.head_dim = static_cast<int>(p.q.size(3));
  a.scale = static_cast<float>(p.scale);
  a.type = elem_type(p.q);
  a.algo = algo_from_env();
  a.q = p.q.data_ptr();
  a.k = p.k.data_ptr();
  a.v = p.v.data_ptr();
  a.log_gamma = p.log_gamma.data_ptr<float>();
  a.resets = p.resets.defined() ? reinterpret_cast<const uint8_t*>(p.resets.data_ptr<bool>()) : nullptr;
  a.initial_state = p.initial_state.defined() ? p.initial_state.data_ptr<float>() : nullptr;
  a.segment_len = segment_len_from_env(a.batch, a.heads, a.seq_len);
  return a;
}

// A workspace of the sequence-parallel mode, [B, H, nseg, D, D] fp32 (undefined without segments).
Tensor segment_workspace(const supra::cuda::ChunkedArgs& a, const Tensor& like) {
  const int64_t nseg = supra::cuda::num_segments(a);
  if (nseg == 1) return Tensor();
  return torch::empty({a.batch, a.heads, nseg, a.head_dim, a.head_dim}, like.options().dtype(torch::kFloat));
}

std::tuple<Tensor, Tensor> forward_kernels(const Prepared& p) {
  const c10::cuda::CUDAGuard guard(p.q.device());
  const int64_t B = p.q.size(0), H = p.q.size(2), D = p.q.size(3);
  Tensor o = torch::empty_like(p.q);  // p.q is contiguous
  Tensor state = torch::empty({B, H, D, D}, p.q.options().dtype(torch::kFloat));
  supra::cuda::ChunkedArgs a = kernel_args(p);
  a.o = o.data_ptr();
  a.final_state = state.data_ptr<float>();
  const Tensor seg_states = segment_workspace(a, p.q);
  if (seg_states.defined()) a.seg_states = seg_states.data_ptr<float>();
  C10_CUDA_CHECK(supra::cuda::chunked_forward(a, c10::cuda::getCurrentCUDAStream()));
  return {o, state};
}

// Returns (dq, dk, dv, d_initial_state); d_o / d_state may be undefined (no gradient flowed into that output).
std::tuple<Tensor, Tensor, Tensor, Tensor> backward_kernels(const Prepared& p, const Tensor& d_o_in,
                                                            const Tensor& d_state_in, bool want_d_initial_state) {
  const c10::cuda::CUDAGuard guard(p.q.device());
  const int64_t B = p.q.size(0), T = p.q.size(1), H = p.q.size(2), Hkv = p.k.size(2), D = p.q.size(3);
  const Tensor d_o = d_o_in.defined() ? aligned_contiguous(d_o_in.to(p.q.scalar_type())) : torch::zeros_like(p.q);
  Tensor d_state;
  if (d_state_in.defined()) d_state = d_state_in.to(torch::kFloat).contiguous();
  Tensor dq = torch::empty_like(p.q);
  const bool per_query_head = H != Hkv;  // GQA: fp32 slice per query head, summed over each group below
  Tensor dk, dv;
  if (per_query_head) {
    dk = torch::empty({B, T, H, D}, p.q.options().dtype(torch::kFloat));
    dv = torch::empty({B, T, H, D}, p.q.options().dtype(torch::kFloat));
  } else {
    dk = torch::empty_like(p.k);
    dv = torch::empty_like(p.v);
  }
  Tensor d_initial;
  if (want_d_initial_state) d_initial = torch::empty({B, H, D, D}, p.q.options().dtype(torch::kFloat));

  supra::cuda::ChunkedArgs a = kernel_args(p);
  a.d_o = d_o.data_ptr();
  a.d_final_state = d_state.defined() ? d_state.data_ptr<float>() : nullptr;
  a.dq = dq.data_ptr();
  a.dk = dk.data_ptr();
  a.dv = dv.data_ptr();
  a.dkv_per_query_head = per_query_head;
  a.d_initial_state = d_initial.defined() ? d_initial.data_ptr<float>() : nullptr;
  const Tensor seg_states = segment_workspace(a, p.q), seg_d_states = segment_workspace(a, p.q);
  if (seg_states.defined()) {
    a.seg_states = seg_states.data_ptr<float>();
    a.seg_d_states = seg_d_states.data_ptr<float>();
  }
  C10_CUDA_CHECK(supra::cuda::chunked_backward(a, c10::cuda::getCurrentCUDAStream()));

  if (per_query_head) {
    const int64_t r = H / Hkv;  // query heads h = j·r … j·r + r − 1 share kv head j
    dk = dk.view({B, T, Hkv, r, D}).sum(3).to(p.k.scalar_type());
    dv = dv.view({B, T, Hkv, r, D}).sum(3).to(p.v.scalar_type());
  }
  return {dq, dk, dv, d_initial};
}

// The autograd node: forward runs the forward kernel and saves the (prepared) inputs; backward recomputes.
class LinearAttentionFunction : public torch::autograd::Function<LinearAttentionFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const Tensor& q, const Tensor& k, const Tensor& v,
                               const Tensor& log_gamma, double scale, const std::optional<Tensor>& initial_state,
                               const std::optional<Tensor>& resets) {
    Prepared p = prepare(q, k, v, log_gamma, scale, initial_state, resets);
    auto [o, state] = forward_kernels(p);
    ctx->save_for_backward({p.q, p.k, p.v, p.log_gamma, p.initial_state, p.resets});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["has_initial_state"] = p.initial_state.defined();
    return {o, state};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    Prepared p;
    p.q = saved[0];
    p.k = saved[1];
    p.v = saved[2];
    p.log_gamma = saved[3];
    p.initial_state = saved[4];
    p.resets = saved[5];
    p.scale = ctx->saved_data["scale"].toDouble();
    const bool has_initial_state = ctx->saved_data["has_initial_state"].toBool();
    auto [dq, dk, dv, d_initial] = backward_kernels(p, grad_outputs[0], grad_outputs[1], has_initial_state);
    // One entry per forward argument: q, k, v, log_gamma, scale, initial_state, resets.
    return {dq, dk, dv, Tensor(), Tensor(), has_initial_state ? d_initial : Tensor(), Tensor()};
  }
};

// Head dims the kernels do not cover (tiny test models, D = 8 or 32, ...): the reference chunked form on the GPU
// through ATen ops (differentiable, slower), with a one-time warning — a model runs everywhere, fast where it can.
std::tuple<Tensor, Tensor> reference_fallback(const Tensor& q, const Tensor& k, const Tensor& v,
                                              const Tensor& log_gamma, double scale,
                                              const std::optional<Tensor>& initial_state,
                                              const std::optional<Tensor>& resets, int64_t chunk_size) {
  TORCH_WARN_ONCE("supra::linear_attention: the CUDA kernels support head dims 64 and 128 (D_k == D_v); head dim ",
                  q.size(-1), " runs the reference chunked form through ATen (slower)");
  return reference::chunked(q, k, v, reference_args(log_gamma.to(q.device()), scale, initial_state, resets),
                            chunk_size);
}

// ---------------------------------------------------------------- operator implementations
// AutogradCUDA key of supra::linear_attention.
std::tuple<Tensor, Tensor> linear_attention_autograd(const Tensor& q, const Tensor& k, const Tensor& v,
                                                     const Tensor& log_gamma, double scale,
                                                     const std::optional<Tensor>& initial_state,
                                                     const std::optional<Tensor>& resets, int64_t chunk_size) {
  TORCH_CHECK(chunk_size > 0, "chunk_size must be positive");
  if (q.scalar_type() == torch::kDouble) {  // the float64 reference form, differentiable through ATen
    return reference::chunked(q, k, v, reference_args(log_gamma, scale, initial_state, resets), chunk_size);
  }
  if (!supra::cuda::chunked_supports_head_dim(q.size(-1), v.size(-1))) {
    return reference_fallback(q, k, v, log_gamma, scale, initial_state, resets, chunk_size);
  }
  // chunk_size is the reference form's; the kernels use their own (64 tensor cores, 32 CUDA cores): same function.
  variable_list out = LinearAttentionFunction::apply(q, k, v, log_gamma, scale, initial_state, resets);
  return {out[0], out[1]};
}

// CUDA key (reached below autograd, e.g. under c10::InferenceMode): the forward kernel only.
std::tuple<Tensor, Tensor> linear_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                                    const Tensor& log_gamma, double scale,
                                                    const std::optional<Tensor>& initial_state,
                                                    const std::optional<Tensor>& resets, int64_t chunk_size) {
  TORCH_CHECK(chunk_size > 0, "chunk_size must be positive");
  if (q.scalar_type() == torch::kDouble) {
    return reference::chunked(q, k, v, reference_args(log_gamma, scale, initial_state, resets), chunk_size);
  }
  if (!supra::cuda::chunked_supports_head_dim(q.size(-1), v.size(-1))) {
    return reference_fallback(q, k, v, log_gamma, scale, initial_state, resets, chunk_size);
  }
  return forward_kernels(prepare(q, k, v, log_gamma, scale, initial_state, resets));
}

// CUDA key of supra::linear_attention_step_: S' = S + s kᵀv, o = q S', S ← γ S' in place, one fused kernel.
// Allocates only o and synchronises nothing, so a decode step can be captured in a CUDA graph (inputs must then
// already be contiguous CUDA tensors of the kernel dtypes, and log_gamma / reset on the device).
Tensor linear_attention_step_inplace(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& state,
                                     const Tensor& log_gamma, double scale, const std::optional<Tensor>& reset) {
  TORCH_CHECK(q.dim() == 3 && k.dim() == 3 && v.dim() == 3, "linear_attention_step_: q, k, v must be [B, H, D]");
  const int64_t B = q.size(0), H = q.size(1), Hkv = k.size(1), D = q.size(2);
  TORCH_CHECK(k.size(0) == B && v.size(0) == B && v.size(1) == Hkv && k.size(2) == D,
              "linear_attention_step_: q, k, v shapes disagree");
  TORCH_CHECK(Hkv > 0 && H % Hkv == 0, "linear_attention_step_: query heads must be a multiple of kv heads");
  TORCH_CHECK(
      state.dim() == 4 && state.size(0) == B && state.size(1) == H && state.size(2) == D && state.size(3) == v.size(2),
      "linear_attention_step_: state must be [B, H, Dk, Dv]");
  TORCH_CHECK(state.scalar_type() == torch::kFloat, "linear_attention_step_: the state must be float32");
  TORCH_CHECK(state.device() == q.device() && k.device() == q.device() && v.device() == q.device() &&
                  log_gamma.device() == q.device(),
              "linear_attention_step_: q, k, v, state and log_gamma must be on the same CUDA device");
  TORCH_CHECK(log_gamma.dim() == 1 && log_gamma.size(0) == H, "linear_attention_step_: log_gamma must be [H]");
  const Tensor reset_t = from_optional(reset);
  if (reset_t.defined())
    TORCH_CHECK(reset_t.dim() == 1 && reset_t.size(0) == B && reset_t.device() == q.device(),
                "linear_attention_step_: reset must be [B] on the device");
  const bool kernel_ok = kernel_dtype(q) && k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type() &&
                         supra::cuda::chunked_supports_head_dim(D, v.size(2)) && state.is_contiguous() &&
                         reinterpret_cast<std::uintptr_t>(state.data_ptr()) % 16 == 0;
  if (!kernel_ok) {  // other dtypes / head dims / a strided state: the reference step (ATen ops, allocates)
    TORCH_CHECK(q.scalar_type() == torch::kDouble || kernel_dtype(q),
                "linear_attention_step_ (CUDA): unsupported dtype ", q.scalar_type());
    auto [o, next] = reference::recurrent_step(q, k, v, state, log_gamma, scale, reset_t);
    state.copy_(next);
    return o;
  }
  const c10::cuda::CUDAGuard guard(q.device());
  const Tensor qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
  const Tensor lg = log_gamma.scalar_type() == torch::kFloat ? log_gamma.contiguous() : log_gamma.to(torch::kFloat);
  Tensor rs;
  if (reset_t.defined()) rs = reset_t.scalar_type() == torch::kBool ? reset_t.contiguous() : reset_t.to(torch::kBool);
  Tensor o = torch::empty({B, H, D}, q.options());
  supra::cuda::DecodeArgs a;
  a.batch = B;
  a.heads = static_cast<int>(H);
  a.kv_heads = static_cast<int>(Hkv);
  a.head_dim = static_cast<int>(D);
  a.scale = static_cast<float>(scale);
  a.type = elem_type(q);
  a.q = qc.data_ptr();
  a.k = kc.data_ptr();
  a.v = vc.data_ptr();
  a.o = o.data_ptr();
  a.state = state.data_ptr<float>();
  a.log_gamma = lg.data_ptr<float>();
  a.reset = rs.defined() ? reinterpret_cast<const uint8_t*>(rs.data_ptr<bool>()) : nullptr;
  C10_CUDA_CHECK(supra::cuda::decode_step(a, c10::cuda::getCurrentCUDAStream()));
  return o;
}

// CUDA key of supra::supra_decode_step_: the fused kernel (decode_fused.cuh) for bf16 / fp32 pre, D ∈ {64, 128}
// and a contiguous, 16-byte aligned fp32 state; anything else runs the composite of ATen ops and
// linear_attention_step_ (kernels/ops.cpp), which defines the same function. Allocates only the output and
// synchronises nothing: with pre, cos, sin fp32/contiguous as the decoder passes them, no copies either, so the step
// can be captured in a CUDA graph.
Tensor supra_decode_step_inplace(const Tensor& pre, const Tensor& cos, const Tensor& sin, Tensor& state,
                                 const Tensor& log_gamma, double scale) {
  const supra::kernels::DecodeStepShape shape = supra::kernels::decode_step_shape(pre, cos, sin, state, log_gamma);
  const int64_t B = shape.B, H = shape.H, Hkv = shape.Hkv, D = shape.D;
  TORCH_CHECK(state.device() == pre.device() && cos.device() == pre.device() && sin.device() == pre.device() &&
                  log_gamma.device() == pre.device(),
              "supra_decode_step_ (CUDA): pre, cos, sin, state and log_gamma must be on the same CUDA device");
  const bool kernel_ok = kernel_dtype(pre) && state.scalar_type() == torch::kFloat &&
                         supra::cuda::chunked_supports_head_dim(D, D) && state.is_contiguous() &&
                         reinterpret_cast<std::uintptr_t>(state.data_ptr()) % 16 == 0 && B * H <= INT32_MAX;
  if (!kernel_ok) return supra_decode_step_composite(pre, cos, sin, state, log_gamma, scale);
  const c10::cuda::CUDAGuard guard(pre.device());
  const Tensor p = pre.contiguous();
  const Tensor c = cos.to(torch::kFloat).contiguous(), s = sin.to(torch::kFloat).contiguous();
  const Tensor lg = log_gamma.to(torch::kFloat).contiguous();
  Tensor out = torch::empty({B, H * D}, pre.options());
  supra::cuda::DecodeFusedArgs a;
  a.batch = B;
  a.heads = static_cast<int>(H);
  a.kv_heads = static_cast<int>(Hkv);
  a.head_dim = static_cast<int>(D);
  a.scale = static_cast<float>(scale);
  a.type = elem_type(pre);
  a.pre = p.data_ptr();
  a.cos = c.data_ptr<float>();
  a.sin = s.data_ptr<float>();
  a.state = state.data_ptr<float>();
  a.log_gamma = lg.data_ptr<float>();
  a.out = out.data_ptr();
  C10_CUDA_CHECK(supra::cuda::decode_fused_step(a, c10::cuda::getCurrentCUDAStream()));
  return out;
}

}  // namespace
}  // namespace supra::kernels::cuda_glue

TORCH_LIBRARY_IMPL(supra, AutogradCUDA, m) {
  m.impl("linear_attention", &supra::kernels::cuda_glue::linear_attention_autograd);
}

TORCH_LIBRARY_IMPL(supra, CUDA, m) {
  m.impl("linear_attention", &supra::kernels::cuda_glue::linear_attention_forward);
  m.impl("linear_attention_step_", &supra::kernels::cuda_glue::linear_attention_step_inplace);
  m.impl("supra_decode_step_", &supra::kernels::cuda_glue::supra_decode_step_inplace);
}
