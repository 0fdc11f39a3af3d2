// `supra generate --model DIR --prompt TEXT …`: text in, text out, streamed. A chunked prefill of the prompts hands
// its state to the recurrent decoder (SUPRA models: constant-size state; transformers: K/V cache, optionally bounded
// by --kv-policy window|tova --kv-size K). Batches prompts of different lengths (--prompts-file); reports tokens/s
// and the state's bytes on stderr. Models without a tokenizer (e.g. llama2.c .bin) take token ids (--ids).
#include <spdlog/spdlog.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "core/base/error.h"
#include "core/formats/model_io.h"
#include "core/model/decode_floor.h"
#include "core/model/generate.h"
#include "core/tokenizer/tokenizer.h"

namespace supra::cli {
namespace {

struct GenerateArgs {
  std::string model, prompt, prompts_file, ids, tokenizer, device = "auto", dtype = "f32", kv_policy = "full";
  int64_t max_new_tokens = 128, top_k = 0, kv_size = 0, batch_size = 16;
  double temperature = 1.0, top_p = 1.0, repetition_penalty = 1.0;
  uint64_t seed = 0;
  bool no_bos = false, show_prompt = false, floor = false, cuda_graph = false;
  std::string decode_path = "fast";
};

void run_generate(const GenerateArgs& a) {
  const int given = !a.prompt.empty() + !a.prompts_file.empty() + !a.ids.empty();
  if (given != 1) throw Error("supra generate", "give exactly one of --prompt, --prompts-file, --ids");
  const torch::Device device = parse_device(a.device);
  CausalLM model = load_model(a.model, parse_dtype(a.dtype), device);
  model->eval();
  const auto& cfg = model->config();

  std::unique_ptr<Tokenizer> tok;
  std::vector<std::vector<int64_t>> prompts;
  std::vector<std::string> texts;
  if (!a.ids.empty()) {
    std::string ids_text = a.ids;
    if (ids_text[0] == '@') {  // @FILE: the ids are in a file (long prompts)
      std::ifstream in(ids_text.substr(1));
      if (!in) throw Error(ids_text.substr(1), "cannot open the ids file");
      ids_text.assign(std::istreambuf_iterator<char>(in), {});
      while (!ids_text.empty() && std::isspace(static_cast<unsigned char>(ids_text.back()))) ids_text.pop_back();
    }
    std::stringstream ss(ids_text);  // prompts separated by ';'
    std::string one;
    while (std::getline(ss, one, ';')) prompts.push_back(parse_token_ids(one, "--ids"));
  } else {
    tok = load_tokenizer(tokenizer_folder(a.tokenizer, a.model));
    if (!a.prompt.empty()) {
      texts.push_back(a.prompt);
    } else {
      std::ifstream in(a.prompts_file);
      if (!in) throw Error(a.prompts_file, "cannot open the prompts file");
      for (std::string line; std::getline(in, line);)
        if (!line.empty()) texts.push_back(line);
      if (texts.empty()) throw Error(a.prompts_file, "no prompts (one per line)");
    }
    for (const auto& t : texts) prompts.push_back(tok->encode(t));
  }
  std::optional<int64_t> bos = cfg.bos_token_id;
  if (!bos && tok) bos = tok->bos_id();
  for (auto& p : prompts) {
    if (!a.no_bos && bos) p.insert(p.begin(), *bos);
    if (p.empty()) throw Error("supra generate", "an empty prompt (and no BOS token to start from)");
    for (int64_t id : p)
      if (id >= cfg.vocab_size)
        throw Error("supra generate", "token id " + std::to_string(id) + " is outside the vocabulary of " + a.model);
  }

  GenerateOptions o;
  o.max_new_tokens = a.max_new_tokens;
  o.sampling = {a.temperature, a.top_k, a.top_p, a.repetition_penalty};
  o.seed = a.seed;
  o.stop_ids = cfg.eos_token_ids;
  if (tok && tok->eos_id() && std::find(o.stop_ids.begin(), o.stop_ids.end(), *tok->eos_id()) == o.stop_ids.end())
    o.stop_ids.push_back(*tok->eos_id());
  o.kv = {parse_kv_policy(a.kv_policy), a.kv_size};
  o.reference_decode = a.decode_path == "reference";
  o.cuda_graph = a.cuda_graph;
  if (o.kv.bounded() && cfg.supra)
    spdlog::warn("--kv-policy {} ignored: {} is a SUPRA model (constant-size recurrent state)", a.kv_policy, a.model);
  if (o.kv.bounded() && o.kv.size < 1)
    throw Error("--kv-size", "--kv-policy " + a.kv_policy + " needs --kv-size K >= 1");

  const bool stream = prompts.size() == 1;
  std::unique_ptr<TokenStreamer> streamer;
  if (stream && tok) streamer = std::make_unique<TokenStreamer>(*tok);
  if (stream && a.show_prompt && !texts.empty()) std::cout << texts[0] << std::flush;
  auto on_token = [&](int64_t, int64_t id) {
    if (!stream) return;
    if (streamer)
      std::cout << streamer->push(id) << std::flush;
    else
      std::cout << id << ' ' << std::flush;
  };
  // The weight-read floor is measured before and after generating (interleaved with it), at the first batch's size.
  const int64_t floor_batch = std::min<int64_t>(static_cast<int64_t>(prompts.size()), a.batch_size);
  std::vector<double> floor_sweeps;
  DecodeFloor floor;
  auto measure_floor = [&] {
    floor = measure_decode_floor(model, floor_batch, 5);
    floor_sweeps.insert(floor_sweeps.end(), floor.sweep_seconds.begin(), floor.sweep_seconds.end());
  };
  if (a.floor) measure_floor();
  GenerateStats total;
  for (size_t first = 0; first < prompts.size(); first += static_cast<size_t>(a.batch_size)) {
    const size_t n = std::min(prompts.size() - first, static_cast<size_t>(a.batch_size));
    std::vector<std::vector<int64_t>> batch(prompts.begin() + first, prompts.begin() + first + n);
    auto r = generate(model, batch, o, on_token);
    if (stream) {
      if (streamer) std::cout << streamer->finish();
      std::cout << std::endl;
    } else {
      for (size_t i = 0; i < n; ++i) {
        std::cout << "### " << (first + i + 1) << "\n";
        if (tok)
          std::cout << texts[first + i] << tok->decode(r.tokens[i]) << "\n";
        else
          for (int64_t id : r.tokens[i]) std::cout << id << ' ';
        std::cout << std::endl;
      }
    }
    total.prompt_tokens += r.stats.prompt_tokens;
    total.new_tokens += r.stats.new_tokens;
    total.prefill_seconds += r.stats.prefill_seconds;
    total.decode_seconds += r.stats.decode_seconds;
    total.step_seconds.insert(total.step_seconds.end(), r.stats.step_seconds.begin(), r.stats.step_seconds.end());
    total.state_bytes = std::max(total.state_bytes, r.stats.state_bytes / static_cast<int64_t>(n));
  }
  spdlog::info("prefill: {} tokens in {:.3f} s ({:.0f} tokens/s); decode: {} tokens in {:.3f} s ({:.1f} tokens/s)",
               total.prompt_tokens, total.prefill_seconds, total.prompt_tokens / std::max(total.prefill_seconds, 1e-9),
               total.new_tokens, total.decode_seconds, total.new_tokens / std::max(total.decode_seconds, 1e-9));
  if (!total.step_seconds.empty())
    spdlog::info("decode step ({} path): median {:.3f} ms, min {:.3f} ms over {} steps", a.decode_path,
                 1e3 * median(total.step_seconds),
                 1e3 * *std::min_element(total.step_seconds.begin(), total.step_seconds.end()),
                 total.step_seconds.size());
  if (a.floor) {
    measure_floor();
    const double fmin = *std::min_element(floor_sweeps.begin(), floor_sweeps.end());
    spdlog::info(
        "weight-read floor: min {:.3f} ms, median {:.3f} ms per step (GEMV over {} matrices, {:.1f} MB, "
        "batch {}, {} sweeps){}",
        1e3 * fmin, 1e3 * median(floor_sweeps), floor.matrices, floor.bytes / 1e6, floor_batch, floor_sweeps.size(),
        total.step_seconds.empty() ? std::string()
                                   : fmt::format("; median decode step / median floor = {:.3f}",
                                                 median(total.step_seconds) / median(floor_sweeps)));
  }
  spdlog::info("state per sequence at the end: {} bytes ({}{})", total.state_bytes,
               cfg.supra ? "SUPRA recurrent state, constant" : "K/V cache, policy " + kv_policy_name(o.kv.policy),
               o.kv.bounded() && !cfg.supra ? " K=" + std::to_string(o.kv.size) : "");
}

}  // namespace

void add_generate(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "Generate text recurrently (SUPRA state or transformer K/V cache)");
  auto a = std::make_shared<GenerateArgs>();
  cmd->add_option("--model", a->model, "HF / supra / exported model folder, or llama2.c .bin")->required();
  cmd->add_option("--prompt", a->prompt, "prompt text (streamed output)");
  cmd->add_option("--prompts-file", a->prompts_file, "one prompt per line, generated in batches");
  cmd->add_option("--ids", a->ids,
                  "prompt token ids instead of text: 1,2,3 (several prompts: 1,2;1,5,6; @FILE reads them from FILE)");
  cmd->add_option("--tokenizer", a->tokenizer, "folder with tokenizer.json or tokenizer.model (default: the model's)");
  cmd->add_option("--max-new-tokens", a->max_new_tokens)->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--temperature", a->temperature, "0: greedy")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-k", a->top_k, "0: off")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", a->top_p, "nucleus mass, 1: off")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--repetition-penalty", a->repetition_penalty)->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--seed", a->seed)->capture_default_str();
  cmd->add_option("--batch-size", a->batch_size, "prompts generated together")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--kv-policy", a->kv_policy, "transformers: full | window | tova")
      ->check(CLI::IsMember({"full", "window", "tova"}))
      ->capture_default_str();
  cmd->add_option("--kv-size", a->kv_size, "K: cached tokens per layer for window/tova")->check(CLI::NonNegativeNumber);
  cmd->add_option("--device", a->device)->check(CLI::IsMember({"auto", "cpu", "cuda"}))->capture_default_str();
  cmd->add_option("--dtype", a->dtype)->check(CLI::IsMember({"f32", "bf16"}))->capture_default_str();
  cmd->add_flag("--no-bos", a->no_bos, "do not put BOS before each prompt");
  cmd->add_flag("--echo", a->show_prompt, "print the prompt before the streamed continuation");
  cmd->add_option("--decode-path", a->decode_path,
                  "fast (fused per-layer step, docs/benchmarks.md) | reference (the model's forward on one token)")
      ->check(CLI::IsMember({"fast", "reference"}))
      ->capture_default_str();
  cmd->add_flag("--cuda-graph", a->cuda_graph,
                "fast path on CUDA: capture the decode step once in a CUDA graph and replay it (SUPRA models; off by "
                "default until measured, docs/benchmarks.md)");
  cmd->add_flag("--floor", a->floor,
                "also measure the weight-read floor (a GEMV over every matrix) before and after, and report the "
                "decode step's ratio to it");
  cmd->callback([a] { run_generate(*a); });
}

}  // namespace supra::cli
