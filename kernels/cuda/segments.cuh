// Sequence-parallel mode of the chunked kernels (ChunkedArgs::segment_len > 0; docs/kernels.md): the scan over
// segments that links the per-segment CTAs. Shared by both implementations (plain fp32, no tensor cores).
//
// A row of T tokens is cut into nseg segments of segment_len tokens (the last one shorter); segment s has
// len_s tokens and r_s = "segment s contains a reset" (at any of its tokens, its first one included). With
//   S_loc[s]   = the state after segment s from a zero state (the state-only forward sweep; exact: within a
//                segment the recurrence S ← δ S + (diag(w) K)ᵀ V is linear in the state it starts from)
//   dS_loc[s]  = the state gradient before segment s from a zero gradient (the state-only reverse sweep)
//   a_s        = 0 if r_s else γ^{len_s}   (how much of the state entering segment s survives it)
// the forward scan gives the state entering each segment and the reverse scan the gradient leaving it:
//   S_in[0] = S_0 (initial state or 0),       S_in[s+1]  = a_s S_in[s] + S_loc[s]
//   dS_out[nseg−1] = dS_T (or 0),             dS_out[s−1] = a_s dS_out[s] + dS_loc[s]
// after which every segment runs the ordinary forward / dQ sweep from S_in[s] and the reverse sweep from
// dS_out[s]; the last segment's final state is S_T and the first segment's initial-state gradient is dS_0.
// Storage (BlockInfo::local_state_out / local_d_state_out): the state-only sweeps write S_loc[s] to slot s + 1 of
// seg_states and dS_loc[s] to slot s − 1 of seg_d_states, and the scan overwrites each slot in place with
// S_in[slot] / dS_out[slot] (slot 0 of seg_states and slot nseg − 1 of seg_d_states are unused).
#pragma once

#include "kernels/cuda/device_common.cuh"
#include "kernels/cuda/kernel_args.h"

namespace supra::cuda::segments {

constexpr int kThreads = 256;
constexpr int kPerThread = 4;  // state elements per thread

// CTAs per (b, h) of the scan: each covers kThreads · kPerThread of the D·D state elements.
template <int D>
constexpr int kSlices = D* D / (kThreads * kPerThread);

// Shared memory of the scan: one flag per thread.
constexpr int smem_bytes() { return kThreads * 4; }

// The scan (kReverse = false: states, forward; true: state gradients, backward) for one slice of one (b, h).
// Grid: B·H·kSlices<D> CTAs of kThreads, block = (b·H + h)·kSlices + slice. Only called with nseg > 1.
template <int D, bool kReverse>
SUPRA_DEVICE void scan(const ChunkedArgs& a, char* smem, int tid, int64_t block) {
  constexpr int SL = kSlices<D>;
  int* sFlag = reinterpret_cast<int*>(smem);  // [kThreads]
  const int64_t bh = block / SL, b = bh / a.heads;
  const int h = static_cast<int>(bh % a.heads), slice = static_cast<int>(block % SL);
  const int64_t T = a.seq_len, seg_len = a.segment_len, nseg = (T + seg_len - 1) / seg_len;
  const float log_gamma = a.log_gamma[h];
  const uint8_t* resets = a.resets ? a.resets + b * T : nullptr;
  float* ws = (kReverse ? a.seg_d_states : a.seg_states) + bh * nseg * D * D;
  const float* edge = kReverse ? a.d_final_state : a.initial_state;  // S_0 or dS_T, [B, H, D, D] or null

  // This thread's elements p_k = slice·kThreads·kPerThread + k·kThreads + tid (coalesced across the CTA).
  float carry[kPerThread];
  for (int k = 0; k < kPerThread; ++k) {
    const int64_t p = static_cast<int64_t>(slice) * kThreads * kPerThread + k * kThreads + tid;
    carry[k] = edge ? edge[bh * D * D + p] : 0.f;
  }
  for (int64_t it = 0; it + 1 < nseg; ++it) {
    const int64_t s = kReverse ? nseg - 1 - it : it;  // the segment the carry passes through
    const int64_t slot = kReverse ? s - 1 : s + 1;    // where the result goes: S_in[s + 1] or dS_out[s − 1]
    const int64_t t0 = s * seg_len, len = T - t0 < seg_len ? T - t0 : seg_len;
    // r_s: any reset among the segment's tokens (each thread checks a strided part, then every thread reads all
    // flags).
    int any = 0;
    if (resets) {
      for (int64_t t = tid; t < len; t += kThreads) any |= resets[t0 + t] != 0;
    }
    sFlag[tid] = any;
    dev::block_sync();
    int reset = 0;
    for (int i = 0; i < kThreads; ++i) reset |= sFlag[i];
    dev::block_sync();  // sFlag is reused by the next segment
    const float decay = reset ? 0.f : dev::exp_f32(log_gamma * static_cast<float>(len));  // a_s
    float* w = ws + slot * D * D;
    for (int k = 0; k < kPerThread; ++k) {
      const int64_t p = static_cast<int64_t>(slice) * kThreads * kPerThread + k * kThreads + tid;
      carry[k] = decay * carry[k] + w[p];  // a_s · carry + S_loc[s] (or dS_loc[s])
      w[p] = carry[k];
    }
  }
}

}  // namespace supra::cuda::segments
