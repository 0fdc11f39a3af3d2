// StoredModel: a model as read from disk (HF folder, llama2.c .bin, OpenLM folder), before any module exists — its
// parsed config and its tensors under Hugging Face names. Not to be confused with a training checkpoint
// (training/checkpoint.h) or activation checkpointing (training/activation_checkpoint.h).
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>

#include "core/model/config.h"

namespace supra {

struct StoredModel {
  ModelConfig config;
  std::map<std::string, torch::Tensor> tensors;  // HF names, CPU
  std::string format;                            // "hf" | "llama2c" | "openlm"
  std::string stored_dtype;                      // dtype of the stored weights, e.g. "float32", "bfloat16"
};

}  // namespace supra
