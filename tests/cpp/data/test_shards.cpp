// Tests for data/shards and data/sha256: the shard format round trip (uint16 and uint32), document boundaries,
// `check_dataset`, model compatibility, and every bad-input case (missing / truncated shard, checksum mismatch,
// token id ≥ vocab, malformed manifest or index, tokenizer mismatch) raising a supra::Error that names the file
// and the problem.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "core/base/error.h"
#include "core/base/files.h"
#include "data/sha256.h"
#include "data/shards.h"
#include "tests/cpp/temp_dir.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using supra::Error;
using namespace supra::data;

namespace {

using supra::test::TempDir;

// Documents of 1..max_len tokens with ids in [3, vocab) and a recognisable pattern.
std::vector<std::vector<int64_t>> make_docs(size_t n, int64_t vocab, uint32_t seed = 1, int max_len = 40) {
  std::mt19937 rng(seed);
  std::vector<std::vector<int64_t>> docs(n);
  for (auto& d : docs) {
    const int len = 1 + static_cast<int>(rng() % static_cast<uint32_t>(max_len));
    for (int i = 0; i < len; ++i) d.push_back(3 + static_cast<int64_t>(rng() % static_cast<uint32_t>(vocab - 3)));
  }
  return docs;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_text(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << s;
}

json read_manifest_json(const fs::path& dir) { return json::parse(read_text(dir / kManifestName)); }
void write_manifest_json(const fs::path& dir, const json& j) { write_text(dir / kManifestName, j.dump(1)); }

// Runs f, expects a supra::Error whose message contains every needle.
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

std::vector<int64_t> concat(const std::vector<std::vector<int64_t>>& docs) {
  std::vector<int64_t> all;
  for (const auto& d : docs) all.insert(all.end(), d.begin(), d.end());
  return all;
}

std::vector<bool> starts_of(const std::vector<std::vector<int64_t>>& docs) {
  std::vector<bool> s;
  for (const auto& d : docs)
    for (size_t i = 0; i < d.size(); ++i) s.push_back(i == 0);
  return s;
}

// A model folder accepted by ModelConfig (plus optional tokenizer.json).
fs::path write_model_dir(const fs::path& dir, int64_t vocab, int64_t bos, int64_t eos, const std::string& tok = "") {
  fs::create_directories(dir);
  json cfg = {{"architectures", {"LlamaForCausalLM"}},
              {"model_type", "llama"},
              {"vocab_size", vocab},
              {"hidden_size", 64},
              {"intermediate_size", 128},
              {"num_hidden_layers", 2},
              {"num_attention_heads", 4},
              {"num_key_value_heads", 4},
              {"bos_token_id", bos},
              {"eos_token_id", eos}};
  write_text(dir / "config.json", cfg.dump());
  if (!tok.empty()) write_text(dir / "tokenizer.json", tok);
  return dir;
}

}  // namespace

// ------------------------------------------------------------------------------------------------ sha256

TEST(DataSha256, KnownVectors) {
  EXPECT_EQ(sha256_hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(sha256_hex(two_blocks.data(), two_blocks.size()),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  // Incremental updates of odd sizes give the one-shot digest.
  std::string big(100000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 31 + 7);
  Sha256 h;
  for (size_t i = 0, step = 1; i < big.size(); i += step, step = step * 3 % 997 + 1)
    h.update(big.data() + i, std::min(step, big.size() - i));
  EXPECT_EQ(h.hex(), sha256_hex(big.data(), big.size()));
  const std::string million(1000000, 'a');
  EXPECT_EQ(sha256_hex(million.data(), million.size()),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// ------------------------------------------------------------------------------------------------ round trip

TEST(DataShards, DtypeFromVocab) {
  EXPECT_EQ(dtype_for_vocab(1), TokenDtype::kUInt16);
  EXPECT_EQ(dtype_for_vocab(32000), TokenDtype::kUInt16);
  EXPECT_EQ(dtype_for_vocab(65536), TokenDtype::kUInt16);
  EXPECT_EQ(dtype_for_vocab(65537), TokenDtype::kUInt32);
  EXPECT_EQ(dtype_for_vocab(128256), TokenDtype::kUInt32);
  EXPECT_THROW(dtype_for_vocab(0), Error);
}

class DataRoundTrip : public ::testing::TestWithParam<int64_t> {};

TEST_P(DataRoundTrip, DocumentsTokensAndBoundaries) {
  const int64_t vocab = GetParam();
  TempDir tmp;
  const auto docs = make_docs(257, vocab);
  const Manifest written = write_dataset(tmp.path(), docs, vocab, 50);  // 6 shards, the last one partial
  EXPECT_EQ(written.shards.size(), 6u);
  const ShardedTokens data(tmp.path(), {.verify_checksums = true});
  const Manifest& m = data.manifest();
  EXPECT_EQ(m.dtype, dtype_for_vocab(vocab));
  EXPECT_EQ(m.num_docs, docs.size());
  ASSERT_EQ(data.num_docs(), docs.size());
  for (size_t d = 0; d < docs.size(); ++d) ASSERT_EQ(data.document(d), docs[d]) << "document " << d;
  // File sizes follow the format: width × tokens, 32 + 8 × docs.
  for (const auto& s : m.shards) {
    EXPECT_EQ(fs::file_size(tmp.path() / s.bin_file()), s.num_tokens * dtype_bytes(m.dtype));
    EXPECT_EQ(fs::file_size(tmp.path() / s.idx_file()), 32 + 8 * s.num_docs);
  }
  // Random ranges of the stream, across shard boundaries.
  const auto all = concat(docs);
  const auto starts = starts_of(docs);
  ASSERT_EQ(data.num_tokens(), all.size());
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    const uint64_t a = rng() % all.size(), n = rng() % (all.size() - a + 1);
    std::vector<int64_t> got(n);
    std::unique_ptr<bool[]> flags(new bool[n + 1]);
    data.copy_tokens(a, n, got.data());
    data.doc_starts(a, n, flags.get());
    for (uint64_t i = 0; i < n; ++i) {
      ASSERT_EQ(got[i], all[a + i]) << "token " << a + i;
      ASSERT_EQ(flags[i], starts[a + i]) << "doc start at " << a + i;
    }
  }
  const CheckSummary sum = check_dataset(tmp.path());
  EXPECT_EQ(sum.docs, docs.size());
  EXPECT_EQ(sum.tokens, all.size());
  EXPECT_EQ(sum.shards, 6u);
  EXPECT_EQ(sum.max_token_id, *std::max_element(all.begin(), all.end()));
}

INSTANTIATE_TEST_SUITE_P(Dtypes, DataRoundTrip, ::testing::Values(int64_t{500}, int64_t{65536}, int64_t{200000}));

TEST(DataShards, ManifestRoundTripKeepsTokenizerIdentity) {
  TempDir tmp;
  TokenizerIdentity tok;
  tok.files["tokenizer.json"] = std::string(64, 'a');
  tok.bos_token_id = 1;
  tok.eos_token_id = 2;
  tok.add_bos = true;
  tok.model_vocab_size = 512;
  write_dataset(tmp.path(), make_docs(10, 500), 500, 4, tok);
  const Manifest m = Manifest::read(tmp.path());
  EXPECT_EQ(m.tokenizer.files, tok.files);
  EXPECT_EQ(m.tokenizer.bos_token_id, 1);
  EXPECT_EQ(m.tokenizer.eos_token_id, 2);
  EXPECT_TRUE(m.tokenizer.add_bos);
  EXPECT_EQ(m.tokenizer.model_vocab_size, 512);
  EXPECT_EQ(m.to_json(), Manifest::read(tmp.path()).to_json());
}

TEST(DataShards, WriterLeavesNothingWithoutFinish) {
  TempDir tmp;
  {
    ShardWriter w(tmp.path(), "shard_00000", TokenDtype::kUInt16);
    w.add_document({5, 6, 7});
  }
  EXPECT_TRUE(fs::is_empty(tmp.path()));
  ShardWriter w(tmp.path(), "shard_00000", TokenDtype::kUInt16);
  EXPECT_THROW(w.add_document({70000}), Error);  // does not fit uint16
}

// ------------------------------------------------------------------------------------------------ bad input

class DataBadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    docs_ = make_docs(40, 500);
    write_dataset(tmp_.path(), docs_, 500, 10);  // 4 shards
  }
  fs::path file(const std::string& name) const { return tmp_.path() / name; }
  TempDir tmp_;
  std::vector<std::vector<int64_t>> docs_;
};

TEST_F(DataBadInput, MissingManifest) {
  fs::remove(file("manifest.json"));
  expect_error([&] { ShardedTokens d(tmp_.path()); }, {"manifest.json", "missing"});
  expect_error([&] { ShardedTokens d(tmp_.path() / "nope"); }, {"nope", "no such directory"});
}

TEST_F(DataBadInput, MissingShard) {
  fs::remove(file("shard_00002.bin"));
  expect_error([&] { ShardedTokens d(tmp_.path()); }, {"shard_00002.bin", "missing"});
  expect_error([&] { check_dataset(tmp_.path()); }, {"shard_00002.bin", "missing"});
}

TEST_F(DataBadInput, TruncatedShard) {
  fs::resize_file(file("shard_00001.bin"), fs::file_size(file("shard_00001.bin")) - 2);
  expect_error([&] { ShardedTokens d(tmp_.path()); }, {"shard_00001.bin", "truncated"});
  expect_error([&] { check_dataset(tmp_.path(), {.checksums = false, .scan_tokens = false}); },
               {"shard_00001.bin", "truncated"});
}

TEST_F(DataBadInput, TruncatedIndex) {
  fs::resize_file(file("shard_00003.idx"), 20);
  expect_error([&] { ShardedTokens d(tmp_.path()); }, {"shard_00003.idx", "truncated"});
}

TEST_F(DataBadInput, ChecksumMismatch) {
  std::string bin = read_text(file("shard_00000.bin"));
  bin[0] = static_cast<char>(bin[0] ^ 1);  // same size, still a valid id
  write_text(file("shard_00000.bin"), bin);
  EXPECT_NO_THROW(ShardedTokens d(tmp_.path()));  // checksums are not read by default
  expect_error([&] { check_dataset(tmp_.path()); }, {"shard_00000.bin", "checksum mismatch"});
  expect_error([&] { ShardedTokens d(tmp_.path(), {.verify_checksums = true}); }, {"shard_00000.bin", "checksum"});
}

TEST_F(DataBadInput, TokenIdOutOfVocabulary) {
  // A shard with an id ≥ vocab_size whose manifest entry (sha256, sizes, max id) is otherwise consistent:
  // only the token scan can find it.
  std::string bin = read_text(file("shard_00001.bin"));
  const uint16_t bad = 777;
  std::memcpy(bin.data() + 6, &bad, 2);
  write_text(file("shard_00001.bin"), bin);
  json m = read_manifest_json(tmp_.path());
  m["shards"][1]["bin_sha256"] = sha256_hex(bin.data(), bin.size());
  write_manifest_json(tmp_.path(), m);
  expect_error([&] { check_dataset(tmp_.path()); }, {"shard_00001.bin", "token id 777", "vocab_size 500"});
  // The reader refuses to hand it out too.
  const ShardedTokens d(tmp_.path());
  const uint64_t begin = m["shards"][0]["num_tokens"].get<uint64_t>();
  std::vector<int64_t> out(10);
  expect_error([&] { d.copy_tokens(begin, 10, out.data()); }, {"shard_00001.bin", "token id 777"});
  // A manifest claiming such an id is refused when read.
  m["shards"][1]["max_token_id"] = 777;
  write_manifest_json(tmp_.path(), m);
  expect_error([&] { Manifest::read(tmp_.path()); }, {"manifest.json", "max_token_id 777"});
}

TEST_F(DataBadInput, MalformedManifest) {
  const json good = read_manifest_json(tmp_.path());
  auto with = [&](auto edit, std::initializer_list<std::string> needles) {
    json m = good;
    edit(m);
    write_manifest_json(tmp_.path(), m);
    expect_error([&] { Manifest::read(tmp_.path()); }, needles);
  };
  with([](json& m) { m["version"] = 99; }, {"manifest.json", "version 99"});
  with([](json& m) { m["format"] = "megatron"; }, {"manifest.json", "format"});
  with([](json& m) { m["dtype"] = "int8"; }, {"manifest.json", "dtype"});
  with([](json& m) { m["num_tokens"] = 1; }, {"manifest.json", "totals"});
  with([](json& m) { m["shards"][0].erase("bin_sha256"); }, {"manifest.json", "shards[0]", "bin_sha256"});
  with([](json& m) { m["shards"][1]["name"] = "../evil"; }, {"manifest.json", "invalid shard name"});
  with([](json& m) { m["vocab_size"] = 100000; }, {"manifest.json", "uint16"});
  with([](json& m) { m["tokenizer"]["eos_token_id"] = 9999; }, {"manifest.json", "eos_token_id"});
  write_text(file("manifest.json"), "{not json");
  expect_error([&] { Manifest::read(tmp_.path()); }, {"manifest.json", "invalid JSON"});
}

TEST_F(DataBadInput, CorruptIndex) {
  const std::string good = read_text(file("shard_00000.idx"));
  std::string idx = good;
  idx[0] = 'X';
  write_text(file("shard_00000.idx"), idx);
  expect_error([&] { ShardedTokens d(tmp_.path()); }, {"shard_00000.idx", "magic"});
  write_text(file("shard_00000.idx"), good);
  // An empty first document in shard 1, with a manifest checksum that matches the corrupted index.
  idx = read_text(file("shard_00001.idx"));
  const uint64_t end = 0;
  std::memcpy(idx.data() + 32, &end, 8);
  write_text(file("shard_00001.idx"), idx);
  json m = read_manifest_json(tmp_.path());
  m["shards"][1]["idx_sha256"] = sha256_hex(idx.data(), idx.size());
  write_manifest_json(tmp_.path(), m);
  expect_error([&] { check_dataset(tmp_.path()); }, {"shard_00001.idx", "document 0 ends at 0"});
}

// ------------------------------------------------------------------------------------------------ compatibility

TEST(DataCompatible, ModelFolderAndConfig) {
  TempDir tmp;
  const std::string tok_json = "{\"model\": \"a tokenizer\"}";
  TokenizerIdentity id;
  id.files["tokenizer.json"] = sha256_hex(tok_json.data(), tok_json.size());
  id.bos_token_id = 1;
  id.eos_token_id = 2;
  id.add_bos = true;
  write_dataset(tmp.path() / "data", make_docs(5, 500), 500, 5, id);
  const Manifest m = Manifest::read(tmp.path() / "data");

  EXPECT_NO_THROW(check_compatible(m, write_model_dir(tmp.path() / "same", 500, 1, 2, tok_json)));
  EXPECT_NO_THROW(check_compatible(m, write_model_dir(tmp.path() / "padded", 512, 1, 2, tok_json)));
  EXPECT_NO_THROW(check_compatible(m, write_model_dir(tmp.path() / "no_tokenizer", 500, 1, 2)));
  expect_error([&] { check_compatible(m, write_model_dir(tmp.path() / "other_tok", 500, 1, 2, "{\"x\": 1}")); },
               {"other_tok/tokenizer.json", "tokenizer differs"});
  expect_error([&] { check_compatible(m, write_model_dir(tmp.path() / "small", 400, 1, 2, tok_json)); },
               {"manifest.json", "vocabulary of 500", "vocab_size 400"});
  expect_error([&] { check_compatible(m, write_model_dir(tmp.path() / "bos", 500, 5, 2, tok_json)); },
               {"manifest.json", "BOS id 1", "bos_token_id 5"});
  expect_error([&] { check_compatible(m, write_model_dir(tmp.path() / "eos", 500, 1, 7, tok_json)); },
               {"manifest.json", "EOS id 2", "eos_token_id 7"});
  expect_error([&] { check_compatible(m, tmp.path() / "missing_model"); }, {"missing_model"});

  // llama2.c .bin header: vocab size from the header, BOS 1 / EOS 2.
  const fs::path bin = tmp.path() / "model.bin";
  const int32_t header[7] = {64, 128, 2, 4, 4, -300, 256};
  write_text(bin, std::string(reinterpret_cast<const char*>(header), sizeof(header)));
  expect_error([&] { check_compatible(m, bin); }, {"vocab_size 300"});
}
