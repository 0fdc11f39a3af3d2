// Tensor-core (mma.sync m16n8k16, bf16 in, fp32 accumulate) bodies of the chunked linear-attention kernels.
// Plain device functions; the __global__ wrappers and launchers are in chunked_mma.cu. bf16 inputs only.
//
// Notation (one CTA = one (batch b, query head h), or one segment of its row in the sequence-parallel mode of
// segments.cuh, T then being the segment's length; kv head h / (H / H_kv); chunk c of C = 64 tokens starting at
// t0, L = min(C, T − t0) real tokens; local indices i, j ∈ [0, C); s = scale; γ = γ_h; doc(i) = number of document
// starts (resets) in the chunk up to and including i):
//   M_ij   = s γ^{i−j}  if j ≤ i and doc(i) = doc(j), else 0          (intra-chunk decay mask, scale folded in)
//   f_i    = γ^i        if doc(i) = 0 (no reset in the chunk up to i), else 0   (how much of S_c token i sees)
//   w_j    = s γ^{L−j}  if j < L and doc(j) = doc(L−1), else 0          (how much of token j enters S_{c+1})
//   δ      = γ^L        if the chunk has no reset, else 0              (how much of S_c survives into S_{c+1})
// Forward (this is the chunked form of docs/method.md §3 with resets):
//   O_c     = diag(f) Q_c S_c + (Q_c K_cᵀ ⊙ M) V_c
//   S_{c+1} = δ S_c + (diag(w) K_c)ᵀ V_c                  S_0 = initial state, S_NC = final state
// Backward, given dO and dS_NC (gradient of the final state):
//   dQ_c    = diag(f) dO_c S_cᵀ + (dO_c V_cᵀ ⊙ M) K_c       forward sweep, recomputing S_c   (sweep<D, true>)
//   dK_c    = diag(w) V_c dS_{c+1}ᵀ + (dO_c V_cᵀ ⊙ M)ᵀ Q_c  reverse sweep                     (reverse<D, OutT>)
//   dV_c    = diag(w) K_c dS_{c+1}  + (Q_c K_cᵀ ⊙ M)ᵀ dO_c
//   dS_c    = δ dS_{c+1} + (diag(f) Q_c)ᵀ dO_c             dS_0 = gradient of the initial state
// The forward and the dQ sweep are the same loop with (Q, K, V) → (dO, V, K) in the intra term and S → Sᵀ in the
// inter term; both update S exactly like the forward. The running state (S or dS, [D, D] fp32) lives in registers
// for the whole sequence — nothing per chunk goes to global memory; each chunk reads its Q/K/V(/dO) tiles once
// (cp.async, double-buffered: chunk c+1 loads while chunk c computes) and writes its output rows once.
//
// Work split (8 warps): for the output products, warp w owns the 16 rows 16·(w % 4) … of the chunk and half of the
// D output columns (w / 4); the two warps sharing rows both compute that row block's 16×64 score tile (a small
// redundancy that keeps every product in registers: the score accumulators are re-used directly as the A operand
// of the next product, as in FlashAttention-2). Causality skips the score tiles above the diagonal. For the state
// update, warp w owns a 16-row × (8·NT)-column block of the state (StateTile). The state is also kept as a bf16
// copy in shared memory (rebuilt after every update) because it is the B operand of the inter-chunk product.
//
// Precision: operands are bf16 (inputs as given; the masked scores, the w-scaled keys / f-scaled queries and the
// state copy are rounded to bf16 like in other chunked kernels); every sum is accumulated in fp32, the decay
// powers γ^n are fp32 expf(n·log γ) (never γ^{−n}, which overflows for fast-decaying heads), and the state that
// is carried from chunk to chunk stays fp32.
#pragma once

#include "kernels/cuda/block_info.cuh"
#include "kernels/cuda/device_common.cuh"
#include "kernels/cuda/kernel_args.h"

namespace supra::cuda::mma {

using dev::bf16;

constexpr int kChunk = 64;
constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

template <int D>
struct Layout {
  static constexpr int LD = D + 8;          // row stride (elements) of every bf16 tile in shared memory
  static constexpr int TILE = kChunk * LD;  // one [C, D] tile
  static constexpr int STATE = D * LD;      // bf16 copy of the [D, D] state
};

// Shared memory of a kernel that keeps `stages` × `tiles` [C, D] tiles, the bf16 state copy, γ^n (n = 0..C) and
// the per-token document index.
template <int D>
constexpr int smem_bytes(int tiles, int stages) {
  return (stages * tiles * Layout<D>::TILE + Layout<D>::STATE) * 2 + (kChunk + 4) * 4 + kChunk * 4;
}

// Which part of the [D, D] state warp `warp` holds in registers: rows m0 … m0+15, columns n0 … n0 + 8·NT − 1,
// as NT accumulator tiles of 16×8.
template <int D>
struct StateTile {
  static constexpr int WARPS_M = D / 16;                // 8 warps down the rows (D = 128) or 4 (D = 64)
  static constexpr int NT = D * D / (16 * 8 * kWarps);  // 16 tiles (all 128 columns) or 4 (32 of 64 columns)
  int m0, n0;
  SUPRA_DEVICE explicit StateTile(int warp) : m0((warp % WARPS_M) * 16), n0((warp / WARPS_M) * NT * 8) {}
};

// acc ← src (fp32 [D, D], row-major) or zeros.
template <int D, int NT>
SUPRA_DEVICE void state_load(float (&acc)[NT][4], const float* src, int m0, int n0, int lane) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const int row = m0 + g, col = n0 + 8 * nt + 2 * t;
    acc[nt][0] = src ? src[row * D + col] : 0.f;
    acc[nt][1] = src ? src[row * D + col + 1] : 0.f;
    acc[nt][2] = src ? src[(row + 8) * D + col] : 0.f;
    acc[nt][3] = src ? src[(row + 8) * D + col + 1] : 0.f;
  }
}

template <int D, int NT>
SUPRA_DEVICE void state_store(const float (&acc)[NT][4], float* dst, int m0, int n0, int lane) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const int row = m0 + g, col = n0 + 8 * nt + 2 * t;
    dev::store_pair(dst + row * D + col, acc[nt][0], acc[nt][1]);
    dev::store_pair(dst + (row + 8) * D + col, acc[nt][2], acc[nt][3]);
  }
}

// The bf16 copy in shared memory (row-major [D][LD]).
template <int D, int NT>
SUPRA_DEVICE void state_to_smem(const float (&acc)[NT][4], bf16* s, int m0, int n0, int lane) {
  constexpr int LD = Layout<D>::LD;
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const int row = m0 + g, col = n0 + 8 * nt + 2 * t;
    dev::store_pair(s + row * LD + col, acc[nt][0], acc[nt][1]);
    dev::store_pair(s + (row + 8) * LD + col, acc[nt][2], acc[nt][3]);
  }
}

// The chunk's state update, written once for both sweeps, on this warp's StateTile of the fp32 state in registers:
//   X ← δ X + Aᵀ B,   A[m = dk][k = j] = sA[j][dk] (load_a_trans), B[k = j][n = e] = sB[j][e] (load_b_kn)
// then the bf16 copy sX is rebuilt. Forward / dQ sweep: S ← δ S + (diag(w) K)ᵀ V; reverse sweep:
// dS ← δ dS + (diag(f) Q)ᵀ dO (sA already scaled in place).
template <int D>
SUPRA_DEVICE void state_update(float (&acc)[StateTile<D>::NT][4], float decay, const bf16* sA, const bf16* sB, bf16* sX,
                               const StateTile<D>& st, int lane) {
  constexpr int NT = StateTile<D>::NT, LD = Layout<D>::LD;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    acc[nt][0] *= decay;
    acc[nt][1] *= decay;
    acc[nt][2] *= decay;
    acc[nt][3] *= decay;
  }
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    uint32_t af[4], bfr[4];
    dev::load_a_trans(af, sA, LD, st.m0, 16 * kk, lane);
#pragma unroll
    for (int np = 0; np < NT / 2; ++np) {
      dev::load_b_kn(bfr, sB, LD, 16 * kk, st.n0 + 16 * np, lane);
      dev::mma_bf16_16816(acc[2 * np], af, bfr[0], bfr[1]);
      dev::mma_bf16_16816(acc[2 * np + 1], af, bfr[2], bfr[3]);
    }
  }
  state_to_smem<D>(acc, sX, st.m0, st.n0, lane);
}

// Starts the asynchronous copy of one [C, D] tile: rows t0 … t0 + C − 1 of a [B, T, heads, D] tensor, `src`
// pointing at (b, t0, head, 0) and `row_stride` = heads · D. Rows at or past `valid_rows` are zero-filled.
template <int D>
SUPRA_DEVICE void load_tile_async(bf16* dst, const bf16* src, int64_t row_stride, int valid_rows, int tid) {
  constexpr int LD = Layout<D>::LD;
  constexpr int PIECES = D / 8;  // 16-byte pieces per row
#pragma unroll
  for (int idx = tid; idx < kChunk * PIECES; idx += kThreads) {
    const int r = idx / PIECES, c = (idx % PIECES) * 8;
    const bool valid = r < valid_rows;
    dev::cp_async_16(dst + r * LD + c, valid ? src + r * row_stride + c : src, valid);
  }
}

// Warp 0 only: seg[i] = number of resets at chunk positions ≤ i (0 without resets). `resets` points at the
// chunk's first token or is null; positions ≥ L count as no reset.
SUPRA_DEVICE void chunk_documents(int* seg, const uint8_t* resets, int L, int lane) {
  const bool f0 = resets != nullptr && lane < L && resets[lane] != 0;
  const bool f1 = resets != nullptr && lane + 32 < L && resets[lane + 32] != 0;
  const unsigned m0 = dev::warp_ballot(f0), m1 = dev::warp_ballot(f1);
  const unsigned upto = (2u << lane) - 1u;  // bits 0..lane (lane 31: 2u << 31 wraps to 0, minus 1 = all bits)
  seg[lane] = dev::popcount(m0 & upto);
  seg[lane + 32] = dev::popcount(m0) + dev::popcount(m1 & upto);
}

// ---------------------------------------------------------------------------------------------------------------
// Forward (kGradQ = false): O and the final state.  dQ sweep (kGradQ = true): dQ.  kStateOnly: the segment-state
// pass of the sequence-parallel forward (segments.cuh): only S, from zero, no output; the result goes to
// BlockInfo::local_state_out. Shared memory: smem_bytes<D>(3, 2). Grid: B·H CTAs of kThreads (B·H·nseg with
// segments: a CTA walks tokens 0 … bi.len − 1 of its segment).
template <int D, bool kGradQ, bool kStateOnly = false>
SUPRA_DEVICE void sweep(const ChunkedArgs& a, char* smem, int tid, int64_t block) {
  using Lay = Layout<D>;
  using ST = StateTile<D>;
  constexpr int C = kChunk, LD = Lay::LD;
  constexpr int KS = D / 16;   // 16-wide k-slices over the head dim
  constexpr int ONT = D / 16;  // 8-wide output tiles per warp (half of the D columns)
  const int warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const BlockInfo<D> bi(a, block);
  const int64_t T = bi.len;
  const float scale = a.scale;
  if (kStateOnly && bi.local_state_out(a) == nullptr) return;  // the last segment's state is not needed

  bf16* tiles = reinterpret_cast<bf16*>(smem);            // [2 stages][3][TILE]: A_in (Q or dO), K, V
  bf16* sS = tiles + 2 * 3 * Lay::TILE;                   // [D][LD] bf16 copy of S_c
  float* sG = reinterpret_cast<float*>(sS + Lay::STATE);  // sG[n] = γ^n, n = 0..C
  int* sSeg = reinterpret_cast<int*>(sG + C + 4);         // document index within the chunk

  const int64_t strideA = bi.q_stride, strideKV = bi.kv_stride;
  const bf16* gA = static_cast<const bf16*>(kGradQ ? a.d_o : a.q) + bi.q_offset;
  const bf16* gK = static_cast<const bf16*>(a.k) + bi.kv_offset;
  const bf16* gV = static_cast<const bf16*>(a.v) + bi.kv_offset;
  bf16* gOut = static_cast<bf16*>(kGradQ ? a.dq : a.o) + bi.q_offset;
  const uint8_t* gR = a.resets ? a.resets + bi.reset_offset : nullptr;

  const float log_gamma = a.log_gamma[bi.h];
  for (int n = tid; n <= C; n += kThreads) sG[n] = dev::exp_f32(log_gamma * static_cast<float>(n));

  const ST st(warp);
  float accS[ST::NT][4];
  state_load<D>(accS, kStateOnly ? nullptr : bi.initial_state(a), st.m0, st.n0, lane);
  state_to_smem<D>(accS, sS, st.m0, st.n0, lane);

  const int wr = warp & 3;                  // output rows 16·wr … 16·wr + 15
  const int o_n0 = (warp >> 2) * (D / 2);   // output columns o_n0 … o_n0 + D/2 − 1
  const int i0 = 16 * wr + g, i1 = i0 + 8;  // the two rows this lane holds in accumulator tiles

  const int64_t num_chunks = (T + C - 1) / C;
  auto load_chunk = [&](int64_t c, int stage) {
    const int64_t t0 = c * C;
    const int rows = static_cast<int>(T - t0 < C ? T - t0 : C);
    bf16* dst = tiles + stage * 3 * Lay::TILE;
    if (!kStateOnly) load_tile_async<D>(dst, gA + t0 * strideA, strideA, rows, tid);
    load_tile_async<D>(dst + Lay::TILE, gK + t0 * strideKV, strideKV, rows, tid);
    load_tile_async<D>(dst + 2 * Lay::TILE, gV + t0 * strideKV, strideKV, rows, tid);
  };

  load_chunk(0, 0);
  dev::cp_async_commit();
  for (int64_t c = 0; c < num_chunks; ++c) {
    const int stage = static_cast<int>(c & 1);
    const int64_t t0 = c * C;
    const int L = static_cast<int>(T - t0 < C ? T - t0 : C);
    // Prefetch chunk c+1 into the other stage (its previous contents, chunk c−1, were released by the barrier at
    // the end of the last iteration), then wait for chunk c. One group is committed per iteration, possibly
    // empty, so "all but the newest group" is always chunk c.
    if (c + 1 < num_chunks) load_chunk(c + 1, stage ^ 1);
    dev::cp_async_commit();
    dev::cp_async_wait<1>();
    if (warp == 0) chunk_documents(sSeg, gR ? gR + t0 : nullptr, L, lane);
    dev::block_sync();

    bf16* sA = tiles + stage * 3 * Lay::TILE;
    bf16* sK = sA + Lay::TILE;
    bf16* sV = sA + 2 * Lay::TILE;
    const bf16* sScoreB = kGradQ ? sV : sK;  // scores  = A_in · sScoreBᵀ   (Q Kᵀ or dO Vᵀ)
    const bf16* sVals = kGradQ ? sK : sV;    // intra  += P · sVals         (P V or dP K)

    if constexpr (!kStateOnly) {  // the segment-state pass skips (1) … (4)
      // (1) inter-chunk product and scores, sharing the A_in fragments.
      //     forward: acc = Q S      (B[k = dk][n = e]  = S[dk][e]: load_b_kn)
      //     dQ:      acc = dO Sᵀ    (B[k = e][n = dk]  = S[dk][e]: load_b_nk)
      //     sc = A_in · sScoreBᵀ   (B[k = d][n = j]   = X[j][d]:  load_b_nk), key tiles 0 … 2·wr + 1 only
      float acc[ONT][4], sc[8][4];
#pragma unroll
      for (int nt = 0; nt < ONT; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.f;
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < KS; ++kk) {
        uint32_t af[4], bfr[4];
        dev::load_a(af, sA, LD, 16 * wr, 16 * kk, lane);
#pragma unroll
        for (int np = 0; np < ONT / 2; ++np) {
          if constexpr (kGradQ) {
            dev::load_b_nk(bfr, sS, LD, o_n0 + 16 * np, 16 * kk, lane);
          } else {
            dev::load_b_kn(bfr, sS, LD, 16 * kk, o_n0 + 16 * np, lane);
          }
          dev::mma_bf16_16816(acc[2 * np], af, bfr[0], bfr[1]);
          dev::mma_bf16_16816(acc[2 * np + 1], af, bfr[2], bfr[3]);
        }
#pragma unroll
        for (int np = 0; np < 4; ++np) {
          if (np <= wr) {  // warp-uniform
            dev::load_b_nk(bfr, sScoreB, LD, 16 * np, 16 * kk, lane);
            dev::mma_bf16_16816(sc[2 * np], af, bfr[0], bfr[1]);
            dev::mma_bf16_16816(sc[2 * np + 1], af, bfr[2], bfr[3]);
          }
        }
      }

      // (2) acc ← diag(f) acc;  sc ← sc ⊙ M.
      const int seg0 = sSeg[i0], seg1 = sSeg[i1];
      const float f0 = seg0 == 0 ? sG[i0] : 0.f, f1 = seg1 == 0 ? sG[i1] : 0.f;
#pragma unroll
      for (int nt = 0; nt < ONT; ++nt) {
        acc[nt][0] *= f0;
        acc[nt][1] *= f0;
        acc[nt][2] *= f1;
        acc[nt][3] *= f1;
      }
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int i = e < 2 ? i0 : i1, seg_i = e < 2 ? seg0 : seg1;
          const int j = 8 * nt + 2 * t + (e & 1);
          sc[nt][e] = (j <= i && sSeg[j] == seg_i) ? sc[nt][e] * scale * sG[i - j] : 0.f;
        }
      }

      // (3) acc += P · sVals: the score tiles (2kk, 2kk+1) are the A operand of key slice kk (kk ≤ wr).
      //     B[k = j][n = col] = sVals[j][col]: load_b_kn.
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        if (kk <= wr) {  // warp-uniform
          uint32_t pf[4], bfr[4];
          dev::accumulators_to_a(pf, sc[2 * kk], sc[2 * kk + 1]);
#pragma unroll
          for (int np = 0; np < ONT / 2; ++np) {
            dev::load_b_kn(bfr, sVals, LD, 16 * kk, o_n0 + 16 * np, lane);
            dev::mma_bf16_16816(acc[2 * np], pf, bfr[0], bfr[1]);
            dev::mma_bf16_16816(acc[2 * np + 1], pf, bfr[2], bfr[3]);
          }
        }
      }

      // (4) output rows i0, i1 (real tokens only).
#pragma unroll
      for (int nt = 0; nt < ONT; ++nt) {
        const int col = o_n0 + 8 * nt + 2 * t;
        if (i0 < L) dev::store_pair(gOut + (t0 + i0) * strideA + col, acc[nt][0], acc[nt][1]);
        if (i1 < L) dev::store_pair(gOut + (t0 + i1) * strideA + col, acc[nt][2], acc[nt][3]);
      }
      dev::block_sync();  // every warp is done with K (raw) and with the bf16 copy of S_c
    }

    // (5) K ← diag(w) K in place (bf16).
    const int segL = sSeg[L - 1];
    for (int idx = tid; idx < C * (D / 2); idx += kThreads) {
      const int j = idx / (D / 2), col = (idx % (D / 2)) * 2;
      const float w = (j < L && sSeg[j] == segL) ? scale * sG[L - j] : 0.f;
      dev::scale_pair(sK + j * LD + col, w);
    }
    dev::block_sync();

    // (6) S ← δ S + (diag(w) K)ᵀ V, and its bf16 copy.
    state_update<D>(accS, segL == 0 ? sG[L] : 0.f, sK, sV, sS, st, lane);
    dev::block_sync();  // S_{c+1} copy complete; this stage's tiles may be overwritten
  }
  dev::cp_async_wait<0>();
  float* out_state = kStateOnly ? bi.local_state_out(a) : kGradQ ? nullptr : bi.final_state(a);
  if (out_state != nullptr) state_store<D>(accS, out_state, st.m0, st.n0, lane);
}

// ---------------------------------------------------------------------------------------------------------------
// Reverse sweep: dK, dV and the initial-state gradient. OutT = bf16 (dk/dv per kv head, H == H_kv) or float (one
// fp32 slice per query head, summed by the caller). kStateOnly: the segment-state pass of the sequence-parallel
// backward: only dS, from zero, no dK / dV; the result goes to BlockInfo::local_d_state_out. Shared memory:
// smem_bytes<D>(4, STAGES).
template <int D, typename OutT, int STAGES, bool kStateOnly = false>
SUPRA_DEVICE void reverse(const ChunkedArgs& a, char* smem, int tid, int64_t block) {
  using Lay = Layout<D>;
  using ST = StateTile<D>;
  constexpr int C = kChunk, LD = Lay::LD;
  constexpr int KS = D / 16;
  constexpr int ONT = D / 16;
  const int warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const BlockInfo<D> bi(a, block);
  const int64_t T = bi.len;
  const float scale = a.scale;
  if (kStateOnly && bi.local_d_state_out(a) == nullptr) return;  // the first segment's gradient is not needed

  bf16* tiles = reinterpret_cast<bf16*>(smem);  // [STAGES][4][TILE]: Q, K, V, dO
  bf16* sS = tiles + STAGES * 4 * Lay::TILE;    // [D][LD] bf16 copy of dS_{c+1}
  float* sG = reinterpret_cast<float*>(sS + Lay::STATE);
  int* sSeg = reinterpret_cast<int*>(sG + C + 4);

  const int64_t strideQ = bi.q_stride, strideKV = bi.kv_stride;
  const bf16* gQ = static_cast<const bf16*>(a.q) + bi.q_offset;
  const bf16* gK = static_cast<const bf16*>(a.k) + bi.kv_offset;
  const bf16* gV = static_cast<const bf16*>(a.v) + bi.kv_offset;
  const bf16* gdO = static_cast<const bf16*>(a.d_o) + bi.q_offset;
  const int64_t strideOut = bi.dkv_stride(a.dkv_per_query_head);
  OutT* gdK = static_cast<OutT*>(a.dk) + bi.dkv_offset(a.dkv_per_query_head);
  OutT* gdV = static_cast<OutT*>(a.dv) + bi.dkv_offset(a.dkv_per_query_head);
  const uint8_t* gR = a.resets ? a.resets + bi.reset_offset : nullptr;

  const float log_gamma = a.log_gamma[bi.h];
  for (int n = tid; n <= C; n += kThreads) sG[n] = dev::exp_f32(log_gamma * static_cast<float>(n));

  const ST st(warp);
  float accS[ST::NT][4];  // dS
  state_load<D>(accS, kStateOnly ? nullptr : bi.d_final_state(a), st.m0, st.n0, lane);
  state_to_smem<D>(accS, sS, st.m0, st.n0, lane);

  const int wr = warp & 3;                 // key rows 16·wr … 16·wr + 15 of dK and dV
  const int o_n0 = (warp >> 2) * (D / 2);  // output columns
  const int j0 = 16 * wr + g, j1 = j0 + 8;

  const int64_t num_chunks = (T + C - 1) / C;
  auto load_chunk = [&](int64_t c, int stage) {
    const int64_t t0 = c * C;
    const int rows = static_cast<int>(T - t0 < C ? T - t0 : C);
    bf16* dst = tiles + stage * 4 * Lay::TILE;
    load_tile_async<D>(dst, gQ + t0 * strideQ, strideQ, rows, tid);
    if (!kStateOnly) {
      load_tile_async<D>(dst + Lay::TILE, gK + t0 * strideKV, strideKV, rows, tid);
      load_tile_async<D>(dst + 2 * Lay::TILE, gV + t0 * strideKV, strideKV, rows, tid);
    }
    load_tile_async<D>(dst + 3 * Lay::TILE, gdO + t0 * strideQ, strideQ, rows, tid);
  };

  if constexpr (STAGES == 2) {
    load_chunk(num_chunks - 1, 0);
    dev::cp_async_commit();
  }
  for (int64_t it = 0; it < num_chunks; ++it) {
    const int64_t c = num_chunks - 1 - it;  // last chunk first
    int stage = 0;
    if constexpr (STAGES == 2) {
      stage = static_cast<int>(it & 1);
      if (it + 1 < num_chunks) load_chunk(c - 1, stage ^ 1);
      dev::cp_async_commit();
      dev::cp_async_wait<1>();
    } else {
      load_chunk(c, 0);
      dev::cp_async_commit();
      dev::cp_async_wait<0>();
    }
    const int64_t t0 = c * C;
    const int L = static_cast<int>(T - t0 < C ? T - t0 : C);
    if (warp == 0) chunk_documents(sSeg, gR ? gR + t0 : nullptr, L, lane);
    dev::block_sync();

    bf16* sQ = tiles + stage * 4 * Lay::TILE;
    const bf16* sK = sQ + Lay::TILE;
    const bf16* sV = sQ + 2 * Lay::TILE;
    const bf16* sdO = sQ + 3 * Lay::TILE;

    const int segL = sSeg[L - 1];
    const int sj0 = sSeg[j0], sj1 = sSeg[j1];
    const float w0 = (j0 < L && sj0 == segL) ? scale * sG[L - j0] : 0.f;
    const float w1 = (j1 < L && sj1 == segL) ? scale * sG[L - j1] : 0.f;

    // Transposed scores: element (row j, column i) of Xᵀ = (X ⊙ M)ᵀ, nonzero for i ≥ j in the same document.
    auto mask_transposed = [&](float(&sc)[8][4]) {
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int j = e < 2 ? j0 : j1, seg_j = e < 2 ? sj0 : sj1;
          const int i = 8 * nt + 2 * t + (e & 1);
          sc[nt][e] = (i >= j && sSeg[i] == seg_j) ? sc[nt][e] * scale * sG[i - j] : 0.f;
        }
      }
    };

    // One output block (16 key rows × D/2 columns):
    //   acc = diag(w) · A_rows · Bᵀ_inter  +  (A_rows · sScoreᵀ ⊙ Mᵀ) · sVals
    // dK: A_rows = V, inter B[k = e][n = dk] = dS[dk][e] (load_b_nk), scores against dO, values Q.
    // dV: A_rows = K, inter B[k = dk][n = e] = dS[dk][e] (load_b_kn), scores against Q,  values dO.
    auto output_block = [&](const bf16* sRows, bool inter_transposed, const bf16* sScore, const bf16* sVals,
                            OutT* gOut) {
      float acc[ONT][4], sc[8][4];
#pragma unroll
      for (int nt = 0; nt < ONT; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.f;
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < KS; ++kk) {
        uint32_t af[4], bfr[4];
        dev::load_a(af, sRows, LD, 16 * wr, 16 * kk, lane);
#pragma unroll
        for (int np = 0; np < ONT / 2; ++np) {
          if (inter_transposed) {
            dev::load_b_nk(bfr, sS, LD, o_n0 + 16 * np, 16 * kk, lane);
          } else {
            dev::load_b_kn(bfr, sS, LD, 16 * kk, o_n0 + 16 * np, lane);
          }
          dev::mma_bf16_16816(acc[2 * np], af, bfr[0], bfr[1]);
          dev::mma_bf16_16816(acc[2 * np + 1], af, bfr[2], bfr[3]);
        }
        // scores: B[k = d][n = i] = sScore[i][d] (load_b_nk); query tiles from the diagonal block on
#pragma unroll
        for (int np = 0; np < 4; ++np) {
          if (np >= wr) {  // warp-uniform
            dev::load_b_nk(bfr, sScore, LD, 16 * np, 16 * kk, lane);
            dev::mma_bf16_16816(sc[2 * np], af, bfr[0], bfr[1]);
            dev::mma_bf16_16816(sc[2 * np + 1], af, bfr[2], bfr[3]);
          }
        }
      }
#pragma unroll
      for (int nt = 0; nt < ONT; ++nt) {
        acc[nt][0] *= w0;
        acc[nt][1] *= w0;
        acc[nt][2] *= w1;
        acc[nt][3] *= w1;
      }
      mask_transposed(sc);
      // acc += scᵀ-block · sVals: B[k = i][n = col] = sVals[i][col] (load_b_kn), query slices kk ≥ wr.
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        if (kk >= wr) {  // warp-uniform
          uint32_t pf[4], bfr[4];
          dev::accumulators_to_a(pf, sc[2 * kk], sc[2 * kk + 1]);
#pragma unroll
          for (int np = 0; np < ONT / 2; ++np) {
            dev::load_b_kn(bfr, sVals, LD, 16 * kk, o_n0 + 16 * np, lane);
            dev::mma_bf16_16816(acc[2 * np], pf, bfr[0], bfr[1]);
            dev::mma_bf16_16816(acc[2 * np + 1], pf, bfr[2], bfr[3]);
          }
        }
      }
#pragma unroll
      for (int nt = 0; nt < ONT; ++nt) {
        const int col = o_n0 + 8 * nt + 2 * t;
        if (j0 < L) dev::store_pair(gOut + (t0 + j0) * strideOut + col, acc[nt][0], acc[nt][1]);
        if (j1 < L) dev::store_pair(gOut + (t0 + j1) * strideOut + col, acc[nt][2], acc[nt][3]);
      }
    };

    if constexpr (!kStateOnly) {
      output_block(sV, /*inter_transposed=*/true, sdO, sQ, gdK);   // dK = diag(w) V dSᵀ + (dO Vᵀ ⊙ M)ᵀ Q
      output_block(sK, /*inter_transposed=*/false, sQ, sdO, gdV);  // dV = diag(w) K dS  + (Q Kᵀ ⊙ M)ᵀ dO
      dev::block_sync();  // every warp is done with Q (raw) and the bf16 copy of dS_{c+1}
    }

    // Q ← diag(f) Q in place (bf16).
    for (int idx = tid; idx < C * (D / 2); idx += kThreads) {
      const int i = idx / (D / 2), col = (idx % (D / 2)) * 2;
      const float f = sSeg[i] == 0 ? sG[i] : 0.f;
      dev::scale_pair(sQ + i * LD + col, f);
    }
    dev::block_sync();

    // dS ← δ dS + (diag(f) Q)ᵀ dO, and its bf16 copy.
    state_update<D>(accS, segL == 0 ? sG[L] : 0.f, sQ, sdO, sS, st, lane);
    dev::block_sync();
  }
  dev::cp_async_wait<0>();
  float* out_state = kStateOnly ? bi.local_d_state_out(a) : bi.d_initial_state(a);
  if (out_state != nullptr) state_store<D>(accS, out_state, st.m0, st.n0, lane);
}

}  // namespace supra::cuda::mma
