// Hugging Face tokenizer.json with a BPE model, run as the `tokenizers` library does (TokenizerImpl::encode without
// special tokens, decode with skip_special_tokens): added tokens split out first (leftmost-longest, with their
// single_word / lstrip / rstrip / normalized options), normalizer, pre-tokenizer, BPE, and the decoder chain.
#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "core/tokenizer/bpe.h"
#include "core/tokenizer/hf_pipeline.h"
#include "core/tokenizer/impl.h"
#include "core/tokenizer/text.h"

namespace supra::tokenizer_detail {
namespace {

using json = nlohmann::json;

struct AddedToken {
  std::string content;  // as written in added_tokens
  std::string pattern;  // what is matched: content, or its normalized form for normalized tokens
  int64_t id = -1;
  bool single_word = false, lstrip = false, rstrip = false, normalized = false, special = false;
};

// Finds added tokens in text, leftmost-longest like the library's Aho-Corasick matcher.
class AddedMatcher {
 public:
  AddedMatcher(const std::vector<AddedToken>& tokens, bool normalized, const std::string& source)
      : tokens_(tokens), word_start_(R"(\w)", source) {
    for (size_t i = 0; i < tokens.size(); ++i)
      if (tokens[i].normalized == normalized && !tokens[i].pattern.empty())
        by_first_[static_cast<unsigned char>(tokens[i].pattern[0])].push_back(i);
    for (auto& [b, list] : by_first_)
      std::stable_sort(list.begin(), list.end(),
                       [&](size_t x, size_t y) { return tokens_[x].pattern.size() > tokens_[y].pattern.size(); });
  }

  bool empty() const { return by_first_.empty(); }

  // AddedVocabulary::find_matches + split_with_indices for one piece.
  Pieces split(const Piece& p) const {
    const std::string& s = p.text;
    Pieces out;
    size_t start_offset = 0;
    for (size_t pos = 0; pos < s.size();) {
      const AddedToken* tok = longest_at(s, pos);
      if (!tok) {
        ++pos;
        continue;
      }
      size_t start = pos, stop = pos + tok->pattern.size();
      pos = stop;
      if (tok->single_word) {
        const bool start_space = start == 0 || !ends_with_word(s, start);
        const bool stop_space = stop == s.size() || !word_start_.matches_at(s, stop);
        if (!start_space || !stop_space) continue;
      }
      if (tok->lstrip) {
        size_t newstart = start;
        while (newstart > 0) {
          size_t k = newstart - 1;
          while (k > 0 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
          if (!is_unicode_space(utf8_decode(s, k))) break;
          newstart = k;
        }
        start = std::max(newstart, start_offset);
      }
      if (tok->rstrip)
        while (stop < s.size() && is_unicode_space(utf8_decode(s, stop)))
          stop += utf8_len(static_cast<unsigned char>(s[stop]));
      if (start_offset < start)
        out.push_back({s.substr(start_offset, start - start_offset), -1, p.at_start && start_offset == 0});
      out.push_back({s.substr(start, stop - start), tok->id, false});
      start_offset = stop;
    }
    if (start_offset < s.size()) out.push_back({s.substr(start_offset), -1, p.at_start && start_offset == 0});
    return out;
  }

 private:
  const AddedToken* longest_at(const std::string& s, size_t pos) const {
    const auto it = by_first_.find(static_cast<unsigned char>(s[pos]));
    if (it == by_first_.end()) return nullptr;
    for (size_t i : it->second)
      if (s.compare(pos, tokens_[i].pattern.size(), tokens_[i].pattern) == 0) return &tokens_[i];
    return nullptr;
  }
  bool ends_with_word(const std::string& s, size_t end) const {
    size_t k = end - 1;
    while (k > 0 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
    return word_start_.matches_at(s, k);  // \w takes one character: what follows `end` does not matter
  }

  const std::vector<AddedToken>& tokens_;
  std::unordered_map<unsigned char, std::vector<size_t>> by_first_;
  Regex word_start_;
};

// The id of a TemplateProcessing item {"SpecialToken": {"id": NAME}} through the template's special_tokens map.
std::optional<int64_t> template_special(const json& post, const json& first_or_last) {
  if (!first_or_last.is_object() || !first_or_last.contains("SpecialToken")) return std::nullopt;
  const json& st = first_or_last.at("SpecialToken");
  if (!st.is_object() || !st.contains("id") || !st.at("id").is_string()) return std::nullopt;
  const std::string name = st.at("id").get<std::string>();
  if (!post.contains("special_tokens") || !post.at("special_tokens").is_object()) return std::nullopt;
  const json& sp = post.at("special_tokens");
  if (!sp.contains(name)) return std::nullopt;
  const json& ids = sp.at(name).value("ids", json());
  if (!ids.is_array() || ids.size() != 1 || !ids[0].is_number_integer()) return std::nullopt;
  return ids[0].get<int64_t>();
}

class HfTokenizer final : public TokenizerBase {
 public:
  HfTokenizer(const json& j, const std::string& path) : path_(path) {
    if (!j.is_object()) throw Error(path, "not a tokenizer.json (the top level is not an object)");
    if (!j.contains("model") || !j.at("model").is_object()) throw Error(path, "no 'model' object");
    const json& model = j.at("model");
    const std::string type = model.value("type", std::string("BPE"));  // older files omit the type of BPE models
    if (type != "BPE")
      throw UnsupportedTokenizer(path, "unsupported model type '" + type + "' (only BPE is implemented)");
    bpe_ = std::make_unique<BpeModel>(model, path);
    normalizer_ = parse_normalizer(j.value("normalizer", json()), path);
    pre_tokenizer_ = parse_pre_tokenizer(j.value("pre_tokenizer", json()), path);
    decoder_ = parse_decoder(j.value("decoder", json()), path);
    parse_added_tokens(j.value("added_tokens", json::array()));
    raw_matcher_ = std::make_unique<AddedMatcher>(added_, false, path);
    normalized_matcher_ = std::make_unique<AddedMatcher>(added_, true, path);
    parse_post_processor(j.value("post_processor", json()));
    max_id_ = bpe_->max_id();
    for (const auto& t : added_) max_id_ = std::max(max_id_, t.id);
  }

  std::vector<int64_t> encode(const std::string& input) const override {
    std::vector<int64_t> ids;
    if (input.empty()) return ids;
    Pieces pieces{{utf8_valid(input) ? input : utf8_lossy(input), -1, true}};
    if (!raw_matcher_->empty()) split_pieces(pieces, [&](Piece& p) { return raw_matcher_->split(p); });
    split_pieces(pieces, [&](Piece& p) {
      if (normalizer_) normalizer_->normalize(p.text);
      return normalized_matcher_->empty() ? Pieces{p} : normalized_matcher_->split(p);
    });
    if (pre_tokenizer_) pre_tokenizer_->pre_tokenize(pieces);
    for (const Piece& p : pieces) {
      if (p.id >= 0)
        ids.push_back(p.id);
      else
        bpe_->tokenize(p.text, ids);
    }
    return ids;
  }

  std::string decode(const std::vector<int64_t>& ids) const override {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int64_t id : ids) {
      const std::string* t = nullptr;
      if (const auto it = added_by_id_.find(id); it != added_by_id_.end())
        t = &added_[it->second].pattern;
      else
        t = bpe_->id_to_token(id);
      if (!t || special_contents_.count(*t)) continue;  // unknown ids and special tokens are skipped
      tokens.push_back(*t);
    }
    if (!decoder_) {
      std::string out;
      for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
      return out;
    }
    decoder_->decode_chain(tokens);
    std::string out;
    for (const auto& t : tokens) out += t;
    return out;
  }

  int64_t vocab_size() const override { return max_id_ + 1; }
  std::string name() const override { return "tokenizer.json:" + path_; }
  std::optional<int64_t> token_to_id(const std::string& token) const override {
    if (const auto k = find_added(token)) return added_[*k].id;
    return bpe_->token_to_id(token);
  }
  bool stream_hold(int64_t id) const override {
    if (const auto it = added_by_id_.find(id); it != added_by_id_.end()) return added_[it->second].special;
    const std::string* t = bpe_->id_to_token(id);
    return !t || (t->size() == 6 && t->compare(0, 3, "<0x") == 0 && t->back() == '>');
  }
  std::optional<int64_t> own_bos() const override { return template_bos_; }
  std::optional<int64_t> own_eos() const override { return template_eos_; }

 private:
  // Ids as the library gives them (AddedVocabulary::add_tokens): a token of the model's vocabulary keeps its id,
  // the others are numbered from the vocabulary's size on, in file order (the ids written in the file agree in
  // files the library saved).
  void parse_added_tokens(const json& list) {
    if (!list.is_array()) throw Error(path_, "added_tokens must be an array");
    int64_t next_id = static_cast<int64_t>(bpe_->size());
    for (size_t i = 0; i < list.size(); ++i) {
      const json& a = list[i];
      const std::string where = "added_tokens[" + std::to_string(i) + "]";
      if (!a.is_object() || !a.contains("id") || !a.at("id").is_number_integer() || a.at("id").get<int64_t>() < 0 ||
          !a.contains("content") || !a.at("content").is_string())
        throw Error(path_, where + " needs an integer 'id' and a string 'content'");
      AddedToken t;
      t.content = a.at("content").get<std::string>();
      if (t.content.empty()) continue;  // ignored by the library
      if (const auto same = find_added(t.content))
        t.id = added_[*same].id;
      else if (const auto in_vocab = bpe_->token_to_id(t.content))
        t.id = *in_vocab;
      else
        t.id = next_id++;
      if (t.id != a.at("id").get<int64_t>())
        spdlog::warn("{}: {} '{}' has id {} in the file but {} as the tokenizers library numbers it; using {}", path_,
                     where, t.content, a.at("id").get<int64_t>(), t.id, t.id);
      auto flag = [&](const char* key, bool fallback) {
        if (!a.contains(key) || a.at(key).is_null()) return fallback;
        if (!a.at(key).is_boolean()) throw Error(path_, where + "." + key + " must be true or false");
        return a.at(key).get<bool>();
      };
      t.special = flag("special", false);
      t.single_word = flag("single_word", false);
      t.lstrip = flag("lstrip", false);
      t.rstrip = flag("rstrip", false);
      t.normalized = flag("normalized", !t.special);
      t.pattern = t.content;
      if (t.normalized && normalizer_) normalizer_->normalize(t.pattern);
      added_by_id_[t.id] = added_by_content_[t.content] = added_.size();
      if (t.special) special_contents_.insert(t.content);
      added_.push_back(std::move(t));
    }
  }

  std::optional<size_t> find_added(const std::string& content) const {
    const auto it = added_by_content_.find(content);
    return it == added_by_content_.end() ? std::nullopt : std::optional<size_t>(it->second);
  }

  void parse_post_processor(const json& post) {
    if (!post.is_object()) return;
    const std::string type = post.value("type", std::string());
    if (type == "Sequence" && post.contains("processors") && post.at("processors").is_array()) {
      for (const json& p : post.at("processors")) parse_post_processor(p);
      return;
    }
    if (type != "TemplateProcessing" || !post.contains("single") || !post.at("single").is_array()) return;
    const json& single = post.at("single");
    if (single.empty()) return;
    template_bos_ = template_special(post, single.front());
    if (single.size() > 1) template_eos_ = template_special(post, single.back());
  }

  std::string path_;
  std::unique_ptr<BpeModel> bpe_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<Decoder> decoder_;
  std::vector<AddedToken> added_;
  std::unordered_map<int64_t, size_t> added_by_id_;
  std::unordered_map<std::string, size_t> added_by_content_;
  std::set<std::string> special_contents_;
  std::unique_ptr<AddedMatcher> raw_matcher_, normalized_matcher_;
  std::optional<int64_t> template_bos_, template_eos_;
  int64_t max_id_ = -1;
};

}  // namespace

std::unique_ptr<TokenizerBase> load_hf_tokenizer(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "cannot open");
  std::stringstream buf;
  buf << in.rdbuf();
  json j;
  try {
    j = json::parse(buf.str());
  } catch (const json::exception& e) {
    throw Error(path, std::string("not valid JSON: ") + e.what());
  }
  try {
    return std::make_unique<HfTokenizer>(j, path);
  } catch (const json::exception& e) {  // a field of the wrong type deep inside
    throw Error(path, std::string("malformed tokenizer.json: ") + e.what());
  }
}

}  // namespace supra::tokenizer_detail
