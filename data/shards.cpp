// Token shards: manifest, writer, memory-mapped reader, `data check` and model compatibility; see shards.h and
// docs/data.md for the format.
#include "data/shards.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "core/base/error.h"
#include "core/base/files.h"
#include "core/base/mapped_file.h"
#include "core/formats/model_config_io.h"

namespace supra::data {

static_assert(std::endian::native == std::endian::little,
              "token shards are little-endian; big-endian hosts unsupported");

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string errno_text(int err) { return std::strerror(err); }
std::string str(uint64_t v) { return std::to_string(v); }
constexpr const char* kMissingShard = "missing shard file (listed in manifest.json)";

// ------------------------------------------------------------------------------------------------ json helpers

struct JsonReader {
  std::string file;

  const json& field(const json& j, const std::string& key, const std::string& where = "") const {
    if (!j.is_object() || !j.contains(key)) throw Error(file, where + "missing field \"" + key + "\"");
    return j.at(key);
  }
  uint64_t u64(const json& j, const std::string& key, const std::string& where = "") const {
    const json& v = field(j, key, where);
    if (v.is_number_unsigned()) return v.get<uint64_t>();
    if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
    throw Error(file, where + "field \"" + key + "\" must be a non-negative integer, got " + v.dump());
  }
  int64_t i64(const json& j, const std::string& key, const std::string& where = "") const {
    const json& v = field(j, key, where);
    if (v.is_number_integer()) return v.get<int64_t>();
    throw Error(file, where + "field \"" + key + "\" must be an integer, got " + v.dump());
  }
  std::string string(const json& j, const std::string& key, const std::string& where = "") const {
    const json& v = field(j, key, where);
    if (!v.is_string()) throw Error(file, where + "field \"" + key + "\" must be a string, got " + v.dump());
    return v.get<std::string>();
  }
  std::string sha(const json& j, const std::string& key, const std::string& where = "") const {
    std::string s = string(j, key, where);
    const bool ok = s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
                      return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                    });
    if (!ok) throw Error(file, where + "field \"" + key + "\" is not a sha256 hex digest: \"" + s + "\"");
    return s;
  }
};

bool valid_shard_name(const std::string& name) {
  if (name.empty() || name.size() > 200 || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
  });
}

// The fixed idx header, read from a mapped .idx file and checked against the manifest's shard entry.
struct IdxHeader {
  uint32_t version = 0, token_bytes = 0;
  uint64_t num_docs = 0, num_tokens = 0;
};

IdxHeader read_idx_header(const MappedFile& idx, const ShardInfo& shard, TokenDtype dtype) {
  const std::string file = idx.path().string();
  if (idx.size() < kIdxHeaderBytes)
    throw Error(file, "truncated index: " + str(idx.size()) + " bytes, smaller than the " + str(kIdxHeaderBytes) +
                          "-byte header");
  if (std::memcmp(idx.data(), kIdxMagic, 8) != 0) throw Error(file, "not a supra token index (bad magic)");
  IdxHeader h;
  std::memcpy(&h.version, idx.data() + 8, 4);
  std::memcpy(&h.token_bytes, idx.data() + 12, 4);
  std::memcpy(&h.num_docs, idx.data() + 16, 8);
  std::memcpy(&h.num_tokens, idx.data() + 24, 8);
  if (h.version != kFormatVersion)
    throw Error(file, "index format version " + str(h.version) + " is not supported (this build reads " +
                          str(kFormatVersion) + ")");
  if (h.token_bytes != dtype_bytes(dtype))
    throw Error(file,
                "token width " + str(h.token_bytes) + " bytes disagrees with the manifest dtype " + dtype_name(dtype));
  if (h.num_docs != shard.num_docs || h.num_tokens != shard.num_tokens)
    throw Error(file, "index header says " + str(h.num_docs) + " documents / " + str(h.num_tokens) +
                          " tokens, manifest says " + str(shard.num_docs) + " / " + str(shard.num_tokens));
  return h;
}

const uint64_t* doc_ends_of(const MappedFile& idx) {
  return reinterpret_cast<const uint64_t*>(idx.data() + kIdxHeaderBytes);
}

void check_file_size(const MappedFile& f, uint64_t expected, const char* what) {
  if (f.size() != expected) {
    const std::string kind = f.size() < expected ? "truncated" : "larger than expected";
    throw Error(f.path().string(), std::string(what) + " is " + str(f.size()) + " bytes but the manifest says " +
                                       str(expected) + " (" + kind + "; re-run supra data prepare)");
  }
}

template <class T>
int64_t convert_max(const T* src, uint64_t n, int64_t* out) {
  T mx = 0;
  for (uint64_t i = 0; i < n; ++i) {
    const T v = src[i];
    out[i] = static_cast<int64_t>(v);
    mx = v > mx ? v : mx;
  }
  return static_cast<int64_t>(mx);
}

template <class T>
int64_t scan_max(const T* src, uint64_t n) {
  T mx = 0;
  for (uint64_t i = 0; i < n; ++i) mx = src[i] > mx ? src[i] : mx;
  return n == 0 ? -1 : static_cast<int64_t>(mx);
}

uint64_t first_at_least(const uint8_t* data, TokenDtype dtype, uint64_t n, int64_t bound) {
  for (uint64_t i = 0; i < n; ++i) {
    const int64_t v = dtype == TokenDtype::kUInt16 ? reinterpret_cast<const uint16_t*>(data)[i]
                                                   : reinterpret_cast<const uint32_t*>(data)[i];
    if (v >= bound) return i;
  }
  return n;
}

}  // namespace

// ------------------------------------------------------------------------------------------------ dtype

TokenDtype dtype_for_vocab(int64_t vocab_size) {
  if (vocab_size <= 0) throw Error("vocab_size", "must be positive, got " + std::to_string(vocab_size));
  if (vocab_size > (int64_t{1} << 32)) throw Error("vocab_size", "larger than 2^32 is not supported");
  return vocab_size <= 65536 ? TokenDtype::kUInt16 : TokenDtype::kUInt32;
}

const char* dtype_name(TokenDtype dtype) { return dtype == TokenDtype::kUInt16 ? "uint16" : "uint32"; }

// ------------------------------------------------------------------------------------------------ manifest

json ShardInfo::to_json() const {
  json j = {
      {"name", name},           {"num_docs", num_docs},   {"num_tokens", num_tokens}, {"max_token_id", max_token_id},
      {"bin_bytes", bin_bytes}, {"idx_bytes", idx_bytes}, {"bin_sha256", bin_sha256}, {"idx_sha256", idx_sha256}};
  if (!source.empty()) j["source"] = source;
  return j;
}

Manifest Manifest::read(const fs::path& dir) {
  const fs::path path = dir / kManifestName;
  const JsonReader r{path.string()};
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error(dir.string(), "not a data folder (no such directory)");
  if (!fs::exists(path, ec))
    throw Error(path.string(), "missing: not a prepared data folder, or `supra data prepare` did not finish");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string(), "cannot open: " + errno_text(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  json j;
  try {
    j = json::parse(ss.str());
  } catch (const json::exception& e) {
    throw Error(path.string(), std::string("invalid JSON: ") + e.what());
  }
  if (!j.is_object()) throw Error(path.string(), "not a JSON object");

  Manifest m;
  m.dir = dir;
  if (r.string(j, "format") != kFormatName)
    throw Error(path.string(),
                "format is \"" + j["format"].get<std::string>() + "\", expected \"" + kFormatName + "\"");
  m.version = static_cast<int>(r.i64(j, "version"));
  if (m.version != kFormatVersion)
    throw Error(path.string(), "format version " + std::to_string(m.version) + " is not supported (this build reads " +
                                   std::to_string(kFormatVersion) + ")");
  const std::string dt = r.string(j, "dtype");
  if (dt == "uint16")
    m.dtype = TokenDtype::kUInt16;
  else if (dt == "uint32")
    m.dtype = TokenDtype::kUInt32;
  else
    throw Error(path.string(), "dtype \"" + dt + "\" is not uint16 or uint32");
  m.vocab_size = r.i64(j, "vocab_size");
  if (m.vocab_size <= 0) throw Error(path.string(), "vocab_size must be positive");
  if (m.dtype == TokenDtype::kUInt16 && m.vocab_size > 65536)
    throw Error(path.string(), "dtype uint16 cannot hold ids of a vocabulary of " + std::to_string(m.vocab_size));
  if (m.vocab_size > (int64_t{1} << 32)) throw Error(path.string(), "vocab_size larger than 2^32");
  if (j.contains("seq_len")) m.seq_len = r.i64(j, "seq_len");

  const json& tj = r.field(j, "tokenizer");
  if (!tj.is_object()) throw Error(path.string(), "\"tokenizer\" must be an object");
  const std::string tw = "tokenizer: ";
  if (tj.contains("files")) {
    const json& files = tj.at("files");
    if (!files.is_object()) throw Error(path.string(), tw + "\"files\" must be an object {name: sha256}");
    for (const auto& [name, _] : files.items()) m.tokenizer.files[name] = r.sha(files, name, tw + "files: ");
  }
  if (tj.contains("bos_token_id") && !tj.at("bos_token_id").is_null())
    m.tokenizer.bos_token_id = r.i64(tj, "bos_token_id", tw);
  m.tokenizer.eos_token_id = r.i64(tj, "eos_token_id", tw);
  const json& ab = r.field(tj, "add_bos_token", tw);
  if (!ab.is_boolean()) throw Error(path.string(), tw + "\"add_bos_token\" must be true or false");
  m.tokenizer.add_bos = ab.get<bool>();
  if (tj.contains("model_vocab_size") && !tj.at("model_vocab_size").is_null())
    m.tokenizer.model_vocab_size = r.i64(tj, "model_vocab_size", tw);
  if (tj.contains("source") && tj.at("source").is_string()) m.tokenizer.source = tj.at("source").get<std::string>();
  if (m.tokenizer.eos_token_id < 0 || m.tokenizer.eos_token_id >= m.vocab_size)
    throw Error(path.string(), tw + "eos_token_id " + std::to_string(m.tokenizer.eos_token_id) +
                                   " is outside the vocabulary of " + std::to_string(m.vocab_size));
  if (m.tokenizer.add_bos && !m.tokenizer.bos_token_id)
    throw Error(path.string(), tw + "add_bos_token is true but there is no bos_token_id");
  if (m.tokenizer.bos_token_id && (*m.tokenizer.bos_token_id < 0 || *m.tokenizer.bos_token_id >= m.vocab_size))
    throw Error(path.string(), tw + "bos_token_id " + std::to_string(*m.tokenizer.bos_token_id) +
                                   " is outside the vocabulary of " + std::to_string(m.vocab_size));

  const json& sj = r.field(j, "shards");
  if (!sj.is_array()) throw Error(path.string(), "\"shards\" must be an array");
  std::set<std::string> names;
  uint64_t docs = 0, tokens = 0;
  for (size_t i = 0; i < sj.size(); ++i) {
    const json& e = sj[i];
    const std::string where = "shards[" + std::to_string(i) + "]: ";
    if (!e.is_object()) throw Error(path.string(), where + "not an object");
    ShardInfo s;
    s.name = r.string(e, "name", where);
    if (!valid_shard_name(s.name)) throw Error(path.string(), where + "invalid shard name \"" + s.name + "\"");
    if (!names.insert(s.name).second) throw Error(path.string(), where + "shard \"" + s.name + "\" listed twice");
    s.num_docs = r.u64(e, "num_docs", where);
    s.num_tokens = r.u64(e, "num_tokens", where);
    s.max_token_id = r.i64(e, "max_token_id", where);
    s.bin_bytes = r.u64(e, "bin_bytes", where);
    s.idx_bytes = r.u64(e, "idx_bytes", where);
    s.bin_sha256 = r.sha(e, "bin_sha256", where);
    s.idx_sha256 = r.sha(e, "idx_sha256", where);
    if (e.contains("source") && e.at("source").is_string()) s.source = e.at("source").get<std::string>();
    if (s.bin_bytes != s.num_tokens * dtype_bytes(m.dtype))
      throw Error(path.string(),
                  where + "bin_bytes " + str(s.bin_bytes) + " != num_tokens × " + str(dtype_bytes(m.dtype)));
    if (s.idx_bytes != kIdxHeaderBytes + 8 * s.num_docs)
      throw Error(path.string(), where + "idx_bytes " + str(s.idx_bytes) + " != 32 + 8 × num_docs");
    if ((s.num_docs == 0) != (s.num_tokens == 0) || s.num_docs > s.num_tokens)
      throw Error(path.string(),
                  where + "inconsistent counts: " + str(s.num_docs) + " documents, " + str(s.num_tokens) + " tokens");
    if (s.max_token_id >= m.vocab_size)
      throw Error(path.string(), where + "max_token_id " + std::to_string(s.max_token_id) +
                                     " is not below vocab_size " + std::to_string(m.vocab_size));
    docs += s.num_docs;
    tokens += s.num_tokens;
    m.shards.push_back(std::move(s));
  }
  m.num_docs = r.u64(j, "num_docs");
  m.num_tokens = r.u64(j, "num_tokens");
  if (m.num_docs != docs || m.num_tokens != tokens)
    throw Error(path.string(), "totals num_docs " + str(m.num_docs) + " / num_tokens " + str(m.num_tokens) +
                                   " disagree with the shards (" + str(docs) + " / " + str(tokens) + ")");
  for (const auto& [k, v] : j.items())
    if (!std::set<std::string>{"format", "version", "dtype", "vocab_size", "seq_len", "tokenizer", "shards", "num_docs",
                               "num_tokens", "num_shards"}
             .count(k))
      m.extra[k] = v;
  return m;
}

json Manifest::to_json() const {
  json tok = {
      {"files", tokenizer.files}, {"eos_token_id", tokenizer.eos_token_id}, {"add_bos_token", tokenizer.add_bos}};
  tok["bos_token_id"] = tokenizer.bos_token_id ? json(*tokenizer.bos_token_id) : json(nullptr);
  if (tokenizer.model_vocab_size) tok["model_vocab_size"] = *tokenizer.model_vocab_size;
  if (!tokenizer.source.empty()) tok["source"] = tokenizer.source;
  json shard_list = json::array();
  for (const auto& s : shards) shard_list.push_back(s.to_json());
  json j = {{"format", kFormatName},    {"version", version},          {"dtype", dtype_name(dtype)},
            {"vocab_size", vocab_size}, {"seq_len", seq_len},          {"num_docs", num_docs},
            {"num_tokens", num_tokens}, {"num_shards", shards.size()}, {"tokenizer", tok},
            {"shards", shard_list}};
  for (const auto& [k, v] : extra.items()) j[k] = v;
  return j;
}

void Manifest::write() const { write_file_atomic(dir / kManifestName, to_json().dump(1) + "\n"); }

// ------------------------------------------------------------------------------------------------ writer

ShardWriter::ShardWriter(const fs::path& dir, std::string name, TokenDtype dtype)
    : dir_(dir), name_(std::move(name)), dtype_(dtype) {
  if (!valid_shard_name(name_)) throw Error(name_, "invalid shard name");
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw Error(dir_.string(), "cannot create directory: " + ec.message());
  bin_ = std::make_unique<AtomicFile>(dir_ / (name_ + ".bin"));
  buf_.reserve(1 << 20);
}

ShardWriter::~ShardWriter() = default;  // without finish(), the AtomicFile removes its tmp file

void ShardWriter::flush() {
  if (buf_.empty()) return;
  bin_hash_.update(buf_.data(), buf_.size());
  bin_->write(buf_.data(), buf_.size());
  buf_.clear();
}

void ShardWriter::add_document(const int64_t* ids, size_t n) {
  if (finished_) throw std::logic_error("ShardWriter::add_document after finish");
  if (n == 0) throw Error(name_, "a document must have at least one token");
  const int64_t limit = dtype_ == TokenDtype::kUInt16 ? 65535 : int64_t{0xffffffff};
  for (size_t i = 0; i < n; ++i) {
    const int64_t v = ids[i];
    if (v < 0 || v > limit) throw Error(name_, "token id " + std::to_string(v) + " does not fit " + dtype_name(dtype_));
    max_id_ = std::max(max_id_, v);
    if (dtype_ == TokenDtype::kUInt16) {
      const uint16_t x = static_cast<uint16_t>(v);
      const auto* b = reinterpret_cast<const uint8_t*>(&x);
      buf_.insert(buf_.end(), b, b + 2);
    } else {
      const uint32_t x = static_cast<uint32_t>(v);
      const auto* b = reinterpret_cast<const uint8_t*>(&x);
      buf_.insert(buf_.end(), b, b + 4);
    }
    if (buf_.size() >= (1u << 20)) flush();
  }
  tokens_ += n;
  doc_ends_.push_back(tokens_);
}

ShardInfo ShardWriter::finish() {
  if (finished_) throw std::logic_error("ShardWriter::finish called twice");
  flush();
  const fs::path idx = dir_ / (name_ + ".idx");
  // The index, built in memory (8 bytes per document).
  std::vector<uint8_t> head(kIdxHeaderBytes, 0);
  std::memcpy(head.data(), kIdxMagic, 8);
  const uint32_t version = kFormatVersion, width = static_cast<uint32_t>(dtype_bytes(dtype_));
  const uint64_t docs = doc_ends_.size();
  std::memcpy(head.data() + 8, &version, 4);
  std::memcpy(head.data() + 12, &width, 4);
  std::memcpy(head.data() + 16, &docs, 8);
  std::memcpy(head.data() + 24, &tokens_, 8);
  head.insert(head.end(), reinterpret_cast<const uint8_t*>(doc_ends_.data()),
              reinterpret_cast<const uint8_t*>(doc_ends_.data() + doc_ends_.size()));
  ShardInfo info;
  info.name = name_;
  info.num_docs = docs;
  info.num_tokens = tokens_;
  info.max_token_id = max_id_;
  info.bin_bytes = tokens_ * dtype_bytes(dtype_);
  info.idx_bytes = head.size();
  info.bin_sha256 = bin_hash_.hex();
  info.idx_sha256 = sha256_hex(head.data(), head.size());
  bin_->commit();
  finished_ = true;
  write_file_atomic(idx, head.data(), head.size());
  return info;
}

Manifest write_dataset(const fs::path& dir, const std::vector<std::vector<int64_t>>& docs, int64_t vocab_size,
                       size_t docs_per_shard, const TokenizerIdentity& tokenizer) {
  if (docs_per_shard == 0) throw Error("write_dataset", "docs_per_shard must be positive");
  Manifest m;
  m.dir = dir;
  m.vocab_size = vocab_size;
  m.dtype = dtype_for_vocab(vocab_size);
  m.tokenizer = tokenizer;
  if (m.tokenizer.eos_token_id < 0) m.tokenizer.eos_token_id = 0;
  for (size_t begin = 0, k = 0; begin < docs.size(); begin += docs_per_shard, ++k) {
    char name[32];
    std::snprintf(name, sizeof(name), "shard_%05zu", k);
    ShardWriter w(dir, name, m.dtype);
    for (size_t d = begin; d < std::min(docs.size(), begin + docs_per_shard); ++d) {
      for (int64_t v : docs[d])
        if (v >= vocab_size) throw Error(name, "token id " + std::to_string(v) + " is not below vocab_size");
      w.add_document(docs[d]);
    }
    m.shards.push_back(w.finish());
    m.num_docs += m.shards.back().num_docs;
    m.num_tokens += m.shards.back().num_tokens;
  }
  m.write();
  return m;
}

// ------------------------------------------------------------------------------------------------ reader

struct ShardedTokens::Mapped {
  ShardInfo info;
  std::unique_ptr<MappedFile> bin, idx;
  const uint8_t* tokens = nullptr;
  const uint64_t* doc_ends = nullptr;  // num_docs entries, strictly increasing, last = num_tokens
};

ShardedTokens::ShardedTokens(const fs::path& dir, const Options& options) : manifest_(Manifest::read(dir)) {
  uint64_t tokens = 0, docs = 0;
  for (const ShardInfo& s : manifest_.shards) {
    auto m = std::make_unique<Mapped>();
    m->info = s;
    m->idx = std::make_unique<MappedFile>(dir / s.idx_file(), "", kMissingShard);
    m->bin = std::make_unique<MappedFile>(dir / s.bin_file(), "", kMissingShard);
    check_file_size(*m->idx, s.idx_bytes, "index");
    check_file_size(*m->bin, s.bin_bytes, "token file");
    read_idx_header(*m->idx, s, manifest_.dtype);
    m->doc_ends = doc_ends_of(*m->idx);
    // Every document end, not only the last: readers index tokens through them (8 bytes per document to read).
    for (uint64_t j = 0, prev = 0; j < s.num_docs; prev = m->doc_ends[j++])
      if (m->doc_ends[j] <= prev || m->doc_ends[j] > s.num_tokens)
        throw Error(m->idx->path().string(), "document " + str(j) + " ends at " + str(m->doc_ends[j]) +
                                                 ", not after the previous end " + str(prev) + " and within the " +
                                                 str(s.num_tokens) + " tokens (corrupted index)");
    if (s.num_docs > 0 && m->doc_ends[s.num_docs - 1] != s.num_tokens)
      throw Error(m->idx->path().string(), "last document ends at " + str(m->doc_ends[s.num_docs - 1]) +
                                               ", not at the shard's " + str(s.num_tokens) + " tokens");
    if (options.verify_checksums) {
      for (const auto& [file, want] : {std::pair{m->bin.get(), s.bin_sha256}, std::pair{m->idx.get(), s.idx_sha256}}) {
        const std::string got = sha256_hex(file->data(), file->size());
        if (got != want)
          throw Error(file->path().string(),
                      "checksum mismatch: sha256 " + got + ", manifest says " + want + " (corrupted or modified)");
      }
    }
    m->tokens = m->bin->data();
    m->bin->advise_random();
    token_begin_.push_back(tokens);
    doc_begin_.push_back(docs);
    tokens += s.num_tokens;
    docs += s.num_docs;
    shards_.push_back(std::move(m));
  }
  token_begin_.push_back(tokens);
  doc_begin_.push_back(docs);
}

ShardedTokens::~ShardedTokens() = default;

void ShardedTokens::copy_tokens(uint64_t start, uint64_t n, int64_t* out) const {
  if (start + n > num_tokens() || start + n < start)
    throw std::out_of_range("ShardedTokens::copy_tokens: range beyond the stream");
  // First shard holding `start` (shards may be empty: take the last shard whose begin ≤ start and not empty).
  size_t k = std::upper_bound(token_begin_.begin(), token_begin_.end(), start) - token_begin_.begin() - 1;
  const uint64_t width = dtype_bytes(manifest_.dtype);
  while (n > 0) {
    const Mapped& m = *shards_[k];
    const uint64_t local = start - token_begin_[k];
    if (local >= m.info.num_tokens) {
      ++k;
      continue;
    }
    const uint64_t take = std::min(n, m.info.num_tokens - local);
    const uint8_t* src = m.tokens + local * width;
    const int64_t mx = manifest_.dtype == TokenDtype::kUInt16
                           ? convert_max(reinterpret_cast<const uint16_t*>(src), take, out)
                           : convert_max(reinterpret_cast<const uint32_t*>(src), take, out);
    if (mx >= manifest_.vocab_size) {
      const uint64_t at = local + first_at_least(src, manifest_.dtype, take, manifest_.vocab_size);
      throw Error(m.bin->path().string(), "token id " + std::to_string(out[at - local]) + " at token " + str(at) +
                                              " is not below vocab_size " + std::to_string(manifest_.vocab_size) +
                                              " (corrupted shard or wrong manifest)");
    }
    out += take;
    start += take;
    n -= take;
    ++k;
  }
}

void ShardedTokens::doc_starts(uint64_t start, uint64_t n, bool* out) const {
  if (start + n > num_tokens() || start + n < start)
    throw std::out_of_range("ShardedTokens::doc_starts: range beyond the stream");
  std::fill(out, out + n, false);
  size_t k = std::upper_bound(token_begin_.begin(), token_begin_.end(), start) - token_begin_.begin() - 1;
  const uint64_t end = start + n;
  for (; k < shards_.size() && token_begin_[k] < end; ++k) {
    const Mapped& m = *shards_[k];
    if (m.info.num_tokens == 0) continue;
    const uint64_t base = token_begin_[k];
    const uint64_t lo = std::max(start, base) - base, hi = std::min(end, base + m.info.num_tokens) - base;
    if (lo == 0) out[base - start] = true;  // a shard starts with a document
    // Document j+1 starts where document j ends: positions doc_ends[j] in [max(lo,1), hi), below num_tokens.
    const uint64_t* de = m.doc_ends;
    const uint64_t* it = std::lower_bound(de, de + m.info.num_docs, std::max<uint64_t>(lo, 1));
    for (; it != de + m.info.num_docs && *it < hi; ++it) out[base + *it - start] = true;
  }
}

std::vector<int64_t> ShardedTokens::document(uint64_t d) const {
  if (d >= num_docs()) throw std::out_of_range("ShardedTokens::document: index beyond the stream");
  const size_t k = std::upper_bound(doc_begin_.begin(), doc_begin_.end(), d) - doc_begin_.begin() - 1;
  // Skip empty shards sharing the same doc_begin.
  size_t s = k;
  while (shards_[s]->info.num_docs == 0) ++s;
  const Mapped& m = *shards_[s];
  const uint64_t j = d - doc_begin_[s];
  const uint64_t b = j == 0 ? 0 : m.doc_ends[j - 1], e = m.doc_ends[j];
  std::vector<int64_t> out(e - b);
  copy_tokens(token_begin_[s] + b, e - b, out.data());
  return out;
}

// ------------------------------------------------------------------------------------------------ check

CheckSummary check_dataset(const fs::path& dir, const CheckOptions& options) {
  ShardedTokens::Options open_options;
  open_options.verify_checksums = options.checksums;
  const ShardedTokens data(dir, open_options);  // files present, sizes, headers, (checksums)
  const Manifest& m = data.manifest();
  CheckSummary sum;
  sum.shards = m.shards.size();
  sum.docs = m.num_docs;
  sum.tokens = m.num_tokens;
  sum.min_doc_tokens = std::numeric_limits<uint64_t>::max();
  for (const ShardInfo& s : m.shards) {
    sum.bytes += s.bin_bytes + s.idx_bytes;
    sum.max_token_id = std::max(sum.max_token_id, s.max_token_id);
  }
  if (options.scan_tokens) {
    sum.max_token_id = -1;
    for (const ShardInfo& s : m.shards) {
      const MappedFile bin(dir / s.bin_file(), "", kMissingShard), idx(dir / s.idx_file(), "", kMissingShard);
      // Document offsets: strictly increasing (no empty document), the last one = the token count.
      const uint64_t* de = doc_ends_of(idx);
      uint64_t prev = 0;
      for (uint64_t j = 0; j < s.num_docs; ++j) {
        if (de[j] <= prev)
          throw Error(idx.path().string(), "document " + str(j) + " ends at " + str(de[j]) +
                                               ", not after the previous end " + str(prev) + " (corrupted index)");
        sum.min_doc_tokens = std::min(sum.min_doc_tokens, de[j] - prev);
        sum.max_doc_tokens = std::max(sum.max_doc_tokens, de[j] - prev);
        prev = de[j];
      }
      const int64_t mx = m.dtype == TokenDtype::kUInt16
                             ? scan_max(reinterpret_cast<const uint16_t*>(bin.data()), s.num_tokens)
                             : scan_max(reinterpret_cast<const uint32_t*>(bin.data()), s.num_tokens);
      if (mx >= m.vocab_size) {
        const uint64_t at = first_at_least(bin.data(), m.dtype, s.num_tokens, m.vocab_size);
        throw Error(bin.path().string(), "token id " + std::to_string(mx) + " (first bad id at token " + str(at) +
                                             ") is not below vocab_size " + std::to_string(m.vocab_size));
      }
      if (mx != s.max_token_id)
        throw Error(bin.path().string(), "largest token id is " + std::to_string(mx) + " but the manifest says " +
                                             std::to_string(s.max_token_id));
      sum.max_token_id = std::max(sum.max_token_id, mx);
    }
  }
  if (sum.min_doc_tokens == std::numeric_limits<uint64_t>::max()) sum.min_doc_tokens = 0;
  return sum;
}

// ------------------------------------------------------------------------------------------------ compatibility

void check_compatible(const Manifest& manifest, const ModelConfig& config, const std::string& model_source,
                      const fs::path& tokenizer_dir) {
  const std::string data = (manifest.dir / kManifestName).string();
  if (manifest.vocab_size > config.vocab_size)
    throw Error(data, "tokenizer vocabulary of " + std::to_string(manifest.vocab_size) +
                          " ids does not fit the model " + model_source + " (vocab_size " +
                          std::to_string(config.vocab_size) + "): prepared with another tokenizer?");
  if (manifest.tokenizer.add_bos && config.bos_token_id && *manifest.tokenizer.bos_token_id != *config.bos_token_id)
    throw Error(data, "documents start with BOS id " + std::to_string(*manifest.tokenizer.bos_token_id) +
                          " but the model " + model_source + " has bos_token_id " +
                          std::to_string(*config.bos_token_id));
  if (!config.eos_token_ids.empty() && std::find(config.eos_token_ids.begin(), config.eos_token_ids.end(),
                                                 manifest.tokenizer.eos_token_id) == config.eos_token_ids.end())
    throw Error(data, "documents end with EOS id " + std::to_string(manifest.tokenizer.eos_token_id) +
                          " but the model " + model_source + " has eos_token_id " +
                          std::to_string(config.eos_token_ids.front()));
  if (tokenizer_dir.empty()) return;
  size_t compared = 0;
  for (const auto& [name, want] : manifest.tokenizer.files) {
    const fs::path f = tokenizer_dir / name;
    std::error_code ec;
    if (!fs::is_regular_file(f, ec)) continue;
    const std::string got = sha256_file(f);
    if (got != want)
      throw Error(f.string(), "tokenizer differs from the one " + manifest.dir.string() +
                                  " was prepared with (sha256 " + got.substr(0, 12) + "…, manifest says " +
                                  want.substr(0, 12) + "…)");
    ++compared;
  }
  if (compared == 0)
    spdlog::warn("{}: no tokenizer file to compare with the data's ({}); checked vocabulary and special tokens only",
                 tokenizer_dir.string(), manifest.dir.string());
}

void check_compatible(const Manifest& manifest, const fs::path& model) {
  std::error_code ec;
  if (fs::is_directory(model, ec)) {
    const fs::path cfg = model / "config.json";
    if (!fs::exists(cfg, ec)) throw Error(model.string(), "no config.json in the model folder");
    check_compatible(manifest, read_model_config(cfg), model.string(), model);
    return;
  }
  // llama2.c .bin: the header's vocab size; BOS 1 / EOS 2 (the llama2.c tokenizer).
  std::ifstream in(model, std::ios::binary);
  if (!in) throw Error(model.string(), "cannot open the model (not a folder or a readable file)");
  int32_t header[7];
  if (!in.read(reinterpret_cast<char*>(header), sizeof(header)))
    throw Error(model.string(), "too short for a llama2.c checkpoint header");
  ModelConfig config;
  config.vocab_size = std::abs(header[5]);
  config.bos_token_id = 1;
  config.eos_token_ids = {2};
  check_compatible(manifest, config, model.string());
}

}  // namespace supra::data
