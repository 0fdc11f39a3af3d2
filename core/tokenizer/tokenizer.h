// Text <-> token ids for a model folder, as the model's own tokenizer library does it: SentencePiece
// `tokenizer.model` (Llama-2, Mistral) through the SentencePiece C++ library, and Hugging Face `tokenizer.json`
// BPE (byte-level: GPT-2, SmolLM2, Llama-3; SentencePiece-style with Metaspace / byte fallback: Llama-2, Mistral)
// implemented here after the `tokenizers` library. TokenStreamer turns ids arriving one by one into text.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace supra {

// Text <-> token ids for a model folder. Implementations: SentencePiece `tokenizer.model` (Llama-2, Mistral) and
// Hugging Face `tokenizer.json` (byte-level BPE: SmolLM2, Llama-3, GPT-2 style; also HF's SentencePiece-style BPE
// with the Metaspace/byte-fallback model).
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Ids of `text`, without BOS/EOS (callers add BOS as the model expects).
  virtual std::vector<int64_t> encode(const std::string& text) const = 0;
  // Text of `ids` (special tokens such as BOS/EOS are skipped), as the library's decode would produce.
  virtual std::string decode(const std::vector<int64_t>& ids) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual std::optional<int64_t> bos_id() const = 0;
  virtual std::optional<int64_t> eos_id() const = 0;
  // The id that the Hugging Face library's default encode (add_special_tokens=True) puts before the text, if any:
  // tokenizer.json's TemplateProcessing prefix, or a SentencePiece tokenizer.model's BOS (LlamaTokenizer);
  // tokenizer_config.json's add_bos_token overrides either. lm-evaluation-harness conditions on it.
  virtual std::optional<int64_t> encode_prefix() const = 0;
  virtual std::string name() const = 0;  // e.g. "sentencepiece:/path/tokenizer.model"
};

// Loads the tokenizer of a model folder: tokenizer.json preferred, else tokenizer.model (also when tokenizer.json
// uses a feature supra does not implement and tokenizer.model is there); BOS/EOS from tokenizer_config.json /
// config.json / the tokenizer itself. A folder without one -> supra::Error naming the folder ("no tokenizer.json or
// tokenizer.model in DIR"). A malformed file -> supra::Error naming the file and the problem.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_dir);

// Streams text while ids arrive one by one: push(id) returns the newly completed text (holds back incomplete UTF-8
// and pieces whose text depends on what follows: byte-fallback pieces, skipped special tokens); finish() returns
// what was held back (an incomplete UTF-8 tail as U+FFFD) and resets the streamer. The concatenated output equals
// tokenizer.decode(all ids). The algorithm is the `tokenizers` library's DecodeStream: decode a short window of ids
// (the last emitted chunk and what came since) and emit what grew past the chunk's text.
class TokenStreamer {
 public:
  explicit TokenStreamer(const Tokenizer& t);
  std::string push(int64_t id);
  std::string finish();

 private:
  const Tokenizer& tok_;
  std::vector<int64_t> ids_;  // the window: ids of the last emitted chunk, then the ids not emitted yet
  std::string prefix_;        // decode of ids_[0, prefix_index_): already emitted
  size_t prefix_index_ = 0;
};

}  // namespace supra
