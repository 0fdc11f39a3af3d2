// The stages of a tokenizer.json around its model, as the `tokenizers` library runs them: normalizers (Prepend,
// Replace, Sequence), pre-tokenizers (ByteLevel, Split, Digits, Metaspace, Sequence) and decoders (ByteLevel,
// Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence). Each is parsed from its JSON object; a type supra does
// not implement is refused with an UnsupportedTokenizer error naming the file and the feature.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace supra::tokenizer_detail {

// A piece of the text on its way to the model: either an added token already resolved to `id`, or text still to be
// split and tokenized. `at_start`: the piece begins at offset 0 of the original text (Metaspace's "first" scheme).
struct Piece {
  std::string text;
  int64_t id = -1;
  bool at_start = false;
};
using Pieces = std::vector<Piece>;

// Replaces every piece without an id by the non-empty pieces `split(piece)` returns (PreTokenizedString::split).
template <class F>
void split_pieces(Pieces& pieces, F&& split) {
  Pieces out;
  out.reserve(pieces.size());
  for (Piece& p : pieces) {
    if (p.id >= 0) {
      out.push_back(std::move(p));
      continue;
    }
    for (Piece& q : split(p))
      if (!q.text.empty()) out.push_back(std::move(q));
  }
  pieces = std::move(out);
}

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits (and may rewrite) every piece without an id; empty pieces are dropped.
  virtual void pre_tokenize(Pieces& pieces) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// `j` null -> nullptr (no stage). `source`: the tokenizer.json path, for errors.
std::unique_ptr<Normalizer> parse_normalizer(const nlohmann::json& j, const std::string& source);
std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const nlohmann::json& j, const std::string& source);
std::unique_ptr<Decoder> parse_decoder(const nlohmann::json& j, const std::string& source);

}  // namespace supra::tokenizer_detail
