// Reading PyTorch `torch.save` state dicts (pytorch_model.bin, single or sharded with
// pytorch_model.bin.index.json) through LibTorch's unpickler — for checkpoints published without safetensors, such
// as the OpenLM reference models. Only the zip format of torch.save (PyTorch ≥ 1.6) is readable.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <string>

namespace supra {

// True when `dir` holds pytorch_model.bin or pytorch_model.bin.index.json.
bool has_torch_pickle_weights(const std::filesystem::path& dir);

// All tensors of the folder's pytorch_model.bin file(s), CPU. A top-level {"state_dict": {...}} wrapper is
// unwrapped. Throws supra::Error naming the file on anything that is not a name -> tensor dict.
std::map<std::string, torch::Tensor> load_torch_pickle_dir(const std::filesystem::path& dir);

}  // namespace supra
