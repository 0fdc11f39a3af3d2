// Tests for data/loader: the sample permutation (bijective, deterministic, portable golden values), packing into
// rows of T+1 with document-start flags, rank partitions that are disjoint and complete for W ∈ {1, 2, 3, 4, 8}
// with the same global batch sequence, every training sample exactly once per epoch, new orders per epoch,
// bit-exact resume at arbitrary positions (also with another world size), the held-out split, and bad options.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <set>
#include <string>

#include "core/base/error.h"
#include "core/base/files.h"
#include "data/loader.h"
#include "data/sha256.h"
#include "data/shards.h"
#include "tests/cpp/temp_dir.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using supra::Error;
using namespace supra::data;

namespace {

using supra::test::TempDir;

template <class F>
void expect_error(F&& f, std::initializer_list<std::string> needles) {
  try {
    f();
    FAIL() << "no supra::Error thrown";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  }
}

// A data folder of `ndocs` documents (lengths 1..60) over 7 shards, and the expected stream + doc starts.
struct Fixture {
  TempDir tmp;
  std::vector<int64_t> stream;
  std::vector<bool> starts;
  std::shared_ptr<const ShardedTokens> data;

  explicit Fixture(size_t ndocs = 400, int64_t vocab = 1000) {
    std::mt19937 rng(3);
    std::vector<std::vector<int64_t>> docs(ndocs);
    for (auto& d : docs) {
      const int len = 1 + static_cast<int>(rng() % 60);
      for (int i = 0; i < len; ++i) {
        d.push_back(static_cast<int64_t>(rng() % static_cast<uint32_t>(vocab)));
        starts.push_back(i == 0);
      }
      stream.insert(stream.end(), d.begin(), d.end());
    }
    write_dataset(tmp.path(), docs, vocab, (ndocs + 6) / 7);
    data = std::make_shared<const ShardedTokens>(tmp.path());
  }
};

LoaderOptions opts(int64_t t, int64_t g, int64_t w = 1, int64_t r = 0, uint64_t seed = 0, int64_t eval = 0) {
  LoaderOptions o;
  o.seq_len = t;
  o.global_batch = g;
  o.world_size = w;
  o.rank = r;
  o.seed = seed;
  o.eval_samples = eval;
  return o;
}

bool same_tensor(const torch::Tensor& a, const torch::Tensor& b) {
  return a.sizes() == b.sizes() && a.scalar_type() == b.scalar_type() && torch::equal(a, b);
}

}  // namespace

// ------------------------------------------------------------------------------------------------ permutation

TEST(DataPermutation, IsABijection) {
  for (uint64_t n : {1ull, 2ull, 3ull, 4ull, 5ull, 17ull, 64ull, 100ull, 1000ull, 4097ull, 65537ull}) {
    for (uint64_t epoch : {0ull, 1ull, 9ull}) {
      const SamplePermutation p(n, 42, epoch);
      std::vector<char> seen(n, 0);
      for (uint64_t i = 0; i < n; ++i) {
        const uint64_t y = p(i);
        ASSERT_LT(y, n);
        ASSERT_FALSE(seen[y]) << "n=" << n << " value " << y << " twice";
        seen[y] = 1;
      }
    }
  }
}

TEST(DataPermutation, GoldenValuesArePortable) {
  // The same values come from scripts/shipped/data_shards.py (pure-Python reference): any change to the algorithm or a
  // platform-dependent result breaks resumability of existing runs and fails here.
  const SamplePermutation a(1000, 1234, 0), b(1000, 1234, 1), c(1000000000000ull, 42, 7);
  const std::vector<uint64_t> ga = {110, 503, 56, 559, 531, 170, 238, 861};
  const std::vector<uint64_t> gb = {785, 945, 933, 450, 811, 916, 434, 994};
  for (size_t i = 0; i < ga.size(); ++i) {
    EXPECT_EQ(a(i), ga[i]) << i;
    EXPECT_EQ(b(i), gb[i]) << i;
  }
  EXPECT_EQ(c(0), 614768901564ull);
  EXPECT_EQ(c(1), 763991190497ull);
  EXPECT_EQ(c(999999999999ull), 326572105529ull);
}

TEST(DataPermutation, SeedsAndEpochsGiveDifferentOrders) {
  const uint64_t n = 500;
  auto order = [&](uint64_t seed, uint64_t epoch) {
    const SamplePermutation p(n, seed, epoch);
    std::vector<uint64_t> v(n);
    for (uint64_t i = 0; i < n; ++i) v[i] = p(i);
    return v;
  };
  EXPECT_EQ(order(5, 0), order(5, 0));
  EXPECT_NE(order(5, 0), order(6, 0));
  EXPECT_NE(order(5, 0), order(5, 1));
  std::vector<uint64_t> identity(n);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_NE(order(5, 0), identity);
  // Shuffled well enough: few fixed points, and the first half is not concentrated in either half of [0, n).
  const auto o = order(5, 0);
  int fixed = 0;
  uint64_t low = 0;
  for (uint64_t i = 0; i < n; ++i) {
    fixed += o[i] == i;
    low += (i < n / 2) && (o[i] < n / 2);
  }
  EXPECT_LT(fixed, 10);
  EXPECT_GT(low, n / 4 - 40);
  EXPECT_LT(low, n / 4 + 40);
}

// ------------------------------------------------------------------------------------------------ packing

TEST(DataLoader, RowsAreStreamSlicesWithDocumentStarts) {
  Fixture f;
  const int64_t t = 33;
  TokenLoader loader(f.data, opts(t, 4, 1, 0, 9, 3));
  EXPECT_EQ(loader.num_samples(), f.stream.size() / (t + 1));
  EXPECT_EQ(loader.num_eval_samples(), 3u);
  for (int step = 0; step < 20; ++step) {
    const Batch b = loader.next_batch();
    ASSERT_EQ(b.tokens.sizes(), torch::IntArrayRef({4, t + 1}));
    ASSERT_EQ(b.doc_start.sizes(), torch::IntArrayRef({4, t}));
    ASSERT_EQ(b.tokens.scalar_type(), torch::kLong);
    ASSERT_EQ(b.doc_start.scalar_type(), torch::kBool);
    for (int64_t row = 0; row < 4; ++row) {
      const uint64_t s = b.samples[row];
      ASSERT_LT(s, loader.num_train_samples());
      auto tok = b.tokens[row];
      auto ds = b.doc_start[row];
      for (int64_t i = 0; i <= t; ++i) ASSERT_EQ(tok[i].item<int64_t>(), f.stream[s * (t + 1) + i]);
      for (int64_t i = 0; i < t; ++i)
        ASSERT_EQ(ds[i].item<bool>(), f.starts[s * (t + 1) + i]) << "row " << row << " pos " << i;
    }
  }
}

// ------------------------------------------------------------------------------------------------ partitions

TEST(DataLoader, PartitionsAreDisjointCompleteAndIndependentOfWorldSize) {
  Fixture f;
  const int64_t t = 15, g = 24;
  TokenLoader ref(f.data, opts(t, g, 1, 0, 77, 5));
  const uint64_t n = ref.num_train_samples();
  ASSERT_GT(n, 100u);
  ASSERT_NE(n % g, 0u) << "the fixture should have a partial last batch";
  const int steps = static_cast<int>(3 * n / g + 2);  // more than three epochs
  std::vector<Batch> want;
  for (int s = 0; s < steps; ++s) want.push_back(ref.next_batch());

  // Every training sample exactly once per epoch: the global sequence, cut into epochs of n entries.
  std::vector<uint64_t> sequence;
  for (const auto& b : want) sequence.insert(sequence.end(), b.samples.begin(), b.samples.end());
  std::vector<std::vector<uint64_t>> epochs;
  for (size_t e = 0; (e + 1) * n <= sequence.size(); ++e) {
    std::vector<uint64_t> ep(sequence.begin() + e * n, sequence.begin() + (e + 1) * n);
    std::vector<uint64_t> sorted = ep;
    std::sort(sorted.begin(), sorted.end());
    for (uint64_t i = 0; i < n; ++i) ASSERT_EQ(sorted[i], i) << "epoch " << e << " is not a permutation";
    epochs.push_back(ep);
  }
  ASSERT_GE(epochs.size(), 3u);
  EXPECT_NE(epochs[0], epochs[1]);
  EXPECT_NE(epochs[1], epochs[2]);

  for (int64_t w : {1, 2, 3, 4, 8}) {
    std::vector<std::unique_ptr<TokenLoader>> ranks;
    for (int64_t r = 0; r < w; ++r) ranks.push_back(std::make_unique<TokenLoader>(f.data, opts(t, g, w, r, 77, 5)));
    for (int s = 0; s < steps; ++s) {
      std::vector<torch::Tensor> tok, ds;
      std::vector<uint64_t> samples;
      for (auto& l : ranks) {
        Batch b = l->next_batch();
        ASSERT_EQ(b.tokens.size(0), g / w);
        tok.push_back(b.tokens);
        ds.push_back(b.doc_start);
        samples.insert(samples.end(), b.samples.begin(), b.samples.end());
      }
      // Union over ranks = the W=1 global batch, in order (disjoint and complete as positions of the batch).
      ASSERT_EQ(samples, want[s].samples) << "W=" << w << " step " << s;
      ASSERT_TRUE(same_tensor(torch::cat(tok), want[s].tokens)) << "W=" << w << " step " << s;
      ASSERT_TRUE(same_tensor(torch::cat(ds), want[s].doc_start)) << "W=" << w << " step " << s;
    }
    for (auto& l : ranks) EXPECT_EQ(l->state(), ref.state()) << "the state is global: the same on every rank";
  }
}

TEST(DataLoader, DisjointWithinEpochAcrossRanks) {
  // Within one epoch no sample is given to two ranks (or twice to one).
  Fixture f;
  for (int64_t w : {1, 2, 3, 4, 8}) {
    const int64_t g = 8 * 3;
    std::vector<std::unique_ptr<TokenLoader>> ranks;
    for (int64_t r = 0; r < w; ++r) ranks.push_back(std::make_unique<TokenLoader>(f.data, opts(7, g, w, r, 1)));
    const uint64_t n = ranks[0]->num_train_samples();
    std::set<uint64_t> seen;
    for (uint64_t s = 0; s < n / g; ++s)
      for (auto& l : ranks)
        for (uint64_t x : l->next_batch().samples) ASSERT_TRUE(seen.insert(x).second) << "W=" << w << " sample " << x;
    EXPECT_EQ(seen.size(), (n / g) * g);
  }
}

TEST(DataLoader, DeterministicFromSeed) {
  Fixture f;
  TokenLoader a(f.data, opts(20, 6, 1, 0, 11)), b(f.data, opts(20, 6, 1, 0, 11)), c(f.data, opts(20, 6, 1, 0, 12));
  bool differs = false;
  for (int s = 0; s < 30; ++s) {
    const Batch x = a.next_batch(), y = b.next_batch(), z = c.next_batch();
    ASSERT_TRUE(same_tensor(x.tokens, y.tokens));
    ASSERT_TRUE(same_tensor(x.doc_start, y.doc_start));
    differs = differs || x.samples != z.samples;
  }
  EXPECT_TRUE(differs);
}

// ------------------------------------------------------------------------------------------------ resume

TEST(DataLoader, ResumeAtArbitraryPositionsIsBitExact) {
  Fixture f;
  const int64_t t = 12, g = 8;
  std::mt19937 rng(5);
  for (int trial = 0; trial < 12; ++trial) {
    const int k = static_cast<int>(rng() % 200);  // several epochs deep for some trials
    TokenLoader run(f.data, opts(t, g, 1, 0, 321, 2));
    for (int s = 0; s < k; ++s) run.next_batch();
    // Through JSON text, as a checkpoint would store it.
    const std::string saved = run.state().to_json().dump();
    const LoaderState st = LoaderState::from_json(json::parse(saved));
    EXPECT_EQ(st, run.state());
    TokenLoader resumed(f.data, opts(t, g, 1, 0, 0 /* the state's seed wins */, 2));
    resumed.restore(st);
    // Another world size resumes the same global stream: rank 1 of 4 holds rows [2, 4).
    TokenLoader rank1(f.data, opts(t, g, 4, 1, 0, 2));
    rank1.restore(st);
    for (int s = 0; s < 25; ++s) {
      const Batch want = run.next_batch(), got = resumed.next_batch(), part = rank1.next_batch();
      ASSERT_EQ(got.samples, want.samples) << "trial " << trial << " after " << k << " steps, step " << s;
      ASSERT_TRUE(same_tensor(got.tokens, want.tokens));
      ASSERT_TRUE(same_tensor(got.doc_start, want.doc_start));
      ASSERT_EQ(got.epoch, want.epoch);
      ASSERT_TRUE(same_tensor(part.tokens, want.tokens.slice(0, 2, 4)));
    }
    EXPECT_EQ(resumed.state(), run.state());
  }
}

TEST(DataLoader, StateJsonAndRestoreErrors) {
  Fixture f;
  TokenLoader l(f.data, opts(10, 4, 1, 0, 3, 1));
  l.next_batch();
  const json j = l.state().to_json();
  for (const char* key : {"seed", "epoch", "position", "num_train_samples", "seq_len"}) EXPECT_TRUE(j.contains(key));
  json bad = j;
  bad.erase("position");
  expect_error([&] { LoaderState::from_json(bad, "ckpt/state.json"); }, {"ckpt/state.json", "position"});
  LoaderState s = l.state();
  s.num_train_samples += 1;
  expect_error([&] { l.restore(s); }, {"training samples"});
  s = l.state();
  s.seq_len = 11;
  expect_error([&] { l.restore(s); }, {"seq_len 11"});
  s = l.state();
  s.position = l.num_train_samples();
  expect_error([&] { l.restore(s); }, {"position"});
}

TEST(DataLoader, PreallocatedBatchesMatch) {
  Fixture f;
  TokenLoader a(f.data, opts(16, 4, 2, 1, 8)), b(f.data, opts(16, 4, 2, 1, 8));
  auto tok = torch::empty({2, 17}, torch::kLong);
  auto ds = torch::empty({2, 16}, torch::kBool);
  for (int s = 0; s < 10; ++s) {
    const Batch want = a.next_batch();
    std::vector<uint64_t> samples;
    b.next_batch_into(tok, ds, &samples);
    ASSERT_TRUE(same_tensor(tok, want.tokens));
    ASSERT_TRUE(same_tensor(ds, want.doc_start));
    ASSERT_EQ(samples, want.samples);
  }
  auto wrong = torch::empty({3, 17}, torch::kLong);
  EXPECT_THROW(b.next_batch_into(wrong, ds), c10::Error);
}

// ------------------------------------------------------------------------------------------------ held-out split

TEST(DataLoader, EvalSplitIsTheTailDisjointFromTraining) {
  Fixture f;
  const int64_t t = 9, g = 12, e = 29;  // 29 eval samples: 2 full global batches + 5
  TokenLoader ref(f.data, opts(t, g, 1, 0, 4, e));
  const uint64_t n = ref.num_samples(), ntrain = ref.num_train_samples();
  EXPECT_EQ(ntrain + e, n);
  EXPECT_EQ(ref.eval_steps(), 3u);
  // Training never touches the tail.
  for (uint64_t s = 0; s < 3 * ntrain / g; ++s)
    for (uint64_t x : ref.next_batch().samples) ASSERT_LT(x, ntrain);
  for (int64_t w : {1, 2, 3, 4}) {
    std::vector<uint64_t> all;
    for (int64_t r = 0; r < w; ++r) {
      TokenLoader l(f.data, opts(t, g, w, r, 4, e));
      for (uint64_t s = 0; s < l.eval_steps(); ++s) {
        const Batch b = l.eval_batch(s);
        ASSERT_LE(b.tokens.size(0), g / w);
        for (int64_t row = 0; row < b.tokens.size(0); ++row) {
          const uint64_t x = b.samples[row];
          for (int64_t i = 0; i <= t; ++i) ASSERT_EQ(b.tokens[row][i].item<int64_t>(), f.stream[x * (t + 1) + i]);
        }
        all.insert(all.end(), b.samples.begin(), b.samples.end());
      }
    }
    std::sort(all.begin(), all.end());
    std::vector<uint64_t> want(e);
    std::iota(want.begin(), want.end(), ntrain);
    EXPECT_EQ(all, want) << "W=" << w;
  }
  LoaderOptions frac = opts(t, g);
  frac.eval_samples = -1;
  frac.eval_fraction = 0.1;
  TokenLoader lf(f.data, frac);
  EXPECT_EQ(lf.num_eval_samples(), n / 10);
}

// ------------------------------------------------------------------------------------------------ bad options

TEST(DataLoader, BadOptionsAreReported) {
  Fixture f;
  expect_error([&] { TokenLoader l(f.data, opts(16, 10, 4)); }, {"global batch 10", "world size 4"});
  expect_error([&] { TokenLoader l(f.data, opts(16, 8, 4, 4)); }, {"rank 4"});
  expect_error([&] { TokenLoader l(f.data, opts(0, 8)); }, {"seq_len"});
  expect_error([&] { TokenLoader l(f.data, opts(1000000, 8)); }, {f.tmp.path().string(), "not a single sample"});
  const uint64_t n = f.stream.size() / 17;
  expect_error([&] { TokenLoader l(f.data, opts(16, 8, 1, 0, 0, static_cast<int64_t>(n))); },
               {"held-out split", "nothing to train on"});
}

TEST(DataLoader, TokenIdOutOfVocabularyStopsTheLoader) {
  TempDir tmp;
  write_dataset(tmp.path(), {{1, 2, 3, 4, 5, 6, 7, 8}, {9, 10, 11, 12}}, 100, 1);
  // Corrupt shard 1 consistently (checksum updated) so that only the loader's id check can notice.
  const fs::path bin = tmp.path() / "shard_00001.bin";
  std::string bytes;
  {
    std::ifstream in(bin, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const uint16_t bad = 4000;
  std::memcpy(bytes.data() + 2, &bad, 2);
  std::ofstream(bin, std::ios::binary | std::ios::trunc) << bytes;
  json m = json::parse(std::ifstream(tmp.path() / "manifest.json"));
  m["shards"][1]["bin_sha256"] = sha256_hex(bytes.data(), bytes.size());
  std::ofstream(tmp.path() / "manifest.json", std::ios::trunc) << m.dump();
  auto data = std::make_shared<const ShardedTokens>(tmp.path());
  TokenLoader l(data, opts(11, 1));
  expect_error([&] { l.next_batch(); }, {"shard_00001.bin", "token id 4000", "vocab_size 100"});
}
