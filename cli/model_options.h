// Shared by the commands that run a model (logits, generate, eval): the --device choice, token ids given on the
// command line, and where a model's tokenizer is looked for.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "core/base/error.h"

namespace supra::cli {

// "auto" (CUDA when available) | "cpu" | "cuda"; "cuda" without a GPU is an error.
inline torch::Device parse_device(const std::string& name) {
  if (name == "cuda" && !torch::cuda::is_available())
    throw Error("--device", "cuda requested but no CUDA GPU is available");
  if (name == "cuda" || (name == "auto" && torch::cuda::is_available())) return torch::Device(torch::kCUDA);
  return torch::Device(torch::kCPU);
}

// "1,2,3" -> ids; anything that is not a non-negative integer is a supra::Error naming `what` (the option).
inline std::vector<int64_t> parse_token_ids(const std::string& text, const std::string& what) {
  std::vector<int64_t> ids;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    int64_t v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size() || v < 0) throw Error(what, "'" + item + "' is not a token id");
    ids.push_back(v);
  }
  if (ids.empty()) throw Error(what, "no token ids given");
  return ids;
}

// The folder a model's tokenizer is looked for in: --tokenizer if given, else the model folder (or the folder of a
// model file).
inline std::string tokenizer_folder(const std::string& tokenizer_option, const std::string& model) {
  if (!tokenizer_option.empty()) return tokenizer_option;
  const std::filesystem::path p(model);
  return std::filesystem::is_directory(p) ? p.string() : p.parent_path().string();
}

}  // namespace supra::cli
