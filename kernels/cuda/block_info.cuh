// BlockInfo: where one (batch row, query head) pair's data lives in the layouts of kernel_args.h — the base element
// offsets of its q/o, k/v, dK/dV, state and reset slices and, under GQA, its kv head (like flash-attention's
// block_info.h). Every kernel body (chunked_mma.cuh, chunked_simt.cuh, decode_step.cuh) starts from one.
#pragma once

#include <cstdint>

#include "kernels/cuda/device_common.cuh"
#include "kernels/cuda/kernel_args.h"

namespace supra::cuda {

template <int D>
struct BlockInfo {
  // `bh` = b·H + h, the flattened (batch row, query head) index. The decode step's [B, H, D] tensors are the
  // chunked layouts with T = 1.
  SUPRA_DEVICE BlockInfo(int64_t bh, int heads, int kv_heads, int64_t seq_len)
      : b(bh / heads),
        h(static_cast<int>(bh % heads)),
        hk(h / (heads / kv_heads)),
        q_stride(static_cast<int64_t>(heads) * D),
        kv_stride(static_cast<int64_t>(kv_heads) * D),
        q_offset((b * seq_len * heads + h) * D),
        kv_offset((b * seq_len * kv_heads + hk) * D),
        state_offset(bh * D * D),
        reset_offset(b * seq_len) {}
  SUPRA_DEVICE BlockInfo(const ChunkedArgs& a, int64_t bh) : BlockInfo(bh, a.heads, a.kv_heads, a.seq_len) {}
  SUPRA_DEVICE BlockInfo(const DecodeArgs& a, int64_t bh) : BlockInfo(bh, a.heads, a.kv_heads, 1) {}

  // dK / dV: [B, T, H_kv, D] per kv head, or [B, T, H, D] with one fp32 slice per query head (GQA backward).
  SUPRA_DEVICE int64_t dkv_offset(bool per_query_head) const { return per_query_head ? q_offset : kv_offset; }
  SUPRA_DEVICE int64_t dkv_stride(bool per_query_head) const { return per_query_head ? q_stride : kv_stride; }

  int64_t b;                    // batch row
  int h, hk;                    // query head; its kv head (H / H_kv consecutive query heads share one)
  int64_t q_stride, kv_stride;  // elements from one token to the next within a head: H·D, H_kv·D
  int64_t q_offset;             // (b, 0, h, 0) of [B, T, H, D]: q, o, dO, dQ
  int64_t kv_offset;            // (b, 0, hk, 0) of [B, T, H_kv, D]: k, v
  int64_t state_offset;         // (b, h, 0, 0) of [B, H, D, D]: initial / final state and their gradients
  int64_t reset_offset;         // (b, 0) of resets [B, T]
};

}  // namespace supra::cuda
