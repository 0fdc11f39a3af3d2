// Host emulation of the device primitives of kernels/cuda/device_common.cuh (compiled with -DSUPRA_EMULATE), so the
// kernel bodies run unchanged on a CPU: every CUDA thread is a std::thread, __syncthreads is a std::barrier over
// the block, and the warp-collective instructions (ldmatrix, mma.sync, ballot) exchange their operands through a
// per-warp scratch area between two warp barriers and are evaluated from the PTX ISA's fragment definitions.
// cp.async copies are deferred to the cp.async.wait_group that retires them (or done at issue with
// SUPRA_EMU_EAGER_COPIES=1), so a missing wait or barrier shows up as stale data. Shared memory is poisoned with
// NaN bytes before each block, and ldmatrix / cp.async check alignment and bounds.
// Not a model of timing or of the memory system; only of what each instruction computes.
#pragma once

#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#define SUPRA_DEVICE inline

namespace supra::cuda::dev {

struct bf16 {
  uint16_t bits;
};

inline float bf16_bits_to_float(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint16_t float_to_bf16_bits(float f) {  // round to nearest even, like __float2bfloat16_rn
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float to_float(float x) { return x; }
inline float to_float(bf16 x) { return bf16_bits_to_float(x.bits); }
template <typename T>
inline T from_float(float x);
template <>
inline float from_float<float>(float x) {
  return x;
}
template <>
inline bf16 from_float<bf16>(float x) {
  return bf16{float_to_bf16_bits(x)};
}

inline uint32_t pack_bf16x2(float lo, float hi) {
  return static_cast<uint32_t>(float_to_bf16_bits(lo)) | (static_cast<uint32_t>(float_to_bf16_bits(hi)) << 16);
}
inline void store_pair(bf16* p, float lo, float hi) {
  p[0] = from_float<bf16>(lo);
  p[1] = from_float<bf16>(hi);
}
inline void store_pair(float* p, float lo, float hi) {
  p[0] = lo;
  p[1] = hi;
}
inline void scale_pair(bf16* p, float w) {
  p[0] = from_float<bf16>(to_float(p[0]) * w);
  p[1] = from_float<bf16>(to_float(p[1]) * w);
}
inline void load_f4(float (&x)[4], const float* p) {
  if (reinterpret_cast<std::uintptr_t>(p) % 16 != 0) {
    std::fprintf(stderr, "emu: misaligned float4 load\n");
    std::abort();
  }
  for (int i = 0; i < 4; ++i) x[i] = p[i];
}
inline void store_f4(float* p, const float (&x)[4]) {
  if (reinterpret_cast<std::uintptr_t>(p) % 16 != 0) {
    std::fprintf(stderr, "emu: misaligned float4 store\n");
    std::abort();
  }
  for (int i = 0; i < 4; ++i) p[i] = x[i];
}
inline float exp_f32(float x) { return std::exp(x); }
inline float sqrt_f32(float x) { return std::sqrt(x); }
inline int popcount(unsigned x) { return __builtin_popcount(x); }

// ---------------------------------------------------------------- the emulated block
struct EmuWarp {
  std::barrier<> bar{32};
  const void* ptr[32] = {};
  uint32_t a[32][4] = {};
  uint32_t b[32][2] = {};
  unsigned vote[32] = {};
};

struct EmuBlock {
  explicit EmuBlock(int threads) : bar(threads), warps(new EmuWarp[threads / 32]) {}
  std::barrier<> bar;
  std::unique_ptr<EmuWarp[]> warps;
  const char* smem_lo = nullptr;
  const char* smem_hi = nullptr;
};

struct EmuCopy {
  void* dst;
  const void* src;
  bool valid;
};

struct EmuThread {
  EmuBlock* block = nullptr;
  int tid = 0;
  std::vector<EmuCopy> pending;
  std::deque<std::vector<EmuCopy>> groups;
};

inline thread_local EmuThread tl_thread;
inline bool g_eager_copies = false;

[[noreturn]] inline void emu_fail(const char* what) {
  std::fprintf(stderr, "emu: %s (thread %d)\n", what, tl_thread.tid);
  std::abort();
}

inline void check_smem(const void* p, int bytes, const char* what) {
  const char* c = static_cast<const char*>(p);
  const EmuBlock* blk = tl_thread.block;
  if (c < blk->smem_lo || c + bytes > blk->smem_hi) emu_fail(what);
  if (reinterpret_cast<std::uintptr_t>(c) % 16 != 0) emu_fail(what);
}

inline EmuWarp& this_warp() { return tl_thread.block->warps[tl_thread.tid / 32]; }
inline int this_lane() { return tl_thread.tid % 32; }

inline void block_sync() { tl_thread.block->bar.arrive_and_wait(); }

inline unsigned warp_ballot(bool pred) {
  EmuWarp& w = this_warp();
  w.vote[this_lane()] = pred ? 1u : 0u;
  w.bar.arrive_and_wait();
  unsigned m = 0;
  for (int l = 0; l < 32; ++l) m |= w.vote[l] << l;
  w.bar.arrive_and_wait();
  return m;
}

// ---------------------------------------------------------------- cp.async
inline void emu_do_copy(const EmuCopy& c) {
  if (c.valid) {
    std::memcpy(c.dst, c.src, 16);
  } else {
    std::memset(c.dst, 0, 16);
  }
}
inline void cp_async_16(void* smem_dst, const void* gmem_src, bool valid) {
  check_smem(smem_dst, 16, "cp.async destination out of shared memory or misaligned");
  if (valid && reinterpret_cast<std::uintptr_t>(gmem_src) % 16 != 0) emu_fail("cp.async source misaligned");
  const EmuCopy c{smem_dst, gmem_src, valid};
  if (g_eager_copies) {
    emu_do_copy(c);
  } else {
    tl_thread.pending.push_back(c);
  }
}
inline void cp_async_commit() {
  tl_thread.groups.push_back(std::move(tl_thread.pending));
  tl_thread.pending.clear();
}
template <int N>
inline void cp_async_wait() {
  while (static_cast<int>(tl_thread.groups.size()) > N) {
    for (const EmuCopy& c : tl_thread.groups.front()) emu_do_copy(c);
    tl_thread.groups.pop_front();
  }
}

// ---------------------------------------------------------------- ldmatrix
inline void emu_ldsm(uint32_t (&r)[4], const bf16* row_ptr, bool trans) {
  check_smem(row_ptr, 16, "ldmatrix row address out of shared memory or misaligned");
  EmuWarp& w = this_warp();
  const int lane = this_lane(), g = lane / 4, t = lane % 4;
  w.ptr[lane] = row_ptr;
  w.bar.arrive_and_wait();
  for (int m = 0; m < 4; ++m) {
    auto elem = [&](int row, int col) { return static_cast<const bf16*>(w.ptr[8 * m + row])[col].bits; };
    const uint16_t lo = trans ? elem(2 * t, g) : elem(g, 2 * t);
    const uint16_t hi = trans ? elem(2 * t + 1, g) : elem(g, 2 * t + 1);
    r[m] = static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
  }
  w.bar.arrive_and_wait();
}
inline void ldsm_x4(uint32_t (&r)[4], const bf16* row_ptr) { emu_ldsm(r, row_ptr, false); }
inline void ldsm_x4_trans(uint32_t (&r)[4], const bf16* row_ptr) { emu_ldsm(r, row_ptr, true); }

// ---------------------------------------------------------------- mma.sync m16n8k16 bf16 → fp32
inline void mma_bf16_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  EmuWarp& w = this_warp();
  const int lane = this_lane(), g = lane / 4, t = lane % 4;
  for (int i = 0; i < 4; ++i) w.a[lane][i] = a[i];
  w.b[lane][0] = b0;
  w.b[lane][1] = b1;
  w.bar.arrive_and_wait();
  auto half = [](uint32_t x, int k) {
    return bf16_bits_to_float(static_cast<uint16_t>(k % 2 ? x >> 16 : x & 0xffffu));
  };
  // A[row][k]: lane (row % 8)·4 + (k % 8)/2, register (row ≥ 8) + 2·(k ≥ 8), half k % 2.
  auto A = [&](int row, int k) {
    return half(w.a[(row % 8) * 4 + (k % 8) / 2][(row >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0)], k);
  };
  // B[k][n]: lane n·4 + (k % 8)/2, register (k ≥ 8), half k % 2.
  auto B = [&](int k, int n) { return half(w.b[n * 4 + (k % 8) / 2][k >= 8 ? 1 : 0], k); };
  float out[4];
  for (int e = 0; e < 4; ++e) {
    const int row = g + 8 * (e / 2), col = 2 * t + (e % 2);
    double sum = 0.0;
    for (int k = 0; k < 16; ++k) sum += static_cast<double>(A(row, k)) * B(k, col);
    out[e] = static_cast<float>(static_cast<double>(c[e]) + sum);
  }
  w.bar.arrive_and_wait();
  for (int e = 0; e < 4; ++e) c[e] = out[e];
}

// ---------------------------------------------------------------- launching
// Runs body(smem, tid, block) for every block of the grid, one block at a time, `threads` std::threads per block.
template <typename Body>
void emu_launch(int64_t grid, int threads, size_t smem_bytes, Body body) {
  for (int64_t blk = 0; blk < grid; ++blk) {
    EmuBlock block(threads);
    std::vector<char> storage(smem_bytes + 256);
    char* smem = storage.data();
    while (reinterpret_cast<std::uintptr_t>(smem) % 128 != 0) ++smem;
    std::memset(smem, 0xff, smem_bytes);  // NaN poison (fp32 and bf16)
    block.smem_lo = smem;
    block.smem_hi = smem + smem_bytes;
    std::vector<std::thread> workers;
    workers.reserve(threads);
    for (int tid = 0; tid < threads; ++tid) {
      workers.emplace_back([&, tid] {
        tl_thread.block = &block;
        tl_thread.tid = tid;
        tl_thread.pending.clear();
        tl_thread.groups.clear();
        body(smem, tid, blk);
        if (!tl_thread.pending.empty() || !tl_thread.groups.empty()) emu_fail("cp.async copies never waited for");
      });
    }
    for (auto& w : workers) w.join();
  }
}

}  // namespace supra::cuda::dev
