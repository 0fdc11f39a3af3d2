// Reading pretrained checkpoints into a CausalLM: Hugging Face folders (config.json + safetensors, single or
// sharded) and llama2.c legacy `.bin` files (e.g. stories260K), both mapped to HF tensor names and layout.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <string>

#include "core/causal_lm.h"
#include "core/config.h"

namespace supra {

struct Checkpoint {
  ModelConfig config;
  std::map<std::string, torch::Tensor> tensors;  // HF names, CPU
  std::string format;                            // "hf" | "llama2c"
  std::string stored_dtype;                      // dtype of the stored weights, e.g. "float32", "bfloat16"
};

// llama2.c legacy export: 7 int32 header fields, then fp32 weights. wq/wk rows are permuted from llama2.c's
// interleaved RoPE pairs to HF's rotate-half layout. Throws supra::Error on a malformed or truncated file.
Checkpoint read_llama2c(const std::filesystem::path& path);

// An HF folder (config.json + model.safetensors[.index.json]; also a supra export), an OpenLM reference folder
// (model_type "openlm", core/openlm_import.h) or a llama2.c `.bin` file.
Checkpoint read_checkpoint(const std::filesystem::path& path);

// read_checkpoint + build the model + load the weights, in `dtype` (kFloat or kBFloat16) on `device`.
CausalLM load_model(const std::filesystem::path& path, torch::Dtype dtype = torch::kFloat,
                    torch::Device device = torch::kCPU);
CausalLM build_model(const Checkpoint& ckpt, const std::string& source, torch::Dtype dtype, torch::Device device);

// Writes a model folder: config.json (HF fields; for SUPRA models model_type "supra" plus the "supra" block),
// model.safetensors (sharded above max_shard_bytes) and the tokenizer/generation files found in `companions_from`
// (if given). Atomic: built in "<out>.tmp-<pid>" and renamed; an existing non-empty `out` is refused.
void save_model_folder(CausalLM& model, const std::filesystem::path& out,
                       const std::filesystem::path& companions_from = {}, uint64_t max_shard_bytes = 5ull << 30);

}  // namespace supra
