// The small building blocks of a Llama/Mistral block as torch::nn::Modules whose parameter names match
// Hugging Face's: Dense (bias-free linear), Embedding, RMSNorm, SwiGLU MLP. Parameters are allocated
// uninitialised — they are always filled from a checkpoint (or initialised explicitly by whoever creates them).
#pragma once
#include <torch/torch.h>

namespace supra {

// y = x Wᵀ (+ b); weight [out, in] like nn.Linear.
class DenseImpl : public torch::nn::Module {
 public:
  DenseImpl(int64_t in_features, int64_t out_features, bool bias = false);
  torch::Tensor forward(const torch::Tensor& x);
  // PyTorch nn.Linear's default initialisation: U(±1/√in) for weight and bias, from `gen`.
  void reset_like_torch_linear(torch::Generator gen);
  torch::Tensor weight, bias;
};
TORCH_MODULE(Dense);

class EmbeddingImpl : public torch::nn::Module {
 public:
  EmbeddingImpl(int64_t vocab, int64_t dim);
  torch::Tensor forward(const torch::Tensor& ids);
  torch::Tensor weight;
};
TORCH_MODULE(Embedding);

// HF LlamaRMSNorm: normalise in fp32, cast back to the input dtype, then scale by weight.
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

// down(silu(gate(x)) * up(x)).
class MLPImpl : public torch::nn::Module {
 public:
  MLPImpl(int64_t hidden, int64_t intermediate);
  torch::Tensor forward(const torch::Tensor& x);
  Dense gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(MLP);

}  // namespace supra
