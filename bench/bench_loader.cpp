// bench_loader: tokens/s of the training data loader (data/loader.h) on one core.
//
// Writes a synthetic data folder (default 128M uint16 tokens, ~260 MB, documents of 50..4000 tokens, 8 shards) to
// a temporary folder — or uses --dir — then times full passes of the loader: shuffled rows of T+1 tokens, int64
// output, document-start flags, token-id checks, exactly what training gets. Counts training tokens (B × T per
// step). The synthetic folder is removed at exit. scripts/tools/bench_loader.sh builds and runs it.
#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>

#include "core/base/error.h"
#include "data/loader.h"
#include "data/shards.h"

namespace fs = std::filesystem;
using namespace supra::data;
using Clock = std::chrono::steady_clock;

namespace {

struct TempDir {
  fs::path path;
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

// Synthetic documents: random lengths, random ids below vocab, written shard by shard (constant memory).
void write_synthetic(const fs::path& dir, uint64_t tokens, int64_t vocab, int shards) {
  Manifest m;
  m.dir = dir;
  m.vocab_size = vocab;
  m.dtype = dtype_for_vocab(vocab);
  m.tokenizer.eos_token_id = 0;
  std::mt19937_64 rng(1);
  std::vector<int64_t> doc;
  const uint64_t per_shard = (tokens + shards - 1) / shards;
  for (int k = 0; k < shards; ++k) {
    char name[32];
    std::snprintf(name, sizeof(name), "shard_%05d", k);
    ShardWriter w(dir, name, m.dtype);
    uint64_t n = 0;
    const uint64_t want = std::min(per_shard, tokens - m.num_tokens);
    while (n < want) {
      const uint64_t len = std::min<uint64_t>(50 + rng() % 3950, want - n);
      doc.resize(len);
      for (auto& v : doc) v = static_cast<int64_t>(rng() % static_cast<uint64_t>(vocab));
      doc.back() = 0;  // EOS
      w.add_document(doc);
      n += len;
    }
    m.shards.push_back(w.finish());
    m.num_docs += m.shards.back().num_docs;
    m.num_tokens += m.shards.back().num_tokens;
  }
  m.write();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_loader: tokens/s of the supra data loader on one core"};
  std::string dir;
  uint64_t tokens = 128'000'000;
  int64_t seq_len = 2048, batch = 32, vocab = 32000;
  int passes = 2;
  app.add_option("--dir", dir, "existing data folder (default: a synthetic one, removed afterwards)");
  app.add_option("--tokens", tokens, "synthetic tokens")->capture_default_str();
  app.add_option("--vocab", vocab, "synthetic vocabulary size (> 65536: uint32 shards)")->capture_default_str();
  app.add_option("--seq-len", seq_len, "T")->capture_default_str();
  app.add_option("--batch", batch, "rows per step")->capture_default_str();
  app.add_option("--passes", passes, "timed passes over the data (epochs)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  torch::set_num_threads(1);
  try {
    TempDir tmp;
    if (dir.empty()) {
      tmp.path = fs::temp_directory_path() / ("supra_bench_loader_" + std::to_string(::getpid()));
      dir = tmp.path.string();
      const auto t0 = Clock::now();
      write_synthetic(dir, tokens, vocab, 8);
      const double s = std::chrono::duration<double>(Clock::now() - t0).count();
      std::printf("synthetic data: %.0fM tokens (%s) written to %s in %.1f s\n", tokens / 1e6,
                  dtype_name(dtype_for_vocab(vocab)), dir.c_str(), s);
    }
    auto data = std::make_shared<const ShardedTokens>(dir);
    LoaderOptions o;
    o.seq_len = seq_len;
    o.global_batch = batch;
    o.seed = 1;
    TokenLoader loader(data, o);
    const uint64_t steps = loader.num_train_samples() / static_cast<uint64_t>(batch);
    std::printf("%lu tokens, %lu samples of %ld+1, batch %ld: %lu steps per pass, 1 thread\n",
                static_cast<unsigned long>(data->num_tokens()), static_cast<unsigned long>(loader.num_samples()),
                static_cast<long>(seq_len), static_cast<long>(batch), static_cast<unsigned long>(steps));
    auto tok = torch::empty({batch, seq_len + 1}, torch::kLong);
    auto ds = torch::empty({batch, seq_len}, torch::kBool);
    int64_t checksum = 0;
    for (int p = 0; p < passes; ++p) {
      const bool alloc = p % 2 == 1;  // alternate: preallocated buffers / a fresh Batch per step
      const auto t0 = Clock::now();
      for (uint64_t s = 0; s < steps; ++s) {
        if (alloc) {
          Batch b = loader.next_batch();
          checksum += b.tokens[0][0].item<int64_t>();
        } else {
          loader.next_batch_into(tok, ds);
          checksum += tok.data_ptr<int64_t>()[0];
        }
      }
      const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
      const double tps = static_cast<double>(steps) * batch * seq_len / sec;
      std::printf("pass %d (%s): %.2f s, %.1f M tokens/s, %.2f ms/step\n", p + 1,
                  alloc ? "next_batch" : "next_batch_into", sec, tps / 1e6, 1e3 * sec / steps);
    }
    std::printf("(checksum %ld)\n", static_cast<long>(checksum));
  } catch (const supra::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  return 0;
}
