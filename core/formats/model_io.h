// Model folders and files in and out: reading Hugging Face folders (config.json + safetensors, single or sharded),
// llama2.c legacy `.bin` files (e.g. stories260K) and OpenLM folders into a StoredModel (HF tensor names and
// layout), building the CausalLM, and writing a supra model folder.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <string>

#include "core/formats/model_config_io.h"
#include "core/formats/stored_model.h"
#include "core/model/causal_lm.h"
#include "core/model/config.h"

namespace supra {

// llama2.c legacy export: 7 int32 header fields, then fp32 weights. wq/wk rows are permuted from llama2.c's
// interleaved RoPE pairs to HF's rotate-half layout. Throws supra::Error on a malformed or truncated file.
StoredModel read_llama2c(const std::filesystem::path& path);

// An HF folder (config.json + model.safetensors[.index.json]; also a supra export), an OpenLM reference folder
// (model_type "openlm", core/formats/openlm.h) or a llama2.c `.bin` file.
StoredModel read_stored_model(const std::filesystem::path& path);

// read_stored_model + build the model + load the weights, in `dtype` (kFloat or kBFloat16) on `device`.
CausalLM load_model(const std::filesystem::path& path, torch::Dtype dtype = torch::kFloat,
                    torch::Device device = torch::kCPU);
CausalLM build_model(const StoredModel& ckpt, const std::string& source, torch::Dtype dtype, torch::Device device);

// Writes a model folder: config.json (HF fields; for SUPRA models model_type "supra" plus the "supra" block),
// model.safetensors (sharded above max_shard_bytes) and the tokenizer/generation files found in `companions_from`
// (if given). Atomic: built in "<out>.tmp-<pid>" and renamed; an existing non-empty `out` is refused.
void save_model_folder(CausalLM& model, const std::filesystem::path& out,
                       const std::filesystem::path& companions_from = {}, uint64_t max_shard_bytes = 5ull << 30);

}  // namespace supra
