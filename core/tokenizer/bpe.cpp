// BPE model of tokenizer.json, following tokenizers/src/models/bpe (model.rs merge_word, word.rs merge_all).
#include "core/tokenizer/bpe.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <queue>

#include "core/tokenizer/impl.h"
#include "core/tokenizer/text.h"

namespace supra::tokenizer_detail {
namespace {

using json = nlohmann::json;

std::optional<std::string> opt_string(const json& m, const char* key, const std::string& source) {
  if (!m.contains(key) || m.at(key).is_null()) return std::nullopt;
  if (!m.at(key).is_string()) throw Error(source, std::string("model.") + key + " must be a string");
  return m.at(key).get<std::string>();
}

bool opt_bool(const json& m, const char* key, const std::string& source) {
  if (!m.contains(key) || m.at(key).is_null()) return false;
  if (!m.at(key).is_boolean()) throw Error(source, std::string("model.") + key + " must be true or false");
  return m.at(key).get<bool>();
}

}  // namespace

BpeModel::BpeModel(const json& m, const std::string& source) : source_(source) {
  if (m.contains("dropout") && !m.at("dropout").is_null() && m.at("dropout").get<double>() != 0.0)
    throw UnsupportedTokenizer(source, "unsupported BPE feature: dropout (sampling tokenizations)");
  unk_token_ = opt_string(m, "unk_token", source);
  continuing_subword_prefix_ = opt_string(m, "continuing_subword_prefix", source);
  end_of_word_suffix_ = opt_string(m, "end_of_word_suffix", source);
  fuse_unk_ = opt_bool(m, "fuse_unk", source);
  byte_fallback_ = opt_bool(m, "byte_fallback", source);
  ignore_merges_ = opt_bool(m, "ignore_merges", source);

  if (!m.contains("vocab") || !m.at("vocab").is_object()) throw Error(source, "model.vocab must be an object");
  vocab_.reserve(m.at("vocab").size());
  for (const auto& [token, id] : m.at("vocab").items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
      throw Error(source, "model.vocab['" + token + "'] must be a non-negative integer id");
    const auto i = id.get<int32_t>();
    vocab_[token] = i;
    vocab_r_[i] = token;
    max_id_ = std::max<int64_t>(max_id_, i);
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    const auto it = vocab_.find(name);
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }

  if (!m.contains("merges") || !m.at("merges").is_array()) throw Error(source, "model.merges must be an array");
  const auto& merges = m.at("merges");
  const size_t prefix_len = continuing_subword_prefix_ ? continuing_subword_prefix_->size() : 0;
  merges_.reserve(merges.size());
  uint32_t rank = 0;
  for (const auto& entry : merges) {
    std::string a, b;
    if (entry.is_string()) {  // legacy "a b"
      const auto s = entry.get<std::string>();
      if (s.rfind("#version", 0) == 0) continue;
      const auto sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        throw Error(source,
                    "model.merges[" + std::to_string(rank) + "] '" + s + "' is not two tokens separated by a space");
      a = s.substr(0, sp), b = s.substr(sp + 1);
    } else if (entry.is_array() && entry.size() == 2 && entry[0].is_string() && entry[1].is_string()) {
      a = entry[0].get<std::string>(), b = entry[1].get<std::string>();
    } else {
      throw Error(source, "model.merges[" + std::to_string(rank) + "] must be \"a b\" or [a, b]");
    }
    const auto ia = vocab_.find(a), ib = vocab_.find(b);
    if (ia == vocab_.end() || ib == vocab_.end())
      throw Error(source, "model.merges[" + std::to_string(rank) + "] uses '" + (ia == vocab_.end() ? a : b) +
                              "', which is not in model.vocab");
    const std::string merged = a + b.substr(std::min(prefix_len, b.size()));
    const auto im = vocab_.find(merged);
    if (im == vocab_.end())
      throw Error(source,
                  "model.merges[" + std::to_string(rank) + "] makes '" + merged + "', which is not in model.vocab");
    merges_[pair_key(ia->second, ib->second)] = Merge{rank, im->second};
    ++rank;
  }
}

std::optional<int64_t> BpeModel::token_to_id(const std::string& token) const {
  const auto it = vocab_.find(token);
  return it == vocab_.end() ? std::nullopt : std::optional<int64_t>(it->second);
}

const std::string* BpeModel::id_to_token(int64_t id) const {
  if (id < 0 || id > INT32_MAX) return nullptr;
  const auto it = vocab_r_.find(static_cast<int32_t>(id));
  return it == vocab_r_.end() ? nullptr : &it->second;
}

void BpeModel::tokenize(const std::string& word, std::vector<int64_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    const auto it = vocab_.find(word);
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  // Symbols of the word: a doubly linked list over a vector (removed symbols get len 0).
  struct Symbol {
    int32_t c;
    int32_t prev, next;
    size_t len;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&](int32_t c, size_t len) {
    const auto n = static_cast<int32_t>(symbols.size());
    if (!symbols.empty()) symbols.back().next = n;
    symbols.push_back({c, n - 1, -1, len});
  };

  bool unk = false;  // an unk is pending (fused with the next unknown characters when fuse_unk)
  int32_t unk_id = -1;
  size_t unk_len = 0;
  const auto chars = utf8_chars(word);
  std::string s;
  for (size_t k = 0; k < chars.size(); ++k) {
    s.assign(chars[k]);
    const size_t byte_len = s.size();
    if (k > 0 && continuing_subword_prefix_) s = *continuing_subword_prefix_ + s;
    if (k + 1 == chars.size() && end_of_word_suffix_) s += *end_of_word_suffix_;
    const auto it = vocab_.find(s);
    if (it != vocab_.end()) {
      if (unk) add(unk_id, unk_len), unk = false;
      add(it->second, byte_len);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char b : s) all = all && byte_ids_[b] >= 0;
      if (all) {
        for (unsigned char b : s) add(byte_ids_[b], 1);
        continue;
      }
    }
    if (unk_token_) {
      if (unk && fuse_unk_) {
        unk_len += byte_len;
      } else {
        if (unk) add(unk_id, unk_len);
        const auto it = vocab_.find(*unk_token_);  // checked only when needed, as the library does
        if (it == vocab_.end()) throw Error(source_, "model.unk_token '" + *unk_token_ + "' is not in model.vocab");
        unk = true, unk_id = it->second, unk_len = byte_len;
      }
    }
    // Without unk token nor byte fallback the character is dropped, as in the tokenizers library.
  }
  if (unk) add(unk_id, unk_len);

  // merge_all: lowest rank first, then leftmost position.
  struct Candidate {
    uint32_t rank;
    int32_t pos;
    int32_t new_id;
  };
  auto worse = [](const Candidate& x, const Candidate& y) {
    return x.rank != y.rank ? x.rank > y.rank : x.pos > y.pos;
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(worse)> queue(worse);
  auto find_merge = [&](int32_t a, int32_t b) -> const Merge* {
    const auto it = merges_.find(pair_key(a, b));
    return it == merges_.end() ? nullptr : &it->second;
  };
  for (size_t i = 0; i + 1 < symbols.size(); ++i)
    if (const Merge* m = find_merge(symbols[i].c, symbols[i + 1].c))
      queue.push({m->rank, static_cast<int32_t>(i), m->new_id});

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& cur = symbols[top.pos];
    if (cur.len == 0 || cur.next == -1) continue;
    const int32_t next_pos = cur.next;
    const Symbol right = symbols[next_pos];
    const Merge* m = find_merge(cur.c, right.c);
    if (!m || m->new_id != top.new_id) continue;  // an expired entry
    cur.c = top.new_id;
    cur.len += right.len;
    cur.next = right.next;
    symbols[next_pos].len = 0;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (cur.prev >= 0)
      if (const Merge* pm = find_merge(symbols[cur.prev].c, cur.c)) queue.push({pm->rank, cur.prev, pm->new_id});
    if (cur.next >= 0)
      if (const Merge* nm = find_merge(cur.c, symbols[cur.next].c)) queue.push({nm->rank, top.pos, nm->new_id});
  }
  for (const Symbol& sym : symbols)
    if (sym.len != 0) out.push_back(sym.c);
}

}  // namespace supra::tokenizer_detail
