// `supra export --checkpoint DIR --out DIR [--dtype auto|f32|bf16] [--max-shard-size 5GB] [--force]`: writes a
// SUPRA model as a Hugging Face folder (core/formats/hf_export.h) that transformers loads with trust_remote_code=True.
// DIR: a converted folder (`supra convert`), a training checkpoint folder (checkpoints/step_N), a training run or
// its checkpoints/ folder (the checkpoint `latest` points to), or an OpenLM reference folder.
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "cli/commands.h"
#include "core/base/error.h"
#include "core/base/files.h"
#include "core/formats/hf_export.h"
#include "training/checkpoint.h"

namespace supra::cli {
namespace {
namespace fs = std::filesystem;

struct ExportArgs {
  std::string checkpoint, out, dtype = "auto", max_shard_size = "5GB";
  bool force = false;
};

// Where the base model's tokenizer may be: the checkpoint itself, then (training checkpoints) the model the run
// started from and its teacher, as recorded in trainer_state.json (relative paths: from the working folder, then the
// run folder), following a recipe's stages back to the pretrained model.
std::vector<fs::path> tokenizer_sources(const fs::path& ckpt, int depth = 0) {
  std::vector<fs::path> sources{ckpt};
  std::error_code ec;
  const fs::path state = ckpt / "trainer_state.json";
  if (depth > 16 || !fs::is_regular_file(state, ec)) return sources;
  try {
    const auto cfg = nlohmann::json::parse(read_file(state)).at("config");
    const fs::path run = ckpt.parent_path().parent_path();  // <run>/checkpoints/step_N
    for (const char* key : {"model_path", "teacher_path"}) {
      if (!cfg.contains(key) || cfg.at(key).get<std::string>().empty()) continue;
      const fs::path model = cfg.at(key).get<std::string>();
      for (const fs::path& p : {model, run / model}) {
        const fs::path dir = fs::is_regular_file(p, ec) ? p.parent_path() : p;
        if (dir.empty() || !fs::is_directory(dir, ec)) continue;
        const fs::path from = training::resolve_run_checkpoint(dir);
        if (from == dir) {
          sources.push_back(dir);
        } else {
          const auto more = tokenizer_sources(from, depth + 1);  // an earlier stage's checkpoint
          sources.insert(sources.end(), more.begin(), more.end());
        }
      }
    }
  } catch (const std::exception& e) {
    spdlog::warn("{}: cannot read the run's model path ({}); no tokenizer from there", state.string(), e.what());
  }
  return sources;
}

void run_export(const ExportArgs& a) {
  ExportOptions o;
  o.max_shard_bytes = parse_byte_size(a.max_shard_size);
  o.force = a.force;
  if (a.dtype != "auto") o.dtype = parse_dtype(a.dtype);
  std::error_code ec;
  const fs::path out = a.out;
  // Fail before reading weights on what would make the output impossible.
  if (!a.force) refuse_existing_output(out, "pass --force to replace it");
  if (!fs::exists(a.checkpoint, ec)) throw Error(a.checkpoint, "no such file or directory");
  const fs::path ckpt = training::resolve_run_checkpoint(a.checkpoint);
  if (fs::exists(out, ec) && fs::equivalent(out, ckpt, ec))
    throw Error(a.out, "is the checkpoint being exported; choose another output folder");

  StoredModel ck = read_stored_model(ckpt);
  o.tokenizer_sources = tokenizer_sources(ckpt);
  o.generation_config_from = fs::is_directory(ckpt, ec) ? ckpt : fs::path();
  const ExportResult r = export_hf_folder(ck, ckpt.string(), out, o);
  std::string files;
  for (const auto& f : r.files) files += (files.empty() ? "" : ", ") + f;
  spdlog::info("exported {} ({}) -> {}: {:.1f} MB of weights; files: {}", ckpt.string(), ck.format, a.out,
               r.weight_bytes / 1e6, files);
  if (r.tokenizer_from.empty())
    spdlog::warn(
        "no tokenizer files found next to {}: copy the base model's tokenizer into {} to use it with "
        "AutoTokenizer",
        ckpt.string(), a.out);
  else
    spdlog::info("tokenizer files from {}", r.tokenizer_from.string());
}

}  // namespace

void add_export(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "export", "Write a SUPRA model as a Hugging Face folder (AutoModelForCausalLM, trust_remote_code=True)");
  auto a = std::make_shared<ExportArgs>();
  cmd->add_option("--checkpoint", a->checkpoint,
                  "converted folder, training checkpoint (or run folder: its latest checkpoint) or OpenLM folder")
      ->required();
  cmd->add_option("--out", a->out, "output folder (must not exist or be empty, unless --force)")->required();
  cmd->add_option("--dtype", a->dtype, "weight dtype: auto keeps bf16 checkpoints bf16, else f32")
      ->check(CLI::IsMember({"auto", "f32", "bf16"}))
      ->capture_default_str();
  cmd->add_option("--max-shard-size", a->max_shard_size, "largest safetensors shard, e.g. 5GB, 500MB, 2GiB or bytes")
      ->capture_default_str();
  cmd->add_flag("--force", a->force, "replace an existing non-empty output folder (only once the new one is complete)");
  cmd->callback([a] { run_export(*a); });
}

}  // namespace supra::cli
