// Compile-time dispatch of the CUDA kernels' runtime parameters (like flash-attention's static_switch.h): the one
// place a runtime head dim becomes a template argument, and the one place ElemType becomes an element type. Used by
// every launcher and by the host emulator. Plain C++ macros, e.g.
//   return SUPRA_HEAD_DIM_SWITCH(args.head_dim, kD, [&] { return launch<T, kD>(args, stream); });
#pragma once

// The kernels are instantiated for head dims 64 and 128 (chunked_supports_head_dim); callers validate first, any
// other value takes the 128 branch.
#define SUPRA_HEAD_DIM_SWITCH(HEAD_DIM, CONST_NAME, ...) \
  [&] {                                                  \
    if ((HEAD_DIM) == 64) {                              \
      constexpr static int CONST_NAME = 64;              \
      return __VA_ARGS__();                              \
    } else {                                             \
      constexpr static int CONST_NAME = 128;             \
      return __VA_ARGS__();                              \
    }                                                    \
  }()

// ElemType::kFloat32 → float, otherwise (kBFloat16) → dev::bf16 (device_common.cuh).
#define SUPRA_ELEM_TYPE_SWITCH(ELEM_TYPE, TYPE_NAME, ...)   \
  [&] {                                                     \
    if ((ELEM_TYPE) == ::supra::cuda::ElemType::kFloat32) { \
      using TYPE_NAME = float;                              \
      return __VA_ARGS__();                                 \
    } else {                                                \
      using TYPE_NAME = ::supra::cuda::dev::bf16;           \
      return __VA_ARGS__();                                 \
    }                                                       \
  }()
