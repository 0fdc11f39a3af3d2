// SentencePiece `tokenizer.model` (Llama-2, Mistral) through the SentencePiece C++ library: encode/decode exactly
// as sentencepiece.SentencePieceProcessor does (no BOS/EOS added; control tokens decode to nothing).
#include <sentencepiece_processor.h>

#include "core/tokenizer/impl.h"

namespace supra::tokenizer_detail {
namespace {

class SentencePieceTokenizer final : public TokenizerBase {
 public:
  explicit SentencePieceTokenizer(const std::string& path) : path_(path) {
    const auto status = sp_.Load(path);
    if (!status.ok()) throw Error(path, "not a readable SentencePiece model: " + status.ToString());
    if (sp_.GetPieceSize() <= 0) throw Error(path, "SentencePiece model with an empty vocabulary");
  }

  std::vector<int64_t> encode(const std::string& text) const override {
    std::vector<int> ids;
    const auto status = sp_.Encode(text, &ids);
    if (!status.ok()) throw Error(path_, "SentencePiece encode failed: " + status.ToString());
    return {ids.begin(), ids.end()};
  }

  std::string decode(const std::vector<int64_t>& ids) const override {
    std::vector<int> in;
    in.reserve(ids.size());
    const int64_t n = sp_.GetPieceSize();
    for (int64_t id : ids)
      if (id >= 0 && id < n) in.push_back(static_cast<int>(id));  // unknown ids are skipped, as HF's decode does
    std::string text;
    const auto status = sp_.Decode(in, &text);
    if (!status.ok()) throw Error(path_, "SentencePiece decode failed: " + status.ToString());
    return text;
  }

  int64_t vocab_size() const override { return sp_.GetPieceSize(); }
  std::string name() const override { return "sentencepiece:" + path_; }

  std::optional<int64_t> token_to_id(const std::string& token) const override {
    const int id = sp_.PieceToId(token);
    // PieceToId answers unk_id for unknown pieces: only the unk piece itself maps to it.
    if (id < 0 || (id == sp_.unk_id() && sp_.IdToPiece(id) != token)) return std::nullopt;
    return id;
  }
  bool stream_hold(int64_t id) const override {
    return id >= 0 && id < sp_.GetPieceSize() &&
           (sp_.IsByte(static_cast<int>(id)) || sp_.IsControl(static_cast<int>(id)));
  }
  std::optional<int64_t> own_bos() const override { return valid(sp_.bos_id()); }
  std::optional<int64_t> own_eos() const override { return valid(sp_.eos_id()); }

 private:
  std::optional<int64_t> valid(int id) const {
    return id >= 0 && id < sp_.GetPieceSize() ? std::optional<int64_t>(id) : std::nullopt;
  }

  std::string path_;
  sentencepiece::SentencePieceProcessor sp_;
};

}  // namespace

std::unique_ptr<TokenizerBase> load_sentencepiece(const std::string& path) {
  return std::make_unique<SentencePieceTokenizer>(path);
}

}  // namespace supra::tokenizer_detail
