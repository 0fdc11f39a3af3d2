// The BPE model of a tokenizer.json ("model": {"type": "BPE", ...}) as the `tokenizers` library runs it: characters
// of a pre-tokenized word looked up in the vocabulary (byte fallback <0xXX> / unk for unknown ones), then merges
// applied lowest rank first (leftmost on ties) until none applies.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

namespace supra::tokenizer_detail {

class BpeModel {
 public:
  // Parses the "model" object of tokenizer.json; errors name `source` (unsupported dropout, merges naming tokens
  // missing from the vocabulary, ...).
  BpeModel(const nlohmann::json& model, const std::string& source);

  void tokenize(const std::string& word, std::vector<int64_t>& out) const;  // appends the ids of one word
  std::optional<int64_t> token_to_id(const std::string& token) const;
  const std::string* id_to_token(int64_t id) const;  // nullptr when unknown
  int64_t max_id() const { return max_id_; }
  size_t size() const { return vocab_.size(); }  // entries in the vocabulary

 private:
  struct Merge {
    uint32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<int32_t, std::string> vocab_r_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::optional<std::string> unk_token_, continuing_subword_prefix_, end_of_word_suffix_;
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
  std::array<int32_t, 256> byte_ids_{};  // ids of <0x00>..<0xFF>, -1 when absent
  int64_t max_id_ = -1;
  std::string source_;
};

}  // namespace supra::tokenizer_detail
