// BlockInfo: where one CTA's data lives in the layouts of kernel_args.h — the base element offsets of its (batch
// row, query head, segment) slice of q/o, k/v, dK/dV, the states and the resets and, under GQA, its kv head (like
// flash-attention's block_info.h). Every kernel body (chunked_mma.cuh, chunked_simt.cuh, decode_step.cuh) starts
// from one. In the sequence-parallel mode (ChunkedArgs::segment_len > 0) a CTA covers tokens
// [t_begin, t_begin + len) of its row; the offsets below already point at token t_begin, so a body walks tokens
// 0 … len − 1 exactly as it walks a whole row otherwise, and the state pointers say which state it starts from and
// where its final state goes.
#pragma once

#include <cstdint>

#include "kernels/cuda/device_common.cuh"
#include "kernels/cuda/kernel_args.h"

namespace supra::cuda {

template <int D>
struct BlockInfo {
  // `bh` = b·H + h, the flattened (batch row, query head) index; segment `seg` of `nseg` covers tokens
  // [seg · seg_len, min(T, (seg + 1) · seg_len)). The decode step's [B, H, D] tensors are the chunked layouts with
  // T = 1.
  SUPRA_DEVICE BlockInfo(int64_t bh, int heads, int kv_heads, int64_t seq_len, int64_t segment = 0,
                         int64_t num_segs = 1, int64_t seg_len = 0)
      : b(bh / heads),
        h(static_cast<int>(bh % heads)),
        hk(h / (heads / kv_heads)),
        seg(segment),
        nseg(num_segs),
        t_begin(segment * seg_len),
        len(num_segs == 1 ? seq_len : (seq_len - t_begin < seg_len ? seq_len - t_begin : seg_len)),
        q_stride(static_cast<int64_t>(heads) * D),
        kv_stride(static_cast<int64_t>(kv_heads) * D),
        q_offset(((b * seq_len + t_begin) * heads + h) * D),
        kv_offset(((b * seq_len + t_begin) * kv_heads + hk) * D),
        state_offset(bh * D * D),
        seg_state_offset((bh * num_segs + segment) * D * D),
        reset_offset(b * seq_len + t_begin) {}
  SUPRA_DEVICE BlockInfo(const ChunkedArgs& a, int64_t block)
      : BlockInfo(block / segments_of(a), a.heads, a.kv_heads, a.seq_len, block % segments_of(a), segments_of(a),
                  a.segment_len) {}
  SUPRA_DEVICE BlockInfo(const DecodeArgs& a, int64_t bh) : BlockInfo(bh, a.heads, a.kv_heads, 1) {}

  // num_segments(a) (kernel_args.h), spelled out for device code.
  SUPRA_DEVICE static int64_t segments_of(const ChunkedArgs& a) {
    return a.segment_len <= 0 || a.segment_len >= a.seq_len ? 1 : (a.seq_len + a.segment_len - 1) / a.segment_len;
  }

  // dK / dV: [B, T, H_kv, D] per kv head, or [B, T, H, D] with one fp32 slice per query head (GQA backward).
  SUPRA_DEVICE int64_t dkv_offset(bool per_query_head) const { return per_query_head ? q_offset : kv_offset; }
  SUPRA_DEVICE int64_t dkv_stride(bool per_query_head) const { return per_query_head ? q_stride : kv_stride; }

  // The state this CTA's forward / dQ sweep starts from: the row's initial state (or null = zeros) for the first
  // segment, the scanned state entering the segment (seg_states) for the others.
  SUPRA_DEVICE const float* initial_state(const ChunkedArgs& a) const {
    if (seg == 0) return a.initial_state ? a.initial_state + state_offset : nullptr;
    return a.seg_states + seg_state_offset;
  }
  // Where the forward's final state goes: the row's final state from the last segment only.
  SUPRA_DEVICE float* final_state(const ChunkedArgs& a) const {
    return seg == nseg - 1 && a.final_state ? a.final_state + state_offset : nullptr;
  }
  // The state gradient the reverse sweep starts from: the row's d_final_state (or null = zeros) for the last
  // segment, the scanned gradient leaving the segment (seg_d_states) for the others.
  SUPRA_DEVICE const float* d_final_state(const ChunkedArgs& a) const {
    if (seg == nseg - 1) return a.d_final_state ? a.d_final_state + state_offset : nullptr;
    return a.seg_d_states + seg_state_offset;
  }
  // Where the reverse sweep's initial-state gradient goes: the row's d_initial_state from the first segment only.
  SUPRA_DEVICE float* d_initial_state(const ChunkedArgs& a) const {
    return seg == 0 && a.d_initial_state ? a.d_initial_state + state_offset : nullptr;
  }
  // The segment-state passes (state-only sweeps from zero) store their result one slot over, where the scan
  // (segments.cuh) turns it in place into the state entering / the gradient leaving that slot's segment:
  //   forward: the segment's local final state → slot seg + 1 (none for the last segment)
  //   reverse: the segment's local initial-state gradient → slot seg − 1 (none for the first segment)
  SUPRA_DEVICE float* local_state_out(const ChunkedArgs& a) const {
    return seg + 1 < nseg ? a.seg_states + seg_state_offset + D * D : nullptr;
  }
  SUPRA_DEVICE float* local_d_state_out(const ChunkedArgs& a) const {
    return seg > 0 ? a.seg_d_states + seg_state_offset - D * D : nullptr;
  }

  int64_t b;                    // batch row
  int h, hk;                    // query head; its kv head (H / H_kv consecutive query heads share one)
  int64_t seg, nseg;            // segment of the row and number of segments (0 and 1 without sequence parallelism)
  int64_t t_begin, len;         // the CTA's tokens: t_begin … t_begin + len − 1 of the row
  int64_t q_stride, kv_stride;  // elements from one token to the next within a head: H·D, H_kv·D
  int64_t q_offset;             // (b, t_begin, h, 0) of [B, T, H, D]: q, o, dO, dQ
  int64_t kv_offset;            // (b, t_begin, hk, 0) of [B, T, H_kv, D]: k, v
  int64_t state_offset;         // (b, h, 0, 0) of [B, H, D, D]: initial / final state and their gradients
  int64_t seg_state_offset;     // (b, h, seg, 0, 0) of the workspaces [B, H, nseg, D, D]
  int64_t reset_offset;         // (b, t_begin) of resets [B, T]
};

}  // namespace supra::cuda
