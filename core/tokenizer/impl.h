// Internal to the tokenizer implementation (core/tokenizer/*.cpp): the concrete tokenizers' common base, their
// factories, and the error that lets load_tokenizer fall back from tokenizer.json to tokenizer.model.
#pragma once
#include <optional>
#include <string>

#include "core/base/error.h"
#include "core/tokenizer/tokenizer.h"

namespace supra::tokenizer_detail {

// A tokenizer whose BOS/EOS are settled by load_tokenizer after construction.
class TokenizerBase : public Tokenizer {
 public:
  std::optional<int64_t> bos_id() const override { return bos_; }
  std::optional<int64_t> eos_id() const override { return eos_; }
  std::optional<int64_t> encode_prefix() const override { return prefix_; }
  // The id of a token given by its text (an added/special token or a vocabulary entry), if there is one.
  virtual std::optional<int64_t> token_to_id(const std::string& token) const = 0;
  // BOS/EOS that the tokenizer file itself names (SentencePiece's bos_id, a post-processor template), if any.
  virtual std::optional<int64_t> own_bos() const { return std::nullopt; }
  virtual std::optional<int64_t> own_eos() const { return std::nullopt; }
  void set_special(std::optional<int64_t> bos, std::optional<int64_t> eos, std::optional<int64_t> prefix) {
    bos_ = bos, eos_ = eos, prefix_ = prefix;
  }
  // Whether TokenStreamer must wait for the next id before emitting text after `id`: the decoded text of what came
  // before may still change (a byte-fallback piece whose run decodes all-or-nothing, a skipped special token
  // between byte pieces).
  virtual bool stream_hold(int64_t id) const { return false; }

 private:
  std::optional<int64_t> bos_, eos_, prefix_;
};

// tokenizer.json uses a feature supra does not implement (a supra::Error naming the file and the feature).
class UnsupportedTokenizer : public Error {
 public:
  using Error::Error;
};

std::unique_ptr<TokenizerBase> load_sentencepiece(const std::string& path);  // tokenizer.model
std::unique_ptr<TokenizerBase> load_hf_tokenizer(const std::string& path);   // tokenizer.json

}  // namespace supra::tokenizer_detail
