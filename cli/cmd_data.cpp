// `supra data …`: tokenized training data (docs/data.md).
//   prepare  Parquet/JSONL → token shards + manifest (runs scripts/shipped/prepare_data.py: HF tokenizers + pyarrow)
//   check    verifies a data folder (manifest, sizes, checksums, token ids) and optionally its fit to a model
//   docs     prints documents' token ids as JSON lines (debugging, cross-checks)
//   batches  runs the training loader and writes its batches to a .safetensors file (what the model would see)
//   sample   writes a data folder of documents sampled from a model (self-contained demos and tests: no tokenizer,
//            no corpus needed; the teacher's own text is what uptraining should learn to reproduce)
#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "core/base/error.h"
#include "core/base/files.h"
#include "core/formats/model_io.h"
#include "core/formats/safetensors.h"
#include "data/loader.h"
#include "data/shards.h"
#include "data/teacher_documents.h"

namespace supra::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ------------------------------------------------------------------------------------------------ prepare

// scripts/shipped/prepare_data.py: $SUPRA_SCRIPTS_DIR, else the source tree this file was compiled from, else next to
// the executable (../scripts, scripts).
fs::path find_script(const std::string& name) {
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv("SUPRA_SCRIPTS_DIR"); env && *env) {
    const fs::path p = fs::path(env) / name;
    if (!fs::is_regular_file(p))
      throw Error(p.string(), "not found (SUPRA_SCRIPTS_DIR is set to " + std::string(env) + ")");
    return p;
  }
  candidates.push_back(fs::path(__FILE__).parent_path().parent_path() / "scripts" / "shipped" / name);
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    candidates.push_back(exe.parent_path().parent_path() / "scripts" / "shipped" / name);
    candidates.push_back(exe.parent_path() / "scripts" / "shipped" / name);
  }
  for (const auto& c : candidates)
    if (fs::is_regular_file(c, ec)) return c;
  throw Error(name, "script not found (looked in " + candidates.front().parent_path().string() +
                        "; set SUPRA_SCRIPTS_DIR to the repository's scripts/shipped/ folder)");
}

struct PrepareArgs {
  std::vector<std::string> inputs;
  std::string tokenizer, out, text_column, bos = "auto";
  int64_t seq_len = 2048, workers = 0, eos_id = -1;
  double shard_mb = 256;
  bool no_progress = false;
};

// Replaces this process with the Python preparation script: its exit code and messages are supra's.
[[noreturn]] void run_prepare(const PrepareArgs& a, const CLI::App& cmd) {
  const fs::path script = find_script("prepare_data.py");
  const char* py_env = std::getenv("SUPRA_PYTHON");
  const std::string python = py_env && *py_env ? py_env : "python3";
  std::vector<std::string> args = {python, script.string(), "--tokenizer", a.tokenizer, "--out", a.out};
  args.push_back("--input");
  for (const auto& i : a.inputs) args.push_back(i);
  if (!a.text_column.empty()) args.insert(args.end(), {"--text-column", a.text_column});
  args.insert(args.end(),
              {"--seq-len", std::to_string(a.seq_len), "--workers", std::to_string(a.workers), "--bos", a.bos});
  if (cmd.count("--shard-mb")) {
    std::ostringstream s;
    s.precision(17);
    s << a.shard_mb;
    args.insert(args.end(), {"--shard-mb", s.str()});
  }
  if (a.eos_id >= 0) args.insert(args.end(), {"--eos-id", std::to_string(a.eos_id)});
  if (a.no_progress) args.push_back("--no-progress");
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(const_cast<char*>(s.c_str()));
  argv.push_back(nullptr);
  spdlog::debug("exec {} {}", python, script.string());
  spdlog::default_logger()->flush();
  std::cout.flush();
  std::cerr.flush();
  ::execvp(argv[0], argv.data());
  throw Error(python, std::string("cannot run the Python interpreter (set SUPRA_PYTHON): ") + std::strerror(errno));
}

// ------------------------------------------------------------------------------------------------ check

std::string human(double v) {
  const char* units[] = {"", "K", "M", "G", "T"};
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f%s" : "%.2f%s", v, units[u]);
  return buf;
}

void run_check(const std::string& dir, const std::string& model, bool quick, int64_t seq_len) {
  data::CheckOptions opts;
  opts.checksums = !quick;
  opts.scan_tokens = !quick;
  const data::CheckSummary s = data::check_dataset(dir, opts);
  const data::Manifest m = data::Manifest::read(dir);
  if (!model.empty()) data::check_compatible(m, model);
  const int64_t t = seq_len > 0 ? seq_len : m.seq_len;
  std::cout << "data folder   " << dir << "\n"
            << "format        " << data::kFormatName << " v" << m.version << ", " << data::dtype_name(m.dtype)
            << ", vocab_size " << m.vocab_size << "\n"
            << "tokenizer     ";
  for (const auto& [name, sha] : m.tokenizer.files) std::cout << name << " sha256 " << sha.substr(0, 16) << "… ";
  std::cout << "bos " << (m.tokenizer.add_bos ? std::to_string(*m.tokenizer.bos_token_id) : "none") << ", eos "
            << m.tokenizer.eos_token_id << "\n"
            << "shards        " << s.shards << " (" << human(static_cast<double>(s.bytes)) << "B)\n"
            << "documents     " << s.docs << " (" << human(static_cast<double>(s.docs)) << ")\n"
            << "tokens        " << s.tokens << " (" << human(static_cast<double>(s.tokens)) << ")\n";
  if (!quick && s.docs > 0)
    std::cout << "doc length    min " << s.min_doc_tokens << ", mean "
              << static_cast<double>(s.tokens) / static_cast<double>(s.docs) << ", max " << s.max_doc_tokens
              << " tokens; largest id " << s.max_token_id << "\n";
  if (t > 0)
    std::cout << "samples       " << s.tokens / static_cast<uint64_t>(t + 1) << " of seq_len " << t << " + 1\n";
  std::cout << "checks        manifest, files, sizes, index headers"
            << (quick ? "" : ", sha256 checksums, token ids < vocab_size, document offsets")
            << (model.empty() ? "" : ", compatible with " + model) << ": OK" << std::endl;
}

// ------------------------------------------------------------------------------------------------ docs

std::pair<uint64_t, uint64_t> parse_range(const std::string& text, uint64_t n) {
  if (text.empty()) return {0, n};
  const auto colon = text.find(':');
  auto num = [&](const std::string& s, uint64_t dflt) -> uint64_t {
    if (s.empty()) return dflt;
    size_t used = 0;
    uint64_t v = 0;
    try {
      v = std::stoull(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != s.size()) throw Error("--range", "'" + text + "' is not START:END");
    return v;
  };
  if (colon == std::string::npos) throw Error("--range", "'" + text + "' is not START:END");
  const uint64_t a = num(text.substr(0, colon), 0), b = std::min(num(text.substr(colon + 1), n), n);
  if (a > b) throw Error("--range", "'" + text + "': start after end");
  return {a, b};
}

void run_docs(const std::string& dir, const std::string& range) {
  const data::ShardedTokens d(dir);
  const auto [a, b] = parse_range(range, d.num_docs());
  std::string line;
  for (uint64_t i = a; i < b; ++i) {
    const auto ids = d.document(i);
    line = "{\"doc\":" + std::to_string(i) + ",\"tokens\":[";
    for (size_t k = 0; k < ids.size(); ++k) {
      if (k) line += ',';
      line += std::to_string(ids[k]);
    }
    line += "]}\n";
    std::cout << line;
  }
  std::cout.flush();
}

// ------------------------------------------------------------------------------------------------ batches

struct BatchesArgs {
  std::string dir, out, state_in, state_out, model;
  data::LoaderOptions opts;
  int64_t steps = 1;
  bool eval = false;
};

json read_json_file(const std::string& path) {
  const std::string text = read_file(path);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw Error(path, std::string("invalid JSON: ") + e.what());
  }
}

void run_batches(const BatchesArgs& a) {
  if (a.opts.rank >= a.opts.world_size)
    throw Error("--rank", std::to_string(a.opts.rank) + " is not below --world-size " + std::to_string(a.opts.world_size));
  auto d = std::make_shared<const data::ShardedTokens>(a.dir);
  if (!a.model.empty()) data::check_compatible(d->manifest(), a.model);
  data::TokenLoader loader(d, a.opts);
  if (!a.state_in.empty()) loader.restore(data::LoaderState::from_json(read_json_file(a.state_in), a.state_in));
  std::vector<torch::Tensor> tokens, starts;
  std::vector<int64_t> samples, steps, epochs;
  const uint64_t n = a.eval ? loader.eval_steps() : static_cast<uint64_t>(a.steps);
  for (uint64_t s = 0; s < n; ++s) {
    data::Batch b = a.eval ? loader.eval_batch(s) : loader.next_batch();
    tokens.push_back(b.tokens);
    starts.push_back(b.doc_start);
    for (uint64_t x : b.samples) {
      samples.push_back(static_cast<int64_t>(x));
      steps.push_back(static_cast<int64_t>(s));
      epochs.push_back(static_cast<int64_t>(b.epoch));
    }
  }
  const int64_t t = a.opts.seq_len;
  auto cat = [](std::vector<torch::Tensor>& v, std::vector<int64_t> shape, torch::Dtype dt) {
    return v.empty() ? torch::empty(shape, dt) : torch::cat(v, 0);
  };
  save_safetensors(a.out,
                   {{"tokens", cat(tokens, {0, t + 1}, torch::kLong)},
                    {"doc_start", cat(starts, {0, t}, torch::kBool)},
                    {"samples", torch::tensor(samples, torch::kLong)},
                    {"steps", torch::tensor(steps, torch::kLong)},
                    {"epochs", torch::tensor(epochs, torch::kLong)}},
                   {{"state", loader.state().to_json().dump()},
                    {"num_samples", std::to_string(loader.num_samples())},
                    {"num_train_samples", std::to_string(loader.num_train_samples())}});
  if (!a.state_out.empty()) {
    std::ofstream out(a.state_out);
    out << loader.state().to_json().dump() << "\n";
    if (!out) throw Error(a.state_out, "cannot write the loader state");
  }
  spdlog::info("{} rows of {} tokens ({} samples, {} for training) -> {}", samples.size(), t + 1, loader.num_samples(),
               loader.num_train_samples(), a.out);
  std::cout << loader.state().to_json().dump() << std::endl;
}

}  // namespace

struct SampleArgs {
  std::string model, out;
  int64_t docs = 512, max_tokens = 128, docs_per_shard = 256;
  double temperature = 1.0;
  uint64_t seed = 0;
};

void run_sample(const SampleArgs& a) {
  refuse_existing_output(a.out);
  torch::NoGradGuard no_grad;
  CausalLM model = load_model(a.model);
  const ModelConfig& cfg = model->config();
  if (!cfg.bos_token_id) throw Error(a.model, "the model has no bos_token_id; cannot start documents");
  if (cfg.eos_token_ids.empty()) throw Error(a.model, "the model has no eos_token_id; cannot end documents");
  data::SampleOptions so;
  so.num_docs = a.docs;
  so.max_tokens = a.max_tokens;
  so.temperature = a.temperature;
  so.seed = a.seed;
  so.bos_token_id = *cfg.bos_token_id;
  so.eos_token_id = cfg.eos_token_ids.front();
  spdlog::info("sampling {} documents of up to {} tokens from {}", a.docs, a.max_tokens, a.model);
  const auto docs = data::sample_documents(model, so);
  data::TokenizerIdentity tok;
  tok.bos_token_id = so.bos_token_id;
  tok.eos_token_id = *so.eos_token_id;
  tok.add_bos = true;
  tok.model_vocab_size = cfg.vocab_size;
  tok.source = "sampled from " + a.model + " (seed " + std::to_string(a.seed) + ")";
  const auto m = data::write_dataset(a.out, docs, cfg.vocab_size, static_cast<size_t>(a.docs_per_shard), tok);
  std::cout << "wrote " << m.num_docs << " documents, " << m.num_tokens << " tokens in " << m.shards.size()
            << " shard(s) to " << a.out << "\n";
}

void add_data(CLI::App& app) {
  auto* data = app.add_subcommand("data", "Tokenized training data: prepare, check, inspect (docs/data.md)");
  data->require_subcommand(1);

  {
    auto* cmd = data->add_subcommand(
        "prepare", "Tokenize Parquet/JSONL documents into token shards + manifest (scripts/shipped/prepare_data.py)");
    auto a = std::make_shared<PrepareArgs>();
    cmd->add_option("--input", a->inputs, "input files or folders (.parquet, .jsonl, .jsonl.gz)")
        ->required()
        ->expected(1, -1);
    cmd->add_option("--tokenizer", a->tokenizer, "model folder with tokenizer.json (or tokenizer.model)")->required();
    cmd->add_option("--out", a->out, "output data folder (a re-run resumes it)")->required();
    cmd->add_option("--text-column", a->text_column,
                    "text field (default: 'content' or 'text', whichever the input has)");
    cmd->add_option("--seq-len", a->seq_len, "training sequence length (recorded in the manifest)")
        ->capture_default_str();
    cmd->add_option("--workers", a->workers, "worker processes (0: all cores)")->capture_default_str();
    cmd->add_option("--shard-mb", a->shard_mb, "input megabytes per shard")->capture_default_str();
    cmd->add_option("--bos", a->bos, "prepend BOS: auto (as the tokenizer does) | always | never")
        ->check(CLI::IsMember({"auto", "always", "never"}))
        ->capture_default_str();
    cmd->add_option("--eos-id", a->eos_id, "end-of-document token id (default: the model's eos_token_id)");
    cmd->add_flag("--no-progress", a->no_progress, "no progress bar");
    cmd->callback([a, cmd] { run_prepare(*a, *cmd); });
  }
  {
    auto* cmd = data->add_subcommand("check", "Verify a data folder: manifest, files, sizes, checksums, token ids");
    struct Args {
      std::string dir, model;
      bool quick = false;
      int64_t seq_len = 0;
    };
    auto a = std::make_shared<Args>();
    cmd->add_option("dir", a->dir, "data folder (manifest.json + shards)")->required();
    cmd->add_option("--model", a->model, "also check that this model (folder or .bin) can train on the data");
    cmd->add_flag("--quick", a->quick, "skip checksums and the token scan (files, sizes and headers only)");
    cmd->add_option("--seq-len", a->seq_len, "report the sample count for this sequence length");
    cmd->callback([a] { run_check(a->dir, a->model, a->quick, a->seq_len); });
  }
  {
    auto* cmd =
        data->add_subcommand("docs", "Print documents' token ids as JSON lines {\"doc\": i, \"tokens\": [...]}");
    struct Args {
      std::string dir, range;
    };
    auto a = std::make_shared<Args>();
    cmd->add_option("dir", a->dir, "data folder")->required();
    cmd->add_option("--range", a->range, "documents START:END (default: all)");
    cmd->callback([a] { run_docs(a->dir, a->range); });
  }
  {
    auto* cmd = data->add_subcommand("batches", "Run the training loader and write its batches to a .safetensors file");
    auto a = std::make_shared<BatchesArgs>();
    cmd->add_option("dir", a->dir, "data folder")->required();
    cmd->add_option("--out", a->out, "output .safetensors (tokens, doc_start, samples, steps, epochs)")->required();
    cmd->add_option("--seq-len", a->opts.seq_len, "T: rows hold T+1 tokens")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    cmd->add_option("--global-batch", a->opts.global_batch, "rows per step over all ranks")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    cmd->add_option("--world-size", a->opts.world_size, "number of ranks")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    cmd->add_option("--rank", a->opts.rank, "this rank")->capture_default_str()->check(CLI::NonNegativeNumber);
    cmd->add_option("--seed", a->opts.seed, "shuffle seed")->capture_default_str();
    cmd->add_option("--eval-samples", a->opts.eval_samples, "held-out samples (-1: --eval-fraction)")
        ->capture_default_str();
    cmd->add_option("--eval-fraction", a->opts.eval_fraction, "held-out fraction of the samples")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--steps", a->steps, "training steps to run")->capture_default_str()->check(CLI::NonNegativeNumber);
    cmd->add_flag("--eval", a->eval, "write the held-out split instead of training batches");
    cmd->add_option("--state-in", a->state_in, "resume from a loader state JSON file");
    cmd->add_option("--state-out", a->state_out, "write the loader state after the last step");
    cmd->add_option("--model", a->model, "refuse data that this model (folder or .bin) cannot train on");
    cmd->callback([a] { run_batches(*a); });
  }
  {
    auto* cmd = data->add_subcommand("sample", "Write a data folder of documents sampled from a model (demos, tests)");
    auto a = std::make_shared<SampleArgs>();
    cmd->add_option("--model", a->model, "model folder or llama2.c .bin (BOS starts, EOS ends each document)")
        ->required();
    cmd->add_option("--out", a->out, "output data folder (must not exist)")->required();
    cmd->add_option("--docs", a->docs, "documents")->capture_default_str()->check(CLI::PositiveNumber);
    cmd->add_option("--max-tokens", a->max_tokens, "tokens per document at most, BOS and EOS included")
        ->capture_default_str()
        ->check(CLI::Range(int64_t{3}, int64_t{1} << 20));
    cmd->add_option("--temperature", a->temperature, "sampling temperature (0: greedy)")->capture_default_str();
    cmd->add_option("--seed", a->seed, "sampling seed")->capture_default_str();
    cmd->add_option("--docs-per-shard", a->docs_per_shard, "documents per shard")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    cmd->callback([a] { run_sample(*a); });
  }
}

}  // namespace supra::cli
