// Normalizers, pre-tokenizers and decoders of tokenizer.json, after tokenizers/src/{normalizers,pre_tokenizers,
// decoders} and NormalizedString::split (the five split behaviours).
#include "core/tokenizer/hf_pipeline.h"

#include <algorithm>
#include <optional>

#include "core/tokenizer/impl.h"
#include "core/tokenizer/text.h"

namespace supra::tokenizer_detail {
namespace {

using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------- JSON access

const json& field(const json& j, const char* key, const std::string& what, const std::string& source) {
  if (!j.is_object() || !j.contains(key)) throw Error(source, what + " has no '" + key + "'");
  return j.at(key);
}

std::string str_field(const json& j, const char* key, const std::string& what, const std::string& source) {
  const json& v = field(j, key, what, source);
  if (!v.is_string()) throw Error(source, what + "." + key + " must be a string");
  return v.get<std::string>();
}

bool bool_field(const json& j, const char* key, bool fallback, const std::string& what, const std::string& source) {
  if (!j.contains(key) || j.at(key).is_null()) return fallback;
  if (!j.at(key).is_boolean()) throw Error(source, what + "." + key + " must be true or false");
  return j.at(key).get<bool>();
}

std::string type_of(const json& j, const std::string& what, const std::string& source) {
  if (!j.is_object()) throw Error(source, what + " must be an object or null");
  return str_field(j, "type", what, source);
}

// {"String": "x"} or {"Regex": "..."} -> a regex (literal strings escaped).
Regex pattern_field(const json& j, const std::string& what, const std::string& source) {
  const json& p = field(j, "pattern", what, source);
  if (p.is_object() && p.contains("String") && p.at("String").is_string())
    return Regex(Regex::escape(p.at("String").get<std::string>()), source);
  if (p.is_object() && p.contains("Regex") && p.at("Regex").is_string())
    return Regex(p.at("Regex").get<std::string>(), source);
  throw Error(source, what + ".pattern must be {\"String\": ...} or {\"Regex\": ...}");
}

// A single character (Metaspace replacement, Strip content).
std::string char_field(const json& j, const char* key, const std::string& what, const std::string& source) {
  const std::string s = str_field(j, key, what, source);
  if (s.empty() || !utf8_valid(s) || utf8_chars(s).size() != 1)
    throw Error(source, what + "." + key + " must be a single character");
  return s;
}

[[noreturn]] void unsupported(const std::string& source, const std::string& what, const std::string& type) {
  throw UnsupportedTokenizer(source, "unsupported " + what + " type '" + type + "'");
}

// ---------------------------------------------------------------------------------------------- splitting

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Behavior parse_behavior(const json& j, const std::string& source) {
  const std::string b = str_field(j, "behavior", "pre_tokenizer Split", source);
  if (b == "Removed") return Behavior::Removed;
  if (b == "Isolated") return Behavior::Isolated;
  if (b == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::MergedWithNext;
  if (b == "Contiguous") return Behavior::Contiguous;
  throw Error(source, "pre_tokenizer Split: unknown behavior '" + b + "'");
}

struct Span {
  size_t start, end;
  bool is_match;
};

// The matches of `re` and the text between them, covering `text` (tokenizers' Pattern::find_matches).
std::vector<Span> find_spans(const Regex& re, std::string_view text, bool invert = false) {
  if (text.empty()) return {{0, 0, invert}};
  std::vector<Span> spans;
  size_t prev = 0;
  for (const auto& [s, e] : re.find_all(text)) {
    if (prev != s) spans.push_back({prev, s, invert});
    spans.push_back({s, e, !invert});
    prev = e;
  }
  if (prev != text.size()) spans.push_back({prev, text.size(), invert});
  return spans;
}

// NormalizedString::split: the kept ranges for a behaviour.
std::vector<std::pair<size_t, size_t>> apply_behavior(const std::vector<Span>& spans, Behavior behavior) {
  std::vector<std::pair<size_t, size_t>> out;
  bool previous_match = false;
  switch (behavior) {
    case Behavior::Isolated:
      for (const Span& s : spans) out.emplace_back(s.start, s.end);
      break;
    case Behavior::Removed:
      for (const Span& s : spans)
        if (!s.is_match) out.emplace_back(s.start, s.end);
      break;
    case Behavior::Contiguous:
      for (const Span& s : spans) {
        if (s.is_match == previous_match && !out.empty())
          out.back().second = s.end;
        else
          out.emplace_back(s.start, s.end);
        previous_match = s.is_match;
      }
      break;
    case Behavior::MergedWithPrevious:
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !out.empty())
          out.back().second = s.end;
        else
          out.emplace_back(s.start, s.end);
        previous_match = s.is_match;
      }
      break;
    case Behavior::MergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty())
          out.back().first = it->start;
        else
          out.emplace_back(it->start, it->end);
        previous_match = it->is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
  }
  return out;
}

Pieces slice(const Piece& p, const std::vector<std::pair<size_t, size_t>>& ranges) {
  Pieces out;
  out.reserve(ranges.size());
  for (const auto& [s, e] : ranges) out.push_back({p.text.substr(s, e - s), -1, p.at_start && s == 0});
  return out;
}

std::string replace_all(const Regex& re, const std::string& text, const std::string& content) {
  std::string out;
  for (const Span& s : find_spans(re, text)) {
    if (s.is_match)
      out += content;
    else
      out.append(text, s.start, s.end - s.start);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------- normalizers

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string p) : prepend_(std::move(p)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prepend_);
  }

 private:
  std::string prepend_;
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(Regex re, std::string content) : re_(std::move(re)), content_(std::move(content)) {}
  void normalize(std::string& text) const override { text = replace_all(re_, text, content_); }

 private:
  Regex re_;
  std::string content_;
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> s) : stages_(std::move(s)) {}
  void normalize(std::string& text) const override {
    for (const auto& s : stages_) s->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> stages_;
};

// ---------------------------------------------------------------------------------------------- pre-tokenizers

const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex, const std::string& source)
      : add_prefix_space_(add_prefix_space), use_regex_(use_regex), re_(kGpt2Pattern, source) {}
  void pre_tokenize(Pieces& pieces) const override {
    split_pieces(pieces, [&](Piece& p) {
      if (add_prefix_space_ && (p.text.empty() || p.text[0] != ' ')) p.text.insert(0, " ");
      if (!use_regex_) return Pieces{p};
      return slice(p, apply_behavior(find_spans(re_, p.text), Behavior::Isolated));
    });
    const auto& map = byte_to_unicode();
    for (Piece& p : pieces) {
      if (p.id >= 0) continue;
      std::string mapped;
      mapped.reserve(p.text.size() * 2);
      for (unsigned char b : p.text) mapped += map[b];
      p.text = std::move(mapped);
    }
  }

 private:
  bool add_prefix_space_, use_regex_;
  Regex re_;
};

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(Regex re, Behavior behavior, bool invert)
      : re_(std::move(re)), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(Pieces& pieces) const override {
    split_pieces(pieces,
                 [&](Piece& p) { return slice(p, apply_behavior(find_spans(re_, p.text, invert_), behavior_)); });
  }

 private:
  Regex re_;
  Behavior behavior_;
  bool invert_;
};

enum class PrependScheme { Always, First, Never };

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split, const std::string& source)
      : replacement_(std::move(replacement)),
        scheme_(scheme),
        split_(split),
        space_(" ", source),
        replacement_re_(Regex::escape(replacement_), source) {}
  void pre_tokenize(Pieces& pieces) const override {
    split_pieces(pieces, [&](Piece& p) {
      p.text = replace_all(space_, p.text, replacement_);
      const bool starts = p.text.rfind(replacement_, 0) == 0;
      if (!starts && (scheme_ == PrependScheme::Always || (scheme_ == PrependScheme::First && p.at_start)))
        p.text.insert(0, replacement_);
      if (!split_) return Pieces{p};
      return slice(p, apply_behavior(find_spans(replacement_re_, p.text), Behavior::MergedWithNext));
    });
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
  Regex space_, replacement_re_;
};

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> s) : stages_(std::move(s)) {}
  void pre_tokenize(Pieces& pieces) const override {
    for (const auto& s : stages_) s->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> stages_;
};

PrependScheme parse_prepend_scheme(const json& j, const std::string& what, const std::string& source) {
  PrependScheme scheme = PrependScheme::Always;
  if (j.contains("prepend_scheme") && !j.at("prepend_scheme").is_null()) {
    const std::string s = str_field(j, "prepend_scheme", what, source);
    if (s == "always")
      scheme = PrependScheme::Always;
    else if (s == "first")
      scheme = PrependScheme::First;
    else if (s == "never")
      scheme = PrependScheme::Never;
    else
      throw Error(source, what + ": unknown prepend_scheme '" + s + "'");
  }
  if (!bool_field(j, "add_prefix_space", true, what, source)) scheme = PrependScheme::Never;
  return scheme;
}

// ---------------------------------------------------------------------------------------------- decoders

class ByteLevelDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const std::string& t : tokens) {
      std::string mapped;
      bool ok = true;
      for (size_t i = 0; i < t.size() && ok; i += utf8_len(static_cast<unsigned char>(t[i]))) {
        const int b = unicode_to_byte(utf8_decode(t, i));
        if (b < 0)
          ok = false;
        else
          mapped += static_cast<char>(b);
      }
      bytes += ok ? mapped : t;  // a token outside the byte alphabet (an added token) is kept as it is
    }
    tokens.assign(1, utf8_lossy(bytes));
  }
};

class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, PrependScheme scheme)
      : replacement_(std::move(replacement)), scheme_(scheme) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      for (std::string_view c : utf8_chars(tokens[i])) {
        if (c == replacement_) {
          if (!(i == 0 && scheme_ != PrependScheme::Never)) out += ' ';
        } else {
          out += c;
        }
      }
      tokens[i] = std::move(out);
    }
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(Regex re, std::string content) : re_(std::move(re)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) t = replace_all(re_, t, content_);
  }

 private:
  Regex re_;
  std::string content_;
};

class ByteFallbackDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string pending;  // consecutive <0xXX> bytes
    auto flush = [&] {
      if (pending.empty()) return;
      if (utf8_valid(pending))
        out.push_back(pending);
      else
        out.insert(out.end(), pending.size(), std::string(kReplacementChar));
      pending.clear();
    };
    for (std::string& t : tokens) {
      if (const auto b = byte_token(t)) {
        pending += static_cast<char>(*b);
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens = std::move(out);
  }

 private:
  static std::optional<int> byte_token(const std::string& t) {
    if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return std::nullopt;
    int v = 0;
    for (int k = 3; k < 5; ++k) {
      const char c = t[k];
      const int d = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
      if (d < 0) return std::nullopt;
      v = v * 16 + d;
    }
    return v;
  }
};

class FuseDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, all);
  }
};

class StripDecoder final : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) {
      const auto chars = utf8_chars(t);
      size_t start_cut = 0, stop_cut = chars.size();
      for (size_t i = 0; i < std::min(start_, chars.size()); ++i) {
        if (chars[i] != content_) break;
        start_cut = i + 1;
      }
      for (size_t i = 0; i < stop_ && i < chars.size(); ++i) {
        const size_t index = chars.size() - i - 1;
        if (chars[index] != content_) break;
        stop_cut = index;
      }
      std::string out;
      for (size_t i = start_cut; i < stop_cut; ++i) out += chars[i];
      t = std::move(out);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> s) : stages_(std::move(s)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& s : stages_) s->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> stages_;
};

size_t count_field(const json& j, const char* key, const std::string& what, const std::string& source) {
  const json& v = field(j, key, what, source);
  if (!v.is_number_integer() || v.get<int64_t>() < 0) throw Error(source, what + "." + key + " must be a count");
  return v.get<size_t>();
}

const json& array_field(const json& j, const char* key, const std::string& what, const std::string& source) {
  const json& v = field(j, key, what, source);
  if (!v.is_array()) throw Error(source, what + "." + key + " must be an array");
  return v;
}

}  // namespace

std::unique_ptr<Normalizer> parse_normalizer(const json& j, const std::string& source) {
  if (j.is_null()) return nullptr;
  const std::string type = type_of(j, "normalizer", source);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> stages;
    for (const json& s : array_field(j, "normalizers", "normalizer Sequence", source))
      if (auto n = parse_normalizer(s, source)) stages.push_back(std::move(n));
    return std::make_unique<SequenceNormalizer>(std::move(stages));
  }
  if (type == "Prepend")
    return std::make_unique<PrependNormalizer>(str_field(j, "prepend", "normalizer Prepend", source));
  if (type == "Replace")
    return std::make_unique<ReplaceNormalizer>(pattern_field(j, "normalizer Replace", source),
                                               str_field(j, "content", "normalizer Replace", source));
  unsupported(source, "normalizer", type);  // NFC, NFKC, Lowercase, BertNormalizer, Precompiled, ...
}

std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const json& j, const std::string& source) {
  if (j.is_null()) return nullptr;
  const std::string type = type_of(j, "pre_tokenizer", source);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> stages;
    for (const json& s : array_field(j, "pretokenizers", "pre_tokenizer Sequence", source))
      if (auto p = parse_pre_tokenizer(s, source)) stages.push_back(std::move(p));
    return std::make_unique<SequencePreTokenizer>(std::move(stages));
  }
  if (type == "ByteLevel") {
    const std::string what = "pre_tokenizer ByteLevel";
    return std::make_unique<ByteLevelPreTokenizer>(bool_field(j, "add_prefix_space", true, what, source),
                                                   bool_field(j, "use_regex", true, what, source), source);
  }
  if (type == "Split")
    return std::make_unique<SplitPreTokenizer>(pattern_field(j, "pre_tokenizer Split", source),
                                               parse_behavior(j, source),
                                               bool_field(j, "invert", false, "pre_tokenizer Split", source));
  if (type == "Digits") {
    // char::is_numeric (general categories Nd, Nl, No) = \p{N}; each digit isolated, or runs of digits.
    const bool individual = bool_field(j, "individual_digits", false, "pre_tokenizer Digits", source);
    return std::make_unique<SplitPreTokenizer>(Regex(R"(\p{N})", source),
                                               individual ? Behavior::Isolated : Behavior::Contiguous, false);
  }
  if (type == "Metaspace") {
    const std::string what = "pre_tokenizer Metaspace";
    return std::make_unique<MetaspacePreTokenizer>(char_field(j, "replacement", what, source),
                                                   parse_prepend_scheme(j, what, source),
                                                   bool_field(j, "split", true, what, source), source);
  }
  unsupported(source, "pre_tokenizer", type);  // Whitespace, BertPreTokenizer, Punctuation, UnicodeScripts, ...
}

std::unique_ptr<Decoder> parse_decoder(const json& j, const std::string& source) {
  if (j.is_null()) return nullptr;
  const std::string type = type_of(j, "decoder", source);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> stages;
    for (const json& s : array_field(j, "decoders", "decoder Sequence", source))
      if (auto d = parse_decoder(s, source)) stages.push_back(std::move(d));
    return std::make_unique<SequenceDecoder>(std::move(stages));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Metaspace") {
    const std::string what = "decoder Metaspace";
    return std::make_unique<MetaspaceDecoder>(char_field(j, "replacement", what, source),
                                              parse_prepend_scheme(j, what, source));
  }
  if (type == "Replace")
    return std::make_unique<ReplaceDecoder>(pattern_field(j, "decoder Replace", source),
                                            str_field(j, "content", "decoder Replace", source));
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip")
    return std::make_unique<StripDecoder>(char_field(j, "content", "decoder Strip", source),
                                          count_field(j, "start", "decoder Strip", source),
                                          count_field(j, "stop", "decoder Strip", source));
  unsupported(source, "decoder", type);  // WordPiece, BPEDecoder, CTC, ...
}

}  // namespace supra::tokenizer_detail
