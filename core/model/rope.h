// Rotary position embeddings exactly as Hugging Face Llama/Mistral compute them (rotate-half convention,
// fp32 frequency tables, default / linear / llama3 frequency scaling).
#pragma once
#include <torch/torch.h>

#include "core/model/config.h"

namespace supra {

// fp32 inverse frequencies [head_dim/2], with the config's scaling applied.
torch::Tensor rope_inv_freq(int64_t head_dim, double theta, const RopeScaling& scaling);

// cos and sin tables [B, T, head_dim] (fp32) for integer positions [B, T].
struct RopeTables {
  torch::Tensor cos;
  torch::Tensor sin;
};
RopeTables rope_tables(const torch::Tensor& inv_freq, const torch::Tensor& positions);

// x [B, H, T, d] -> x·cos + rotate_half(x)·sin, tables cast to x's dtype (as HF does).
torch::Tensor apply_rope(const torch::Tensor& x, const RopeTables& rope);

}  // namespace supra
