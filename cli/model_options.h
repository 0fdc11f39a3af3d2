// Shared by the commands that run a model (generate, eval): the --device / --dtype choice and the model loading
// that goes with it, the prompt's BOS and the stop ids.
#pragma once
#include <torch/torch.h>

#include <string>

#include "core/error.h"

namespace supra::cli {

// "auto" (CUDA when available) | "cpu" | "cuda"; "cuda" without a GPU is an error.
inline torch::Device parse_device(const std::string& name) {
  if (name == "cuda" && !torch::cuda::is_available()) throw Error("--device", "cuda requested but no CUDA GPU is available");
  if (name == "cuda" || (name == "auto" && torch::cuda::is_available())) return torch::Device(torch::kCUDA);
  return torch::Device(torch::kCPU);
}

}  // namespace supra::cli
