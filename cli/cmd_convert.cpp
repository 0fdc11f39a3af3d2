// `supra convert --model HF_DIR --out DIR`: swaps every softmax attention for SUPRA attention, keeps every
// pretrained tensor bit-identical, initialises the new feature maps from --seed, writes a supra checkpoint folder.
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "cli/commands.h"
#include "core/base/error.h"
#include "core/base/files.h"
#include "core/formats/model_io.h"
#include "core/supra/convert.h"

namespace supra::cli {
namespace {

struct ConvertArgs {
  std::string model, out, decay = "reference";
  uint64_t seed = 0;
  bool qk_norm = false;
  int64_t chunk_size = 64;
};

void run_convert(const ConvertArgs& a) {
  namespace fs = std::filesystem;
  // Fail up front, before any work, on what would make the output impossible.
  refuse_existing_output(a.out);
  SupraSettings settings;
  settings.decay = parse_decay(a.decay);
  settings.qk_norm = a.qk_norm;
  settings.chunk_size = a.chunk_size;
  StoredModel ck = read_stored_model(a.model);
  if (ck.config.supra) throw Error(a.model, "is already a SUPRA model");
  CausalLM model = build_model(ck, a.model, torch::kFloat, torch::kCPU);
  const int64_t before = model->parameter_count();
  convert_to_supra(model, settings, a.seed);
  const int64_t after = model->parameter_count();
  // Keep the stored precision of the pretrained weights (bf16 checkpoints stay bf16, losslessly).
  if (ck.stored_dtype == "bfloat16") model->to(torch::kBFloat16);
  save_model_folder(model, a.out, fs::is_directory(a.model) ? fs::path(a.model) : fs::path());
  spdlog::info("converted {} -> {}: {} layers, decay {}, +{} parameters ({} -> {})", a.model, a.out,
               ck.config.num_hidden_layers, a.decay, after - before, before, after);
}

}  // namespace

void add_convert(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("convert", "Convert a pretrained Llama/Mistral model into a SUPRA linear-attention RNN");
  auto a = std::make_shared<ConvertArgs>();
  cmd->add_option("--model", a->model, "HF model folder or llama2.c .bin file")->required();
  cmd->add_option("--out", a->out, "output folder (must not exist, or be empty)")->required();
  cmd->add_option("--seed", a->seed, "seed of the feature-map initialisation")->capture_default_str();
  cmd->add_option("--decay", a->decay, "per-head decay: reference (ALiBi slopes), retnet, none")
      ->check(CLI::IsMember({"reference", "retnet", "none"}))
      ->capture_default_str();
  cmd->add_flag("--qk-norm", a->qk_norm, "LayerNorm (no affine) on q and k before the feature maps");
  cmd->add_option("--chunk-size", a->chunk_size, "chunk length of the parallel form")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->callback([a] { run_convert(*a); });
}

}  // namespace supra::cli
