// Device-side building blocks shared by supra's CUDA kernels: the bf16 type and conversions, block and warp
// synchronisation, 16-byte asynchronous global→shared copies (cp.async, sm_80+), ldmatrix and the bf16 tensor-core
// MMA m16n8k16 (mma.sync, sm_80+). Everything the kernel bodies (chunked_mma.cuh, chunked_simt.cuh,
// decode_step.cuh, decode_fused.cuh) touch that is not plain C++ goes through this header, so the same bodies also
// compile as host code against kernels/cuda/emu/emu_device.h (SUPRA_EMULATE), a thread-per-lane emulator used to test
// the index math of the kernels on machines without a GPU.
//
// Fragment layouts of mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 (PTX ISA, "Matrix fragments for
// mma.m16n8k16"), lane = 4·g + t (g = lane / 4 ∈ [0, 8), t = lane % 4):
//   A (16×16, row-major) 4 × b32: a0 = A[g][2t, 2t+1], a1 = A[g+8][2t, 2t+1], a2 = A[g][2t+8, 2t+9],
//                                  a3 = A[g+8][2t+8, 2t+9]                 (lower 16 bits = smaller column)
//   B (16×8, "col")        2 × b32: b0 = B[2t, 2t+1][g], b1 = B[2t+8, 2t+9][g]  (lower 16 bits = smaller k)
//   C/D (16×8, fp32)       4 × f32: c0 = C[g][2t], c1 = C[g][2t+1], c2 = C[g+8][2t], c3 = C[g+8][2t+1]
// ldmatrix.m8n8.x4 loads four 8×8 b16 matrices; lanes 8m … 8m+7 give the addresses of the 8 rows (16 bytes each)
// of matrix m, and lane (g, t) receives in register m the pair M_m[g][2t, 2t+1]; with .trans it receives
// M_m[2t][g], M_m[2t+1][g] (the matrix is transposed on the way). The four fragment loaders at the end turn these
// into A and B operands from row-major shared-memory tiles in either orientation.
#pragma once

#include <cstdint>

#if defined(SUPRA_EMULATE)
#include "kernels/cuda/emu/emu_device.h"
#else
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#define SUPRA_DEVICE __device__ __forceinline__

namespace supra::cuda::dev {

using bf16 = __nv_bfloat16;

SUPRA_DEVICE float to_float(float x) { return x; }
SUPRA_DEVICE float to_float(bf16 x) { return __bfloat162float(x); }

template <typename T>
SUPRA_DEVICE T from_float(float x);
template <>
SUPRA_DEVICE float from_float<float>(float x) {
  return x;
}
template <>
SUPRA_DEVICE bf16 from_float<bf16>(float x) {
  return __float2bfloat16_rn(x);
}

// Two floats → one 32-bit register of two bf16 (round to nearest even); `lo` goes to the lower 16 bits.
SUPRA_DEVICE uint32_t pack_bf16x2(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

// Stores (lo, hi) to p[0], p[1] (p 4-byte aligned for bf16, 8-byte aligned for float).
SUPRA_DEVICE void store_pair(bf16* p, float lo, float hi) {
  *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(lo, hi);
}
SUPRA_DEVICE void store_pair(float* p, float lo, float hi) { *reinterpret_cast<float2*>(p) = make_float2(lo, hi); }

// p[0], p[1] ← bf16(p[0]·w), bf16(p[1]·w) (p 4-byte aligned).
SUPRA_DEVICE void scale_pair(bf16* p, float w) {
  __nv_bfloat162 v = *reinterpret_cast<__nv_bfloat162*>(p);
  *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(__low2float(v) * w, __high2float(v) * w);
}

// 16-byte fp32 vector load / store (p 16-byte aligned; the store: global memory). The store goes through __stwb
// (one st.global.wb.v4.f32, the same caching as a plain store): nvcc 13.0 split a plain `*(float4*)p = v` of the
// decode kernels' state rows into four scalar st.global.f32 (seen in the PTX), four times the store instructions
// of a bandwidth-bound stream.
SUPRA_DEVICE void load_f4(float (&x)[4], const float* p) {
  const float4 v = *reinterpret_cast<const float4*>(p);
  x[0] = v.x;
  x[1] = v.y;
  x[2] = v.z;
  x[3] = v.w;
}
SUPRA_DEVICE void store_f4(float* p, const float (&x)[4]) {
  __stwb(reinterpret_cast<float4*>(p), make_float4(x[0], x[1], x[2], x[3]));
}

SUPRA_DEVICE void block_sync() { __syncthreads(); }
SUPRA_DEVICE unsigned warp_ballot(bool pred) { return __ballot_sync(0xffffffffu, pred); }
SUPRA_DEVICE int popcount(unsigned x) { return __popc(x); }
SUPRA_DEVICE float exp_f32(float x) { return expf(x); }    // full-precision expf (decay powers are fp32-exact-ish)
SUPRA_DEVICE float sqrt_f32(float x) { return sqrtf(x); }  // IEEE-rounded square root

// ---------------------------------------------------------------- asynchronous copies (sm_80+)
// 16 bytes global → shared; when !valid nothing is read and the 16 destination bytes are zero-filled
// (src-size 0), which is how rows past the end of the sequence become zeros.
SUPRA_DEVICE void cp_async_16(void* smem_dst, const void* gmem_src, bool valid) {
  const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem_dst));
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem_src), "r"(src_bytes) : "memory");
}
SUPRA_DEVICE void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
SUPRA_DEVICE void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// ---------------------------------------------------------------- ldmatrix and mma.sync (sm_80+)
SUPRA_DEVICE void ldsm_x4(uint32_t (&r)[4], const bf16* row_ptr) {
  const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(row_ptr));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a)
               : "memory");
}
SUPRA_DEVICE void ldsm_x4_trans(uint32_t (&r)[4], const bf16* row_ptr) {
  const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(row_ptr));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a)
               : "memory");
}

// c += A·B for one 16×8×16 tile (bf16 operands, fp32 accumulators).
SUPRA_DEVICE void mma_bf16_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

}  // namespace supra::cuda::dev
#endif  // SUPRA_EMULATE

namespace supra::cuda::dev {

// ---------------------------------------------------------------- fragment loaders (one warp, all lanes)
// Shared-memory tiles are row-major bf16 with a row stride of `ld` elements (a multiple of 8, so every ldmatrix
// row address is 16-byte aligned; ld ≡ 8 mod 64 keeps the 8 rows of a matrix in different banks).
// In each loader, lane l addresses row (l & 7) of matrix (l >> 3).

// A operand, 16×16 at (m0, k0), of A = X (X row-major with rows m, columns k).
// Matrices: 0 = rows m0..+7 × cols k0..+7 (a0), 1 = rows +8 (a1), 2 = cols +8 (a2), 3 = both +8 (a3).
SUPRA_DEVICE void load_a(uint32_t (&a)[4], const bf16* x, int ld, int m0, int k0, int lane) {
  const int mat = lane >> 3, row = lane & 7;
  ldsm_x4(a, x + (m0 + row + 8 * (mat & 1)) * ld + k0 + 8 * (mat >> 1));
}

// A operand, 16×16 at (m0, k0), of A = Xᵀ (X row-major with rows k, columns m): A[m][k] = X[k][m].
// a0 ← X rows k0..+7, cols m0..+7 transposed; a1 ← cols m0+8; a2 ← rows k0+8; a3 ← both.
SUPRA_DEVICE void load_a_trans(uint32_t (&a)[4], const bf16* x, int ld, int m0, int k0, int lane) {
  const int mat = lane >> 3, row = lane & 7;
  ldsm_x4_trans(a, x + (k0 + row + 8 * (mat >> 1)) * ld + m0 + 8 * (mat & 1));
}

// B operands of two adjacent n-tiles (n0..n0+7 and n0+8..n0+15) at k0, for B = Xᵀ (X row-major with rows n,
// columns k: B[k][n] = X[n][k], e.g. the keys in Q·Kᵀ). b[0], b[1] = (b0, b1) of n-tile n0; b[2], b[3] of n0+8.
SUPRA_DEVICE void load_b_nk(uint32_t (&b)[4], const bf16* x, int ld, int n0, int k0, int lane) {
  const int mat = lane >> 3, row = lane & 7;
  ldsm_x4(b, x + (n0 + row + 8 * (mat >> 1)) * ld + k0 + 8 * (mat & 1));
}

// Same for B = X (X row-major with rows k, columns n: B[k][n] = X[k][n], e.g. the values in P·V), via .trans.
SUPRA_DEVICE void load_b_kn(uint32_t (&b)[4], const bf16* x, int ld, int k0, int n0, int lane) {
  const int mat = lane >> 3, row = lane & 7;
  ldsm_x4_trans(b, x + (k0 + row + 8 * (mat & 1)) * ld + n0 + 8 * (mat >> 1));
}

// Two adjacent 16×8 accumulator tiles (columns k0..k0+7 and k0+8..k0+15 of the same 16 rows) become the bf16
// A operand of the 16×16 k-slice k0..k0+15: the accumulator layout of the pair equals the A-fragment layout.
SUPRA_DEVICE void accumulators_to_a(uint32_t (&a)[4], const float (&c_lo)[4], const float (&c_hi)[4]) {
  a[0] = pack_bf16x2(c_lo[0], c_lo[1]);  // row g,   k 2t, 2t+1
  a[1] = pack_bf16x2(c_lo[2], c_lo[3]);  // row g+8, k 2t, 2t+1
  a[2] = pack_bf16x2(c_hi[0], c_hi[1]);  // row g,   k 2t+8, 2t+9
  a[3] = pack_bf16x2(c_hi[2], c_hi[3]);  // row g+8, k 2t+8, 2t+9
}

}  // namespace supra::cuda::dev
