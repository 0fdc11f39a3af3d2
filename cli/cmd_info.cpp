// `supra info --model PATH`: what a checkpoint is — architecture, sizes, parameter count, dtype, memory estimate.
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <iostream>

#include "cli/commands.h"
#include "core/formats/model_io.h"

namespace supra::cli {
namespace {

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.2f %s", b, units[u]);
  return buf;
}

void run_info(const std::string& path, int64_t context) {
  StoredModel ck = read_stored_model(path);
  const ModelConfig& c = ck.config;
  const int64_t params = c.parameter_count();
  const double kv_per_token = 2.0 * c.num_hidden_layers * c.kv_dim();  // elements, one sequence
  std::cout << "model:             " << path << " (" << ck.format << ")\n"
            << "architecture:      " << c.architecture << " (" << c.model_type << ")\n"
            << "layers:            " << c.num_hidden_layers << "\n"
            << "hidden size:       " << c.hidden_size << "\n"
            << "heads / kv heads:  " << c.num_attention_heads << " / " << c.num_key_value_heads
            << (c.num_attention_heads != c.num_key_value_heads ? " (GQA)" : "") << "\n"
            << "head dim:          " << c.head_dim << "\n"
            << "intermediate size: " << c.intermediate_size << "\n"
            << "vocab size:        " << c.vocab_size << "\n"
            << "rope theta:        " << c.rope_theta << " (scaling: "
            << (c.rope_scaling.kind == RopeScaling::Kind::kDefault  ? "none"
                : c.rope_scaling.kind == RopeScaling::Kind::kLinear ? "linear"
                                                                    : "llama3")
            << ")\n"
            << "tied embeddings:   " << (c.tie_word_embeddings ? "yes" : "no") << "\n";
  if (c.sliding_window) std::cout << "sliding window:    " << *c.sliding_window << "\n";
  std::cout << "parameters:        " << params << " (" << params / 1e6 << " M)\n"
            << "stored dtype:      " << ck.stored_dtype << "\n"
            << "weights in memory: " << human_bytes(params * 4.0) << " (f32), " << human_bytes(params * 2.0)
            << " (bf16)\n";
  if (c.supra) {
    const double state = 4.0 * c.num_hidden_layers * c.num_attention_heads * c.head_dim * c.head_dim;
    std::cout << "attention:         SUPRA linear attention (decay " << to_string(c.supra->decay) << ", chunk "
              << c.supra->chunk_size << (c.supra->qk_norm ? ", qk-norm" : "") << ")\n"
              << "recurrent state:   " << human_bytes(state) << " per sequence (fp32), independent of length\n";
  } else {
    std::cout << "KV cache (bf16):   " << human_bytes(kv_per_token * 2) << " per token per sequence, "
              << human_bytes(kv_per_token * 2 * context) << " at " << context << " tokens\n";
  }
}

}  // namespace

void add_info(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Describe a model: architecture, parameter count, dtype, memory estimate");
  auto path = std::make_shared<std::string>();
  auto context = std::make_shared<int64_t>(4096);
  cmd->add_option("--model", *path, "HF model folder, supra checkpoint folder or llama2.c .bin file")->required();
  cmd->add_option("--context", *context, "context length for the cache estimate")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->callback([path, context] { run_info(*path, *context); });
}

}  // namespace supra::cli
