// Body of the fused SUPRA decode step (op supra::supra_decode_step_, CUDA key): one token per sequence, from the
// feature-map pre-activations to the GroupNorm'd head output in one kernel, fp32 state updated in place. Per
// (b, h), kv head g = h / (H / H_kv), x = pre[b] (row of (H + 2·H_kv)·D values: q_pre heads, k_pre heads, v heads):
//     q = RoPE(ReLU(x_q,h))          RoPE(y)_i = y_i·cos_i + rot(y)_i·sin_i,  rot(y) = (−y[D/2:], y[:D/2])
//     k = s·RoPE(ReLU(x_k,g)),  v = x_v,g
//     S'[i][j] = S[i][j] + k[i]·v[j];   o[j] = Σ_i q[i]·S'[i][j];   S[i][j] ← γ_h·S'[i][j]   (γ_h = exp(log_gamma[h]))
//     out[j] = (o[j] − μ) / √(σ² + 1e-5),   μ = mean_j o[j],  σ² = mean_j (o[j] − μ)²   (GroupNorm, no affine)
// (the same function as kernels/cpu/decode_step.cpp and supra_decode_step_composite in kernels/ops.cpp).
//
// Layout. The step streams the state once (read D²·4 bytes, write D²·4 bytes per (b, h)); everything else (pre,
// cos, sin, out: a few hundred bytes) is noise. GroupNorm needs all D outputs of a head, so one CTA owns all D
// columns of one (batch, head) and the mean / variance reduce inside the CTA. The grid is flattened over
// (batch, head): block = b·H + h, B·H CTAs (batch 8, H 32: 256 CTAs of 64 KB each for D = 128, two per SM and
// all resident at once on an H100, so the whole state stream is in flight).
// kThreads<D> = 2·D threads (256 for D = 128, 128 for D = 64); thread (group, c4), c4 = tid % (D/4),
// group = tid / (D/4) ∈ [0, 8), owns the 4 columns 4·c4 … 4·c4+3 in the ROWS = D/8 rows group, group + 8, … .
// One warp instruction reads one contiguous 512-byte row (D = 128) or two 256-byte rows (D = 64). Every thread
// issues all its ROWS 16-byte state loads (16 for D = 128: 256 bytes per thread, 64 KB per CTA) before it uses
// any, and builds q, k (in shared memory, one element per thread: threads 0 … D−1 make q, D … 2D−1 make k) while
// they are in flight. The 8 row groups' partial sums of o are reduced through shared memory (thread j < D sums
// column j), then μ and σ² by a two-level shared-memory sum (deterministic; two passes, as the CPU kernel does).
// No allocation and no host synchronisation: capturable in a CUDA graph.
#pragma once

#include <cstdint>

#include "kernels/cuda/device_common.cuh"
#include "kernels/cuda/kernel_args.h"

namespace supra::cuda::decode_fused {

template <int D>
constexpr int kThreads = 2 * D;
constexpr int kGroups = 8;  // row groups: kThreads / (D/4)
constexpr int kParts = 16;  // first-level partial sums of the GroupNorm reductions
constexpr float kEps = 1e-5f;

// Floats of shared memory: q [D], s·k [D], partial o [kGroups][D], o [D], parts [kParts].
template <int D>
struct Smem {
  static constexpr int kFloats = 2 * D + kGroups * D + D + kParts;
};

// Σ_{j<D} x_j, where thread j < D passes x_j (the others pass anything); every thread gets the same total.
// buf [D], part [kParts] in shared memory. Two barriers; safe to call back to back (the second call's first
// barrier comes after every thread has read `part` of the first).
template <int D>
SUPRA_DEVICE float head_sum(float x, float* buf, float* part, int tid) {
  constexpr int PER = D / kParts;
  if (tid < D) buf[tid] = x;
  dev::block_sync();
  if (tid < kParts) {
    float s = 0.f;
#pragma unroll
    for (int m = 0; m < PER; ++m) s += buf[tid * PER + m];
    part[tid] = s;
  }
  dev::block_sync();
  float total = 0.f;
#pragma unroll
  for (int p = 0; p < kParts; ++p) total += part[p];
  return total;
}

// `block` = flattened (batch, head) index b·H + h.
template <typename T, int D>
SUPRA_DEVICE void step(const DecodeFusedArgs& a, float* smem, int tid, int64_t block) {
  constexpr int NT = kThreads<D>;
  constexpr int NC4 = D / 4;         // 16-byte column groups per row: 32 (D = 128) or 16
  constexpr int ROWS = D / kGroups;  // rows per thread: 16 or 8
  constexpr int HALF = D / 2;
  static_assert(NT == kGroups * NC4 && D % kParts == 0 && D % kGroups == 0, "decode_fused layout");
  const int64_t b = block / a.heads;
  const int h = static_cast<int>(block % a.heads);
  const int g = h / (a.heads / a.kv_heads);

  float* sq = smem;                // [D] q
  float* sk = sq + D;              // [D] s·k
  float* red = sk + D;             // [kGroups][D] partial o
  float* buf = red + kGroups * D;  // [D] reduction input
  float* part = buf + D;           // [kParts]

  // 1. All state loads first (S' needs nothing else to be issued).
  const int c4 = tid % NC4, group = tid / NC4;
  const int col = 4 * c4;
  float* S = a.state + (b * a.heads + h) * static_cast<int64_t>(D) * D;
  float s[ROWS][4];
#pragma unroll
  for (int r = 0; r < ROWS; ++r) dev::load_f4(s[r], S + (group + r * kGroups) * D + col);

  // 2. While they fly: q, k into shared memory, this thread's 4 values of v, γ.
  const int64_t row_len = static_cast<int64_t>(a.heads + 2 * a.kv_heads) * D;
  const T* pre = static_cast<const T*>(a.pre) + b * row_len;
  {
    const bool is_k = tid >= D;  // threads 0 … D−1: q[i]; D … 2D−1: k[i]
    const int i = is_k ? tid - D : tid;
    const T* x = pre + static_cast<int64_t>(is_k ? a.heads + g : h) * D;
    const float xi = dev::to_float(x[i]), xp = dev::to_float(x[i < HALF ? i + HALF : i - HALF]);
    const float yi = xi > 0.f ? xi : 0.f, yp = xp > 0.f ? xp : 0.f;  // ReLU
    const float rot = i < HALF ? -yp : yp;                           // rotate_half(y)_i
    const float e = yi * a.cos[b * D + i] + rot * a.sin[b * D + i];
    if (is_k) {
      sk[i] = e * a.scale;
    } else {
      sq[i] = e;
    }
  }
  const T* v = pre + static_cast<int64_t>(a.heads + a.kv_heads + g) * D + col;
  float vj[4];
#pragma unroll
  for (int x = 0; x < 4; ++x) vj[x] = dev::to_float(v[x]);
  const float gamma = dev::exp_f32(a.log_gamma[h]);
  dev::block_sync();  // sq, sk ready

  // 3. S' = S + kᵀv, partial o over this thread's rows, S ← γ S' (stored as soon as each row is done).
  float acc[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
  for (int r = 0; r < ROWS; ++r) {
    const int i = group + r * kGroups;
    const float ki = sk[i], qi = sq[i];
#pragma unroll
    for (int x = 0; x < 4; ++x) {
      const float sp = s[r][x] + ki * vj[x];  // S'
      acc[x] += qi * sp;
      s[r][x] = gamma * sp;
    }
    dev::store_f4(S + i * D + col, s[r]);
  }
#pragma unroll
  for (int x = 0; x < 4; ++x) red[group * D + col + x] = acc[x];
  dev::block_sync();

  // 4. o[j] (thread j < D), then GroupNorm over the D values of the head.
  float o = 0.f;
  if (tid < D) {
#pragma unroll
    for (int gr = 0; gr < kGroups; ++gr) o += red[gr * D + tid];
  }
  const float mean = head_sum<D>(o, buf, part, tid) * (1.f / D);
  const float c = o - mean;
  const float var = head_sum<D>(c * c, buf, part, tid) * (1.f / D);
  if (tid < D) {
    T* out = static_cast<T*>(a.out) + (b * a.heads + h) * static_cast<int64_t>(D);
    out[tid] = dev::from_float<T>(c * (1.f / dev::sqrt_f32(var + kEps)));
  }
}

}  // namespace supra::cuda::decode_fused
