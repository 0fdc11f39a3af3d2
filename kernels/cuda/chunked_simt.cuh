// CUDA-core (fp32 FMA) bodies of the chunked linear-attention kernels: the fp32 path (tensor cores would round to
// tf32/bf16 and miss the 1e-5 fp32 tolerance) and an independent cross-check of the tensor-core path for bf16.
// Same algorithm and notation as chunked_mma.cuh, with chunks of C = 32 tokens and everything — tiles, scores,
// the running state — in fp32 shared memory:
//   forward / dQ sweep:  P = (A_in Bᵀ) ⊙ M;  out = diag(f) A_in S(ᵀ) + P · vals;  S ← δ S + (diag(w) K)ᵀ V
//   reverse sweep:       P = (Q Kᵀ) ⊙ M, dP = (dO Vᵀ) ⊙ M;
//                        dK = diag(w) V dSᵀ + dPᵀ Q;  dV = diag(w) K dS + Pᵀ dO;  dS ← δ dS + (diag(f) Q)ᵀ dO
// One CTA (256 threads) per (batch, head), or per (batch, head, segment) in the sequence-parallel mode
// (segments.cuh); each thread computes whole dot products from shared memory. Rows of the fp32 tiles are padded
// to D + 1 floats so that a warp reading one column of 32 rows hits 32 banks.
#pragma once

#include "kernels/cuda/block_info.cuh"
#include "kernels/cuda/device_common.cuh"
#include "kernels/cuda/kernel_args.h"

namespace supra::cuda::simt {

constexpr int kChunk = 32;
constexpr int kThreads = 256;

template <int D>
constexpr int smem_bytes(int tiles, int score_tiles) {
  return (tiles * kChunk * (D + 1) + D * (D + 1) + score_tiles * kChunk * (kChunk + 1) + (kChunk + 1) + 2 * kChunk) *
             4 +
         kChunk * 4;
}

// Warp 0 only: seg[i] = number of resets at chunk positions ≤ i; `resets` points at the chunk's first token or is
// null; positions ≥ L count as no reset.
SUPRA_DEVICE void chunk_documents32(int* seg, const uint8_t* resets, int L, int lane) {
  const bool f = resets != nullptr && lane < L && resets[lane] != 0;
  const unsigned m = dev::warp_ballot(f);
  const unsigned upto = (2u << lane) - 1u;  // bits 0..lane
  seg[lane] = dev::popcount(m & upto);
}

// Copies rows t0 … t0 + C − 1 of one head of a [B, T, heads, D] tensor (`src` at (b, t0, head, 0)) into an fp32
// tile [C][D + 1]; rows ≥ valid_rows become zeros.
template <typename Elem, int D>
SUPRA_DEVICE void load_tile(float* dst, const Elem* src, int64_t row_stride, int valid_rows, int tid) {
  for (int idx = tid; idx < kChunk * D; idx += kThreads) {
    const int r = idx / D, col = idx % D;
    dst[r * (D + 1) + col] = r < valid_rows ? dev::to_float(src[r * row_stride + col]) : 0.f;
  }
}

// The running fp32 state tile [D][D + 1] ← src (fp32 [D, D], row-major) or zeros, and back.
template <int D>
SUPRA_DEVICE void state_load(float* sX, const float* src, int tid) {
  for (int p = tid; p < D * D; p += kThreads) sX[(p / D) * (D + 1) + p % D] = src ? src[p] : 0.f;
}
template <int D>
SUPRA_DEVICE void state_store(float* dst, const float* sX, int tid) {
  for (int p = tid; p < D * D; p += kThreads) dst[p] = sX[(p / D) * (D + 1) + p % D];
}

// The chunk's state update, written once for both sweeps: X ← δ X + Σ_{j < L} c_j a_jᵀ b_j on the fp32 tile sX
// ([D][D + 1]; a, b rows of the [C][D + 1] tiles sA, sB). Forward / dQ sweep: S ← δ S + (diag(w) K)ᵀ V; reverse
// sweep: dS ← δ dS + (diag(f) Q)ᵀ dO.
template <int D>
SUPRA_DEVICE void state_update(float* sX, float decay, const float* coef, const float* sA, const float* sB, int L,
                               int tid) {
  constexpr int LDF = D + 1;
  for (int p = tid; p < D * D; p += kThreads) {
    const int dk = p / D, e = p % D;
    float acc = 0.f;
    for (int j = 0; j < L; ++j) acc += coef[j] * sA[j * LDF + dk] * sB[j * LDF + e];
    sX[dk * LDF + e] = decay * sX[dk * LDF + e] + acc;
  }
}

// Forward (kGradQ = false) or dQ sweep (kGradQ = true) over the CTA's tokens (a whole row, or one segment in the
// sequence-parallel mode). kStateOnly: the segment-state pass of the sequence-parallel forward — only the state
// recurrence, from a zero state, no output; the result goes to BlockInfo::local_state_out. Shared memory:
// smem_bytes<D>(3, 1).
template <typename Elem, int D, bool kGradQ, bool kStateOnly = false>
SUPRA_DEVICE void sweep(const ChunkedArgs& a, char* smem, int tid, int64_t block) {
  constexpr int C = kChunk, LDF = D + 1, LDP = C + 1;
  const int warp = tid >> 5, lane = tid & 31;
  const BlockInfo<D> bi(a, block);
  const int64_t T = bi.len;
  const float scale = a.scale;
  if (kStateOnly && bi.local_state_out(a) == nullptr) return;  // the last segment's state is not needed

  float* sA = reinterpret_cast<float*>(smem);      // [C][LDF] Q (forward) or dO (dQ)
  float* sK = sA + C * LDF;                        // [C][LDF]
  float* sV = sK + C * LDF;                        // [C][LDF]
  float* sS = sV + C * LDF;                        // [D][LDF] the state S[dk][e], fp32
  float* sP = sS + D * LDF;                        // [C][LDP] masked scores P[i][j]
  float* sG = sP + C * LDP;                        // [C + 1] γ^n
  float* sW = sG + C + 1;                          // [C] w_j
  int* sSeg = reinterpret_cast<int*>(sW + 2 * C);  // [C]

  const int64_t strideA = bi.q_stride, strideKV = bi.kv_stride;
  const Elem* gA = static_cast<const Elem*>(kGradQ ? a.d_o : a.q) + bi.q_offset;
  const Elem* gK = static_cast<const Elem*>(a.k) + bi.kv_offset;
  const Elem* gV = static_cast<const Elem*>(a.v) + bi.kv_offset;
  Elem* gOut = static_cast<Elem*>(kGradQ ? a.dq : a.o) + bi.q_offset;
  const uint8_t* gR = a.resets ? a.resets + bi.reset_offset : nullptr;

  const float log_gamma = a.log_gamma[bi.h];
  for (int n = tid; n <= C; n += kThreads) sG[n] = dev::exp_f32(log_gamma * static_cast<float>(n));
  state_load<D>(sS, kStateOnly ? nullptr : bi.initial_state(a), tid);

  const float* sScoreB = kGradQ ? sV : sK;  // P = A_in · sScoreBᵀ ⊙ M
  const float* sVals = kGradQ ? sK : sV;    // out += P · sVals

  const int64_t num_chunks = (T + C - 1) / C;
  for (int64_t c = 0; c < num_chunks; ++c) {
    const int64_t t0 = c * C;
    const int L = static_cast<int>(T - t0 < C ? T - t0 : C);
    dev::block_sync();  // the previous chunk is done with the tiles
    if (!kStateOnly) load_tile<Elem, D>(sA, gA + t0 * strideA, strideA, L, tid);
    load_tile<Elem, D>(sK, gK + t0 * strideKV, strideKV, L, tid);
    load_tile<Elem, D>(sV, gV + t0 * strideKV, strideKV, L, tid);
    if (warp == 0) chunk_documents32(sSeg, gR ? gR + t0 : nullptr, L, lane);
    dev::block_sync();

    const int segL = sSeg[L - 1];
    if (tid < C) sW[tid] = (tid < L && sSeg[tid] == segL) ? scale * sG[L - tid] : 0.f;
    if constexpr (kStateOnly) {
      dev::block_sync();  // sW
    } else {
      // P_ij = s γ^{i−j} (a_i · b_j) for j ≤ i in the same document.
      for (int p = tid; p < C * C; p += kThreads) {
        const int i = p / C, j = p % C;
        float val = 0.f;
        if (j <= i && sSeg[i] == sSeg[j]) {
          float dot = 0.f;
          for (int d = 0; d < D; ++d) dot += sA[i * LDF + d] * sScoreB[j * LDF + d];
          val = dot * scale * sG[i - j];
        }
        sP[i * LDP + j] = val;
      }
      dev::block_sync();

      // out_i = f_i Σ_x a_i[x] S(x, col) + Σ_{j ≤ i} P_ij vals_j[col],  S(x, col) = S[x][col] (forward) or S[col][x].
      for (int p = tid; p < C * D; p += kThreads) {
        const int i = p / D, col = p % D;
        if (i >= L) continue;
        float inter = 0.f, intra = 0.f;
        for (int x = 0; x < D; ++x) inter += sA[i * LDF + x] * (kGradQ ? sS[col * LDF + x] : sS[x * LDF + col]);
        for (int j = 0; j <= i; ++j) intra += sP[i * LDP + j] * sVals[j * LDF + col];
        const float f = sSeg[i] == 0 ? sG[i] : 0.f;
        gOut[(t0 + i) * strideA + col] = dev::from_float<Elem>(f * inter + intra);
      }
      dev::block_sync();
    }

    // S ← δ S + Σ_j w_j k_jᵀ v_j.
    state_update<D>(sS, segL == 0 ? sG[L] : 0.f, sW, sK, sV, L, tid);
  }
  dev::block_sync();
  float* out_state = kStateOnly ? bi.local_state_out(a) : kGradQ ? nullptr : bi.final_state(a);
  if (out_state != nullptr) state_store<D>(out_state, sS, tid);
}

// Reverse sweep: dK, dV (OutT: Elem per kv head, or float per query head) and dS_0. kStateOnly: the
// segment-state pass of the sequence-parallel backward — only dS, from a zero gradient, no dK / dV; the result goes
// to BlockInfo::local_d_state_out. Shared memory: smem_bytes<D>(4, 2).
template <typename Elem, typename OutT, int D, bool kStateOnly = false>
SUPRA_DEVICE void reverse(const ChunkedArgs& a, char* smem, int tid, int64_t block) {
  constexpr int C = kChunk, LDF = D + 1, LDP = C + 1;
  const int warp = tid >> 5, lane = tid & 31;
  const BlockInfo<D> bi(a, block);
  const int64_t T = bi.len;
  const float scale = a.scale;
  if (kStateOnly && bi.local_d_state_out(a) == nullptr) return;  // the first segment's gradient is not needed

  float* sQ = reinterpret_cast<float*>(smem);  // [C][LDF]
  float* sK = sQ + C * LDF;
  float* sV = sK + C * LDF;
  float* sdO = sV + C * LDF;
  float* sS = sdO + C * LDF;  // [D][LDF] dS[dk][e]
  float* sP = sS + D * LDF;   // [C][LDP] P[i][j]
  float* sdP = sP + C * LDP;  // [C][LDP] dP[i][j]
  float* sG = sdP + C * LDP;  // [C + 1]
  float* sW = sG + C + 1;     // [C] w_j
  float* sF = sW + C;         // [C] f_i
  int* sSeg = reinterpret_cast<int*>(sF + C);

  const int64_t strideQ = bi.q_stride, strideKV = bi.kv_stride;
  const Elem* gQ = static_cast<const Elem*>(a.q) + bi.q_offset;
  const Elem* gK = static_cast<const Elem*>(a.k) + bi.kv_offset;
  const Elem* gV = static_cast<const Elem*>(a.v) + bi.kv_offset;
  const Elem* gdO = static_cast<const Elem*>(a.d_o) + bi.q_offset;
  const int64_t strideOut = bi.dkv_stride(a.dkv_per_query_head);
  OutT* gdK = static_cast<OutT*>(a.dk) + bi.dkv_offset(a.dkv_per_query_head);
  OutT* gdV = static_cast<OutT*>(a.dv) + bi.dkv_offset(a.dkv_per_query_head);
  const uint8_t* gR = a.resets ? a.resets + bi.reset_offset : nullptr;

  const float log_gamma = a.log_gamma[bi.h];
  for (int n = tid; n <= C; n += kThreads) sG[n] = dev::exp_f32(log_gamma * static_cast<float>(n));
  state_load<D>(sS, kStateOnly ? nullptr : bi.d_final_state(a), tid);

  const int64_t num_chunks = (T + C - 1) / C;
  for (int64_t c = num_chunks - 1; c >= 0; --c) {
    const int64_t t0 = c * C;
    const int L = static_cast<int>(T - t0 < C ? T - t0 : C);
    dev::block_sync();
    load_tile<Elem, D>(sQ, gQ + t0 * strideQ, strideQ, L, tid);
    if (!kStateOnly) {
      load_tile<Elem, D>(sK, gK + t0 * strideKV, strideKV, L, tid);
      load_tile<Elem, D>(sV, gV + t0 * strideKV, strideKV, L, tid);
    }
    load_tile<Elem, D>(sdO, gdO + t0 * strideQ, strideQ, L, tid);
    if (warp == 0) chunk_documents32(sSeg, gR ? gR + t0 : nullptr, L, lane);
    dev::block_sync();

    const int segL = sSeg[L - 1];
    if (tid < C) {
      sW[tid] = (tid < L && sSeg[tid] == segL) ? scale * sG[L - tid] : 0.f;
      sF[tid] = sSeg[tid] == 0 ? sG[tid] : 0.f;
    }
    if constexpr (kStateOnly) {
      dev::block_sync();  // sF
    } else {
      for (int p = tid; p < C * C; p += kThreads) {
        const int i = p / C, j = p % C;
        float pv = 0.f, dpv = 0.f;
        if (j <= i && sSeg[i] == sSeg[j]) {
          float qk = 0.f, dov = 0.f;
          for (int d = 0; d < D; ++d) {
            qk += sQ[i * LDF + d] * sK[j * LDF + d];
            dov += sdO[i * LDF + d] * sV[j * LDF + d];
          }
          pv = qk * scale * sG[i - j];
          dpv = dov * scale * sG[i - j];
        }
        sP[i * LDP + j] = pv;
        sdP[i * LDP + j] = dpv;
      }
      dev::block_sync();

      // dK_j = w_j Σ_e v_j[e] dS[d][e] + Σ_{i ≥ j} dP_ij q_i[d];  dV_j = w_j Σ_d k_j[d] dS[d][e] + Σ_{i ≥ j} P_ij
      // do_i[e]
      for (int p = tid; p < C * D; p += kThreads) {
        const int j = p / D, col = p % D;
        if (j >= L) continue;
        float inter_k = 0.f, intra_k = 0.f, inter_v = 0.f, intra_v = 0.f;
        for (int x = 0; x < D; ++x) {
          inter_k += sV[j * LDF + x] * sS[col * LDF + x];
          inter_v += sK[j * LDF + x] * sS[x * LDF + col];
        }
        for (int i = j; i < C; ++i) {
          intra_k += sdP[i * LDP + j] * sQ[i * LDF + col];
          intra_v += sP[i * LDP + j] * sdO[i * LDF + col];
        }
        gdK[(t0 + j) * strideOut + col] = dev::from_float<OutT>(sW[j] * inter_k + intra_k);
        gdV[(t0 + j) * strideOut + col] = dev::from_float<OutT>(sW[j] * inter_v + intra_v);
      }
      dev::block_sync();
    }

    // dS ← δ dS + Σ_i f_i q_iᵀ do_i.
    state_update<D>(sS, segL == 0 ? sG[L] : 0.f, sF, sQ, sdO, L, tid);
  }
  dev::block_sync();
  float* out_state = kStateOnly ? bi.local_d_state_out(a) : bi.d_initial_state(a);
  if (out_state != nullptr) state_store<D>(out_state, sS, tid);
}

}  // namespace supra::cuda::simt
