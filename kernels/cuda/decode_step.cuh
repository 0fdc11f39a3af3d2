// Body of the recurrent decode step (one token per sequence), fp32 state updated in place:
//     S'[i][j] = (reset ? 0 : S[i][j]) + s·k[i]·v[j]
//     o[j]     = Σ_i q[i]·S'[i][j]
//     S[i][j]  ← γ_h·S'[i][j]              (the stored state already carries the next step's decay)
// The step is a pure stream over the state (read once, written once: 2·D²·4 bytes per (batch, head)), and the
// columns of S are independent (o[j] only needs column j), so the layout is chosen for bandwidth and parallelism:
// each (batch, head) is split into D / kCols CTAs of kThreads threads, one per block of kCols = 32 columns, on a
// flattened grid (B·H·D/32 CTAs: enough to fill an H100 already at batch 8, where one CTA per head would leave
// SMs idle and put two 64 KB streams on others). Thread (group, c4) owns the 4 columns 4·c4 … 4·c4+3 of the
// block in D/GROUPS rows (group, group + GROUPS, …), issues all of its 16-byte loads before using any, and the
// per-group partial sums of o are reduced through shared memory. A warp reads 4 contiguous 128-byte row pieces.
#pragma once

#include "kernels/cuda/block_info.cuh"
#include "kernels/cuda/device_common.cuh"
#include "kernels/cuda/kernel_args.h"

namespace supra::cuda::decode {

constexpr int kThreads = 128;
constexpr int kCols = 32;  // state columns per CTA

// CTAs per (batch, head).
template <int D>
constexpr int kBlocksPerHead = D / kCols;

// Floats of shared memory the body needs: q and s·k (2·D) plus the partial sums [GROUPS][kCols].
template <int D>
struct Smem {
  static constexpr int kFloats = 2 * D + (kThreads / (kCols / 4)) * kCols;
};

// `block` = flattened (batch, head, column block) index.
template <typename T, int D>
SUPRA_DEVICE void step(const DecodeArgs& a, float* smem, int tid, int64_t block) {
  constexpr int NC4 = kCols / 4;          // 16-byte column groups per row piece: 8
  constexpr int GROUPS = kThreads / NC4;  // row groups: 16
  constexpr int ROWS = D / GROUPS;        // rows per thread: 8 (D = 128) or 4 (D = 64)
  static_assert(kThreads % NC4 == 0 && D % GROUPS == 0 && D % kCols == 0, "decode layout");
  const int64_t bh = block / kBlocksPerHead<D>;
  const int c0 = static_cast<int>(block % kBlocksPerHead<D>) * kCols;  // first column of this CTA
  const BlockInfo<D> bi(a, bh);

  float* sq = smem;           // [D] q
  float* sk = smem + D;       // [D] s·k
  float* red = smem + 2 * D;  // [GROUPS][kCols] partial o
  const T* q = static_cast<const T*>(a.q) + bi.q_offset;
  const T* k = static_cast<const T*>(a.k) + bi.kv_offset;
  const T* v = static_cast<const T*>(a.v) + bi.kv_offset;
  for (int i = tid; i < D; i += kThreads) {
    sq[i] = dev::to_float(q[i]);
    sk[i] = dev::to_float(k[i]) * a.scale;
  }

  const int c4 = tid % NC4, group = tid / NC4;
  const int col = c0 + 4 * c4;
  float* S = a.state + bi.state_offset;
  const bool clear = a.reset != nullptr && a.reset[bi.reset_offset] != 0;
  float s[ROWS][4];
#pragma unroll
  for (int r = 0; r < ROWS; ++r) {
    const int i = group + r * GROUPS;
    if (clear) {
      s[r][0] = s[r][1] = s[r][2] = s[r][3] = 0.f;
    } else {
      dev::load_f4(s[r], S + i * D + col);
    }
  }
  float vj[4];
#pragma unroll
  for (int x = 0; x < 4; ++x) vj[x] = dev::to_float(v[col + x]);
  const float gamma = dev::exp_f32(a.log_gamma[bi.h]);
  dev::block_sync();  // sq, sk ready

  float acc[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
  for (int r = 0; r < ROWS; ++r) {
    const int i = group + r * GROUPS;
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
  for (int x = 0; x < 4; ++x) red[group * kCols + 4 * c4 + x] = acc[x];
  dev::block_sync();
  T* o = static_cast<T*>(a.o) + bi.q_offset + c0;
  for (int j = tid; j < kCols; j += kThreads) {
    float sum = 0.f;
#pragma unroll
    for (int gr = 0; gr < GROUPS; ++gr) sum += red[gr * kCols + j];
    o[j] = dev::from_float<T>(sum);
  }
}

}  // namespace supra::cuda::decode
