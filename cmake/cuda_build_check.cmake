# supra_cuda_build_check: the sources with branches that only a CUDA LibTorch compiles (#if SUPRA_WITH_CUDA /
# SUPRA_HAVE_NCCL: the NCCL communicator, the CUDA op registration + autograd glue, the trainer's CUDA branches, the
# decoder's CUDA graph, the CUDA GTests) and the CUDA kernels, compiled to object files as a CUDA build compiles them. Not part of `all`:
# scripts/tools/cuda_build_check.sh configures a build folder against the CUDA torch wheel on CPU-only CI machines
# (-DSUPRA_CUDA_BUILD_CHECK=ON) and builds only this target, so that this code cannot rot without a GPU.
option(SUPRA_CUDA_BUILD_CHECK "Require everything the CUDA build check needs (CUDA LibTorch, nvcc, nccl.h)" OFF)
if(SUPRA_CUDA_BUILD_CHECK)
  if(NOT SUPRA_WITH_CUDA)
    message(FATAL_ERROR "SUPRA_CUDA_BUILD_CHECK: LibTorch at ${_torch_root} is not a CUDA build (no lib/libtorch_cuda.so)")
  endif()
  if(NOT SUPRA_NCCL_INCLUDE)
    message(FATAL_ERROR "SUPRA_CUDA_BUILD_CHECK: nccl.h not found (set NCCL_INCLUDE_DIR)")
  endif()
endif()

if(SUPRA_WITH_CUDA)
  set(_check_sources ${CMAKE_SOURCE_DIR}/kernels/cuda/linear_attention_cuda.cpp ${CMAKE_SOURCE_DIR}/training/trainer.cpp
                     ${CMAKE_SOURCE_DIR}/core/model/decoder.cpp ${SUPRA_CUDA_SOURCES})
  if(SUPRA_NCCL_INCLUDE)
    list(APPEND _check_sources ${CMAKE_SOURCE_DIR}/training/communicator.cpp)
  endif()
  if(SUPRA_BUILD_TESTS)
    list(APPEND _check_sources ${CMAKE_SOURCE_DIR}/tests/cpp/kernels/test_cuda_kernels.cpp)
  endif()
  add_library(supra_cuda_build_check OBJECT EXCLUDE_FROM_ALL ${_check_sources})
  target_include_directories(supra_cuda_build_check PRIVATE ${CMAKE_SOURCE_DIR})
  if(SUPRA_NCCL_INCLUDE)
    target_include_directories(supra_cuda_build_check PRIVATE "${SUPRA_NCCL_INCLUDE}" ${SUPRA_CUDA_LIB_INCLUDES})
    target_compile_definitions(supra_cuda_build_check PRIVATE SUPRA_HAVE_NCCL=1)
  endif()
  target_compile_definitions(supra_cuda_build_check PRIVATE SUPRA_WITH_CUDA=1 SUPRA_SOURCE_DIR="${CMAKE_SOURCE_DIR}"
                                                            SUPRA_SHARED_DIR="${SUPRA_SHARED_DIR}")
  # The usage requirements of the real targets (headers of torch, CUDA, spdlog/fmt, the tokenizers, GoogleTest); the
  # Ninja generator does not wait for their link steps before compiling these objects.
  target_link_libraries(supra_cuda_build_check PRIVATE supra_deps supra_tokenizer ${TORCH_LIBRARIES})
  if(SUPRA_BUILD_TESTS)  # GoogleTest's headers (its targets are local to tests/)
    find_path(SUPRA_GTEST_INCLUDE gtest/gtest.h HINTS "${SUPRA_DEPS_DIR}/googletest/googletest/include")
    target_include_directories(supra_cuda_build_check PRIVATE "${SUPRA_GTEST_INCLUDE}")
  endif()
  target_compile_options(supra_cuda_build_check PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter>
                                                        $<$<COMPILE_LANGUAGE:CUDA>:-Werror=all-warnings>)
endif()
