// Tiny random Llama/Mistral models for the C++ tests: one config builder with the shape as options, and random
// weights from a seed (drawn in parameter order, so a seed always gives the same model).
#pragma once
#include <torch/torch.h>

#include <optional>
#include <string>

#include "core/model/causal_lm.h"
#include "core/model/config.h"

namespace supra::test {

struct TinyShape {
  bool mistral = false;  // MistralForCausalLM (else LlamaForCausalLM)
  int64_t vocab = 50, hidden = 32, ffn = 48, layers = 2, heads = 4, kv_heads = 2, head_dim = 8;
  std::optional<int64_t> window{};  // Mistral's sliding window
  bool tied = false;
  std::optional<int64_t> bos{}, eos{};
};

inline ModelConfig tiny_config(const TinyShape& s) {
  ModelConfig c;
  c.architecture = s.mistral ? "MistralForCausalLM" : "LlamaForCausalLM";
  c.model_type = s.mistral ? "mistral" : "llama";
  c.vocab_size = s.vocab;
  c.hidden_size = s.hidden;
  c.intermediate_size = s.ffn;
  c.num_hidden_layers = s.layers;
  c.num_attention_heads = s.heads;
  c.num_key_value_heads = s.kv_heads;
  c.head_dim = s.head_dim;
  c.sliding_window = s.window;
  c.tie_word_embeddings = s.tied;
  c.bos_token_id = s.bos;
  if (s.eos) c.eos_token_ids = {*s.eos};
  c.validate("test");
  return c;
}

// Every parameter ~ N(0, std²), drawn after torch::manual_seed(seed); the model in eval mode.
inline CausalLM random_model(const ModelConfig& c, uint64_t seed, double std) {
  torch::manual_seed(seed);
  CausalLM m(c);
  {
    torch::NoGradGuard g;
    for (auto& p : m->parameters()) p.normal_(0, std);
  }
  m->eval();
  return m;
}

}  // namespace supra::test
