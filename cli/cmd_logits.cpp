// `supra logits --model PATH --tokens 1,2,3 --out FILE.safetensors`: runs the model on token ids and writes the
// logits [T, vocab] as float32 tensor "logits" — the cross-check against other implementations.
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "core/base/error.h"
#include "core/formats/model_io.h"
#include "core/formats/safetensors.h"

namespace supra::cli {
namespace {

void run_logits(const std::string& model_path, const std::string& tokens, const std::string& out,
                const std::string& dtype) {
  auto ids = parse_token_ids(tokens, "--tokens");
  StoredModel ck = read_stored_model(model_path);
  for (int64_t id : ids)
    if (id >= ck.config.vocab_size)
      throw Error("--tokens", "token id " + std::to_string(id) + " is outside the vocabulary of " + model_path +
                                  " (size " + std::to_string(ck.config.vocab_size) + ")");
  CausalLM model = build_model(ck, model_path, parse_dtype(dtype), torch::kCPU);
  torch::NoGradGuard no_grad;
  auto input = torch::tensor(ids, torch::kLong).unsqueeze(0);
  auto logits = model->forward(input).squeeze(0).to(torch::kFloat).contiguous();
  save_safetensors(out, {{"logits", logits}}, {{"model", model_path}, {"dtype", dtype}});
  spdlog::info("wrote logits {}x{} to {}", logits.size(0), logits.size(1), out);
}

}  // namespace

void add_logits(CLI::App& app) {
  auto* cmd = app.add_subcommand("logits", "Run a model on token ids and write its logits [T, vocab] (float32)");
  struct Args {
    std::string model, tokens, out, dtype = "f32";
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--model", a->model, "HF model folder, supra checkpoint folder or llama2.c .bin file")->required();
  cmd->add_option("--tokens", a->tokens, "comma-separated token ids, e.g. 1,2,3")->required();
  cmd->add_option("--out", a->out, "output .safetensors file (tensor 'logits')")->required();
  cmd->add_option("--dtype", a->dtype, "compute dtype")->check(CLI::IsMember({"f32", "bf16"}))->capture_default_str();
  cmd->callback([a] { run_logits(a->model, a->tokens, a->out, a->dtype); });
}

}  // namespace supra::cli
