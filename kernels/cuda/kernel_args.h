// Argument structs of supra's CUDA linear-attention kernels: plain C++ (no LibTorch, no CUDA headers), shared by
// the launchers (linear_attention_kernels.h), the kernel bodies and the host emulator (emu/).
//
// The function (per batch row b and query head h, kv head h / (H / H_kv), decay γ_h = exp(log_gamma[h])):
//     o_i = Σ_{j ≤ i, same document} γ_h^{i−j} (q_i · k_j) s v_j  +  γ_h^i q_i S0   (S0 only in the first document)
// with the stored-state convention of kernels/reference/linear_attention.h:
//     S_T = Σ_{j in the last document} γ^{T−j} s k_jᵀ v_j  +  γ^T S0   (S0 term only when the row has no reset).
// Layouts: q, o, dq [B, T, H, D]; k, v [B, T, H_kv, D] (contiguous, 16-byte aligned); states [B, H, D, D] fp32;
// resets [B, T] bool (1 byte) = document starts; log_gamma [H] fp32. D ∈ {64, 128}.
#pragma once

#include <cstdint>

namespace supra::cuda {

enum class ElemType { kFloat32, kBFloat16 };

// Which chunked implementation: tensor cores (bf16 only; mma.sync m16n8k16, chunk 64) or the fp32 CUDA-core path
// (any dtype, chunk 32; exact fp32 arithmetic — the fp32 path and a cross-check). kAuto: tensor cores for bf16.
enum class Algo { kAuto, kSimt, kTensorCore };

struct ChunkedArgs {
  int64_t batch = 0, seq_len = 0;
  int heads = 0, kv_heads = 0, head_dim = 0;
  float scale = 1.f;
  ElemType type = ElemType::kBFloat16;
  Algo algo = Algo::kAuto;

  // inputs
  const void* q = nullptr;               // [B, T, H, D]
  const void* k = nullptr;               // [B, T, H_kv, D]
  const void* v = nullptr;               // [B, T, H_kv, D]
  const float* log_gamma = nullptr;      // [H]
  const uint8_t* resets = nullptr;       // [B, T] or null
  const float* initial_state = nullptr;  // [B, H, D, D] or null (zeros)

  // forward outputs
  void* o = nullptr;             // [B, T, H, D]
  float* final_state = nullptr;  // [B, H, D, D] or null

  // backward
  const void* d_o = nullptr;             // [B, T, H, D]
  const float* d_final_state = nullptr;  // [B, H, D, D] or null (zeros)
  void* dq = nullptr;                    // [B, T, H, D]
  void* dk = nullptr;                    // see dkv_per_query_head
  void* dv = nullptr;
  // false: dk, dv are [B, T, H_kv, D] in the input dtype (requires H == H_kv).
  // true:  dk, dv are fp32 [B, T, H, D], one slice per *query* head; the caller sums each group of H / H_kv
  //        heads (GQA: deterministic, no atomics).
  bool dkv_per_query_head = false;
  float* d_initial_state = nullptr;  // [B, H, D, D] or null

  // Sequence parallelism (docs/kernels.md, "Sequence-parallel mode"): 0 = one CTA per (batch row, head) walks the
  // whole row. Otherwise each row is cut into nseg = ceil(T / segment_len) segments of segment_len tokens (the last
  // one shorter), each handled by its own CTA (grid B·H·nseg, block index (b·H + h)·nseg + segment); segment_len is
  // a multiple of 64 (the chunk of both implementations' kernels). With nseg > 1 the launchers need the fp32
  // workspaces below, [B, H, nseg, D, D] each (allocated by the caller; contents on entry do not matter):
  //   seg_states    the state entering each segment (forward and backward)
  //   seg_d_states  the state gradient leaving each segment (backward only)
  int64_t segment_len = 0;
  float* seg_states = nullptr;
  float* seg_d_states = nullptr;
};

// Number of segments of a row (1 when segment_len is 0 or covers the row).
inline int64_t num_segments(int64_t seq_len, int64_t segment_len) {
  return segment_len <= 0 || segment_len >= seq_len ? 1 : (seq_len + segment_len - 1) / segment_len;
}
inline int64_t num_segments(const ChunkedArgs& a) { return num_segments(a.seq_len, a.segment_len); }

// One recurrent decoding step for one token per sequence, updating the state in place:
//     S' = (reset ? 0 : S) + s kᵀv;  o = q S';  S ← γ_h S'.
struct DecodeArgs {
  int64_t batch = 0;
  int heads = 0, kv_heads = 0, head_dim = 0;  // D_k = D_v = head_dim ∈ {64, 128}
  float scale = 1.f;
  ElemType type = ElemType::kBFloat16;
  const void* q = nullptr;           // [B, H, D]
  const void* k = nullptr;           // [B, H_kv, D]
  const void* v = nullptr;           // [B, H_kv, D]
  void* o = nullptr;                 // [B, H, D]
  float* state = nullptr;            // [B, H, D, D] fp32, 16-byte aligned, updated in place
  const float* log_gamma = nullptr;  // [H]
  const uint8_t* reset = nullptr;    // [B] or null
};

// The fused decode step of a SUPRA layer (op supra::supra_decode_step_; decode_fused.cuh), per (b, h) with kv
// head g = h / (H / H_kv):
//     q = RoPE(ReLU(q_pre)), k = s·RoPE(ReLU(k_pre)), S' = S + kᵀv, o = q S', S ← γ_h S',
//     out = (o − mean(o)) / √(var(o) + 1e-5)   (per head, biased variance)
// RoPE(x) = x·cos + rotate_half(x)·sin, rotate_half(x) = (−x[D/2:], x[:D/2]).
struct DecodeFusedArgs {
  int64_t batch = 0;
  int heads = 0, kv_heads = 0, head_dim = 0;  // head_dim ∈ {64, 128}
  float scale = 1.f;                          // key scale s
  ElemType type = ElemType::kBFloat16;        // dtype of pre and out
  const void* pre = nullptr;                  // [B, (H + 2·H_kv)·D] contiguous: q_pre heads, k_pre heads, v heads
  const float* cos = nullptr;                 // [B, D] RoPE rows of each sequence's position
  const float* sin = nullptr;                 // [B, D]
  float* state = nullptr;                     // [B, H, D, D] fp32, 16-byte aligned, updated in place
  const float* log_gamma = nullptr;           // [H]
  void* out = nullptr;                        // [B, H·D]
};

}  // namespace supra::cuda
