// `supra eval --model DIR --tokens SHARD_DIR` (perplexity, bits per token) and `supra eval --model DIR --task
// FILE.jsonl` (multiple-choice acc / acc_norm): the same command for a transformer, a SUPRA model and a transformer
// whose K/V cache is bounded (--kv-policy window|tova --kv-size K). Prints one result line per evaluation and
// writes them as JSON with --json.
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "core/base/error.h"
#include "core/base/files.h"
#include "core/formats/model_io.h"
#include "core/tokenizer/tokenizer.h"
#include "eval/evaluate.h"

namespace supra::cli {
namespace {

using namespace supra::eval;

struct EvalArgs {
  std::string model, tokens, text, tokenizer, json, device = "auto", dtype = "f32", kv_policy = "full";
  std::vector<std::string> tasks;
  int64_t seq_len = 1024, batch_size = 4, max_tokens = 0, kv_size = 0;
  uint64_t first_doc = 0, max_docs = 0;
};

void run_eval(const EvalArgs& a) {
  if (a.tokens.empty() && a.tasks.empty() && a.text.empty())
    throw Error("supra eval", "give --tokens SHARD_DIR, --text FILE.jsonl and/or --task FILE.jsonl");
  const torch::Device device = parse_device(a.device);
  CausalLM model = load_model(a.model, parse_dtype(a.dtype), device);
  model->eval();
  const auto& cfg = model->config();
  const KvCacheOptions kv{parse_kv_policy(a.kv_policy), a.kv_size};
  if (kv.bounded() && kv.size < 1) throw Error("--kv-size", "--kv-policy " + a.kv_policy + " needs --kv-size K >= 1");
  if (kv.bounded() && cfg.supra)
    spdlog::warn("--kv-policy {} ignored: {} is a SUPRA model (constant-size recurrent state)", a.kv_policy, a.model);
  const std::string kind =
      cfg.supra ? "supra"
                : (kv.bounded() ? kv_policy_name(kv.policy) + " K=" + std::to_string(kv.size) : "transformer");
  nlohmann::json out = {{"model", a.model}, {"kind", kind}, {"dtype", a.dtype}, {"device", device.str()}};
  auto t0 = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };

  if (!a.tokens.empty()) {
    data::ShardedTokens data(a.tokens);
    if (data.vocab_size() > cfg.vocab_size)
      throw Error(a.tokens, "token vocabulary " + std::to_string(data.vocab_size()) + " is larger than the model's (" +
                                std::to_string(cfg.vocab_size) + ")");
    PerplexityOptions o;
    o.seq_len = a.seq_len, o.batch_size = a.batch_size, o.first_doc = a.first_doc, o.max_docs = a.max_docs;
    o.max_tokens = a.max_tokens, o.kv = kv;
    if (a.first_doc >= data.num_docs())
      throw Error("--first-doc", std::to_string(a.first_doc) + " is past the last document of " + a.tokens + " (" +
                                     std::to_string(data.num_docs()) + " documents)");
    auto r = evaluate_perplexity(model, data, o);
    if (r.tokens == 0)
      throw Error(a.tokens, "the selected documents have no token to predict (each needs at least 2 tokens)");
    std::cout << fmt::format("{}: {} ({}) on {}: {} tokens in {} docs: nll {:.4f}  ppl {:.3f}  bits/token {:.4f}\n",
                             "perplexity", a.model, kind, a.tokens, r.tokens, r.docs, r.nll(), r.perplexity(),
                             r.bits_per_token());
    out["perplexity"] = {{"tokens_dir", a.tokens}, {"tokens", r.tokens},    {"docs", r.docs},
                         {"nll", r.nll()},         {"ppl", r.perplexity()}, {"bits_per_token", r.bits_per_token()},
                         {"seq_len", a.seq_len},   {"seconds", seconds()}};
  }
  std::unique_ptr<Tokenizer> tok;
  if (!a.tasks.empty() || !a.text.empty()) {
    try {
      tok = load_tokenizer(tokenizer_folder(a.tokenizer, a.model));
    } catch (const Error& e) {
      if (!a.tokenizer.empty() || !a.text.empty()) throw;
      spdlog::debug("no tokenizer ({}): only token-id tasks can run", e.what());
    }
  }
  if (!a.text.empty()) {
    const auto docs = read_text_documents(a.text);
    auto r = evaluate_rolling(model, *tok, docs, a.seq_len, a.batch_size, kv);
    std::cout << fmt::format(
        "text perplexity: {} ({}) on {}: {} docs, {} tokens, {} words, {} bytes: word ppl {:.4f}  byte ppl {:.4f}  "
        "bits/byte {:.4f}\n",
        a.model, kind, a.text, docs.size(), r.tokens, r.words, r.bytes, r.word_perplexity(), r.byte_perplexity(),
        r.bits_per_byte());
    out["text_perplexity"] = {{"file", a.text},
                              {"docs", docs.size()},
                              {"tokens", r.tokens},
                              {"words", r.words},
                              {"bytes", r.bytes},
                              {"loglikelihood", r.loglikelihood},
                              {"word_perplexity", r.word_perplexity()},
                              {"byte_perplexity", r.byte_perplexity()},
                              {"bits_per_byte", r.bits_per_byte()},
                              {"max_length", a.seq_len}};
  }
  if (!a.tasks.empty()) {
    std::optional<int64_t> bos = cfg.bos_token_id;
    if (!bos && tok) bos = tok->bos_id();
    out["tasks"] = nlohmann::json::array();
    for (const auto& task : a.tasks) {
      auto items = read_choice_task(task, tok.get(), bos);
      for (const auto& it : items)
        for (const auto& c : it.choices)
          for (const auto* v : {&c.context, &c.continuation})
            for (int64_t id : *v)
              if (id < 0 || id >= cfg.vocab_size)
                throw Error(task, "token id " + std::to_string(id) + " is outside the model's vocabulary");
      auto r = evaluate_choices(model, items, a.batch_size, kv, a.seq_len);
      std::cout << fmt::format("task {}: {} ({}): {} items  acc {:.4f}  acc_norm {:.4f}  acc_bytes {:.4f}\n", task,
                               a.model, kind, r.items, r.acc(), r.acc_norm(), r.acc_bytes());
      out["tasks"].push_back({{"task", task},
                              {"items", r.items},
                              {"acc", r.acc()},
                              {"acc_norm", r.acc_norm()},
                              {"acc_bytes", r.acc_bytes()},
                              {"logprobs", r.logprobs}});
    }
  }
  if (!a.json.empty()) write_file_atomic(a.json, out.dump(1) + "\n");
}

}  // namespace

void add_eval(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "Perplexity on token shards and multiple-choice accuracy on JSONL tasks");
  auto a = std::make_shared<EvalArgs>();
  cmd->add_option("--model", a->model, "HF / supra / exported model folder, or llama2.c .bin")->required();
  cmd->add_option("--tokens", a->tokens, "token-shard folder (supra data prepare / sample): perplexity");
  cmd->add_option("--task", a->tasks, "multiple-choice JSONL file (repeatable; lm-evaluation-harness's scoring)");
  cmd->add_option("--text", a->text,
                  "JSONL of {\"text\": ...} documents: word/byte perplexity as lm-evaluation-harness's "
                  "loglikelihood_rolling (windows of --seq-len)");
  cmd->add_option("--tokenizer", a->tokenizer, "folder with tokenizer.json / tokenizer.model (default: the model's)");
  cmd->add_option("--seq-len", a->seq_len,
                  "predictions per window (longer documents: several windows); for tasks, lm-eval's max_length")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--batch-size", a->batch_size, "windows / choices per forward")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--first-doc", a->first_doc, "first document of the folder")->capture_default_str();
  cmd->add_option("--max-docs", a->max_docs, "documents to score (0: all)")->capture_default_str();
  cmd->add_option("--max-tokens", a->max_tokens, "stop after about this many predicted tokens (0: all)")
      ->capture_default_str();
  cmd->add_option("--kv-policy", a->kv_policy, "transformers: full | window | tova")
      ->check(CLI::IsMember({"full", "window", "tova"}))
      ->capture_default_str();
  cmd->add_option("--kv-size", a->kv_size, "K: cached tokens per layer for window/tova")->check(CLI::NonNegativeNumber);
  cmd->add_option("--device", a->device)->check(CLI::IsMember({"auto", "cpu", "cuda"}))->capture_default_str();
  cmd->add_option("--dtype", a->dtype)->check(CLI::IsMember({"f32", "bf16"}))->capture_default_str();
  cmd->add_option("--json", a->json, "write the results here (JSON)");
  cmd->callback([a] { run_eval(*a); });
}

}  // namespace supra::cli
