// Token shards: the on-disk format written by `supra data prepare` (scripts/shipped/prepare_data.py) and read by the
// loader. A data folder holds shard_NNNNN.bin (the tokens of whole documents, little-endian uint16 or uint32),
// shard_NNNNN.idx (header + the end offset of every document) and manifest.json (written last: format version,
// dtype, vocabulary, tokenizer identity, per-shard counts and sha256). docs/data.md is the reference.
//
// Everything here validates before it trusts: a missing or truncated shard, a size or checksum that disagrees
// with the manifest, a token id outside the vocabulary, a manifest that does not fit the model — each is one
// supra::Error naming the file and the problem.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/base/files.h"
#include "core/model/config.h"
#include "data/sha256.h"

namespace supra::data {

inline constexpr int kFormatVersion = 1;
inline constexpr const char* kFormatName = "supra-tokens";
inline constexpr const char* kManifestName = "manifest.json";
inline constexpr char kIdxMagic[8] = {'S', 'U', 'P', 'R', 'A', 'I', 'D', 'X'};
inline constexpr uint64_t kIdxHeaderBytes = 32;  // magic[8] u32 version, u32 token bytes, u64 docs, u64 tokens

// Token storage: uint16 when every id fits (vocab_size ≤ 65536), else uint32. The value is the byte width.
enum class TokenDtype : uint32_t { kUInt16 = 2, kUInt32 = 4 };
TokenDtype dtype_for_vocab(int64_t vocab_size);
const char* dtype_name(TokenDtype dtype);  // "uint16" | "uint32"
inline uint64_t dtype_bytes(TokenDtype dtype) { return static_cast<uint64_t>(dtype); }

// Which tokenizer made the tokens: sha256 of its file(s) (tokenizer.json and/or tokenizer.model), its special
// tokens and whether BOS was prepended. vocab_size lives in the Manifest (it bounds every id).
struct TokenizerIdentity {
  std::map<std::string, std::string> files;  // file name -> sha256 hex
  std::optional<int64_t> bos_token_id;       // prepended to every document when add_bos
  int64_t eos_token_id = -1;                 // appended to every document (the end-of-document token)
  bool add_bos = false;
  std::optional<int64_t> model_vocab_size;  // config.json vocab_size of the tokenizer's model folder, if any
  std::string source;                       // where it came from (informational)
};

struct ShardInfo {
  std::string name;  // "shard_00000": files name.bin and name.idx in the data folder
  uint64_t num_docs = 0;
  uint64_t num_tokens = 0;
  int64_t max_token_id = -1;  // -1 for an empty shard
  uint64_t bin_bytes = 0;
  uint64_t idx_bytes = 0;
  std::string bin_sha256;
  std::string idx_sha256;
  std::string source;  // the input it came from (informational)

  std::string bin_file() const { return name + ".bin"; }
  std::string idx_file() const { return name + ".idx"; }
  nlohmann::json to_json() const;
};

struct Manifest {
  std::filesystem::path dir;  // the data folder (not serialised)
  int version = kFormatVersion;
  TokenDtype dtype = TokenDtype::kUInt16;
  int64_t vocab_size = 0;  // every token id is < vocab_size
  TokenizerIdentity tokenizer;
  int64_t seq_len = 0;  // the sequence length the data was prepared for (informational; 0 = unknown)
  uint64_t num_docs = 0;
  uint64_t num_tokens = 0;
  std::vector<ShardInfo> shards;
  nlohmann::json extra = nlohmann::json::object();  // "prepare" block etc., kept verbatim

  // Reads and validates <dir>/manifest.json (fields, types, totals = sums over shards, dtype fits the vocab).
  static Manifest read(const std::filesystem::path& dir);
  nlohmann::json to_json() const;
  // Atomic write of <dir>/manifest.json (tmp file, fsync, rename).
  void write() const;
};

// Writes one shard (.bin + .idx) document by document; files appear under their final names only in finish()
// (tmp names, fsync, rename). Destroyed without finish(), it removes its tmp files.
class ShardWriter {
 public:
  ShardWriter(const std::filesystem::path& dir, std::string name, TokenDtype dtype);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  void add_document(const int64_t* ids, size_t n);  // n ≥ 1; ids must fit the dtype
  void add_document(const std::vector<int64_t>& ids) { add_document(ids.data(), ids.size()); }
  ShardInfo finish();

 private:
  void flush();
  std::filesystem::path dir_;
  std::string name_;
  TokenDtype dtype_;
  std::unique_ptr<AtomicFile> bin_;  // <name>.bin, under its tmp name until finish()
  std::vector<uint8_t> buf_;
  std::vector<uint64_t> doc_ends_;
  uint64_t tokens_ = 0;
  int64_t max_id_ = -1;
  Sha256 bin_hash_;
  bool finished_ = false;
};

// Writes a complete data folder from documents held in memory (tests, benchmarks): shards of at most
// `docs_per_shard` documents, then the manifest. Returns the manifest.
Manifest write_dataset(const std::filesystem::path& dir, const std::vector<std::vector<int64_t>>& docs,
                       int64_t vocab_size, size_t docs_per_shard, const TokenizerIdentity& tokenizer = {});

// A memory-mapped data folder: the manifest and every shard, validated at open (files present, sizes and idx
// headers agree with the manifest; optionally checksums). The shards form one token stream in manifest order.
class ShardedTokens {
 public:
  struct Options {
    bool verify_checksums = false;  // sha256 of every file (reads everything; `supra data check` does it)
  };
  explicit ShardedTokens(const std::filesystem::path& dir) : ShardedTokens(dir, Options{}) {}
  ShardedTokens(const std::filesystem::path& dir, const Options& options);
  ~ShardedTokens();
  ShardedTokens(const ShardedTokens&) = delete;
  ShardedTokens& operator=(const ShardedTokens&) = delete;

  const Manifest& manifest() const { return manifest_; }
  uint64_t num_tokens() const { return manifest_.num_tokens; }
  uint64_t num_docs() const { return manifest_.num_docs; }
  int64_t vocab_size() const { return manifest_.vocab_size; }

  // Tokens [start, start + n) of the stream as int64. Throws supra::Error naming the shard file when an id is
  // ≥ vocab_size (the manifest is not trusted on this).
  void copy_tokens(uint64_t start, uint64_t n, int64_t* out) const;
  // out[i] = true iff a document begins at stream position start + i.
  void doc_starts(uint64_t start, uint64_t n, bool* out) const;
  // Document d of the stream (0-based, manifest order): its tokens.
  std::vector<int64_t> document(uint64_t d) const;

 private:
  struct Mapped;
  Manifest manifest_;
  std::vector<std::unique_ptr<Mapped>> shards_;
  std::vector<uint64_t> token_begin_;  // stream offset of each shard's first token (+ total at the end)
  std::vector<uint64_t> doc_begin_;    // stream index of each shard's first document (+ total at the end)
};

// What `supra data check` verifies and prints.
struct CheckOptions {
  bool checksums = true;    // sha256 of every .bin/.idx against the manifest
  bool scan_tokens = true;  // every token id < vocab_size, max id = the manifest's, document offsets valid
};
struct CheckSummary {
  uint64_t shards = 0, docs = 0, tokens = 0, bytes = 0;
  uint64_t min_doc_tokens = 0, max_doc_tokens = 0;
  int64_t max_token_id = -1;
};
CheckSummary check_dataset(const std::filesystem::path& dir, const CheckOptions& options = {});

// Can a model train on this data? Throws supra::Error when the tokenizer vocabulary does not fit the model's
// embedding (manifest vocab_size > config vocab_size), when BOS/EOS ids disagree with the model's config, or when
// the model folder holds a tokenizer file whose sha256 differs from the one the data was tokenized with.
// `model` is an HF/supra model folder (config.json, tokenizer files) or a llama2.c .bin file.
void check_compatible(const Manifest& manifest, const std::filesystem::path& model);
// The same against a parsed config; tokenizer files are compared when `tokenizer_dir` is given.
void check_compatible(const Manifest& manifest, const ModelConfig& config, const std::string& model_source,
                      const std::filesystem::path& tokenizer_dir = {});

}  // namespace supra::data
