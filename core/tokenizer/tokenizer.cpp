// load_tokenizer (which file, BOS/EOS from tokenizer_config.json / config.json / the tokenizer) and TokenStreamer.
#include "core/tokenizer/tokenizer.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "core/tokenizer/impl.h"

namespace supra {
namespace {

using json = nlohmann::json;
using tokenizer_detail::TokenizerBase;

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool is_dir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The JSON object in `path`, or null when there is no such file.
json read_json_if_present(const std::string& path) {
  if (!is_file(path)) return json();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "cannot open");
  std::stringstream buf;
  buf << in.rdbuf();
  try {
    json j = json::parse(buf.str());
    if (!j.is_object()) throw Error(path, "not a JSON object");
    return j;
  } catch (const json::exception& e) {
    throw Error(path, std::string("not valid JSON: ") + e.what());
  }
}

// tokenizer_config.json's "bos_token"/"eos_token": a string or an AddedToken object {"content": ...}.
// Returns: nullopt = not stated; optional(nullopt) = stated as none; optional(id) = stated.
std::optional<std::optional<int64_t>> from_tokenizer_config(const json& cfg, const char* key, const TokenizerBase& tok,
                                                            const std::string& path) {
  if (!cfg.is_object() || !cfg.contains(key)) return std::nullopt;
  const json& v = cfg.at(key);
  if (v.is_null()) return std::optional<int64_t>();
  std::string content;
  if (v.is_string())
    content = v.get<std::string>();
  else if (v.is_object() && v.contains("content") && v.at("content").is_string())
    content = v.at("content").get<std::string>();
  else
    throw Error(path, std::string("'") + key + "' must be a string, a {\"content\": ...} object or null");
  if (const auto id = tok.token_to_id(content)) return std::optional<int64_t>(*id);
  spdlog::warn("{}: {} '{}' is not a token of {}; ignored", path, key, content, tok.name());
  return std::nullopt;
}

// config.json's "bos_token_id"/"eos_token_id": an integer, a list of integers (the first is taken) or null.
std::optional<std::optional<int64_t>> from_model_config(const json& cfg, const char* key, const std::string& path) {
  if (!cfg.is_object() || !cfg.contains(key)) return std::nullopt;
  const json& v = cfg.at(key);
  if (v.is_null()) return std::optional<int64_t>();
  if (v.is_number_integer()) return std::optional<int64_t>(v.get<int64_t>());
  if (v.is_array() && !v.empty() && v[0].is_number_integer()) return std::optional<int64_t>(v[0].get<int64_t>());
  throw Error(path, std::string("'") + key + "' must be an integer, a list of integers or null");
}

std::optional<int64_t> resolve(const json& tok_cfg, const std::string& tok_cfg_path, const json& model_cfg,
                               const std::string& model_cfg_path, const char* token_key, const char* id_key,
                               const TokenizerBase& tok, std::optional<int64_t> own) {
  std::optional<int64_t> id = own;
  if (auto v = from_tokenizer_config(tok_cfg, token_key, tok, tok_cfg_path))
    id = *v;
  else if (auto w = from_model_config(model_cfg, id_key, model_cfg_path))
    id = *w;
  if (id && (*id < 0 || *id >= tok.vocab_size())) {
    spdlog::warn("{}: {} {} is outside the vocabulary ({} tokens); ignored", tok.name(), id_key, *id, tok.vocab_size());
    return std::nullopt;
  }
  return id;
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_dir) {
  if (!is_dir(model_dir)) throw Error(model_dir, "not a folder (expected a model folder with a tokenizer)");
  const std::string dir = model_dir.back() == '/' ? model_dir : model_dir + "/";
  const std::string json_path = dir + "tokenizer.json", sp_path = dir + "tokenizer.model";
  std::unique_ptr<TokenizerBase> tok;
  if (is_file(json_path)) {
    try {
      tok = tokenizer_detail::load_hf_tokenizer(json_path);
    } catch (const tokenizer_detail::UnsupportedTokenizer& e) {
      if (!is_file(sp_path)) throw;
      spdlog::info("{}; using {} instead", e.what(), sp_path);
    }
  }
  if (!tok && is_file(sp_path)) tok = tokenizer_detail::load_sentencepiece(sp_path);
  if (!tok) throw Error(model_dir, "no tokenizer.json or tokenizer.model in " + model_dir);

  const std::string tok_cfg_path = dir + "tokenizer_config.json", model_cfg_path = dir + "config.json";
  const json tok_cfg = read_json_if_present(tok_cfg_path), model_cfg = read_json_if_present(model_cfg_path);
  auto special = [&](const char* token_key, const char* id_key, std::optional<int64_t> own) {
    return resolve(tok_cfg, tok_cfg_path, model_cfg, model_cfg_path, token_key, id_key, *tok, own);
  };
  const auto bos = special("bos_token", "bos_token_id", tok->own_bos());
  const auto eos = special("eos_token", "eos_token_id", tok->own_eos());
  // What the library's default encode prepends: the file's own prefix (template / SentencePiece BOS), unless
  // tokenizer_config.json says add_bos_token.
  std::optional<int64_t> prefix = tok->own_bos();
  if (tok_cfg.is_object() && tok_cfg.contains("add_bos_token") && tok_cfg.at("add_bos_token").is_boolean())
    prefix = tok_cfg.at("add_bos_token").get<bool>() ? bos : std::nullopt;
  tok->set_special(bos, eos, prefix);
  return tok;
}

// ---------------------------------------------------------------------------------------------- TokenStreamer

TokenStreamer::TokenStreamer(const Tokenizer& t) : tok_(t) {}

namespace {
bool ends_with_replacement(const std::string& s) {
  static const std::string r = "\xEF\xBF\xBD";
  return s.size() >= r.size() && s.compare(s.size() - r.size(), r.size(), r) == 0;
}
}  // namespace

// tokenizers' step_decode_stream: ids_ holds the last emitted chunk's ids (whose text is prefix_) and the ids
// since; the text that grew past prefix_ is emitted once it does not end with U+FFFD (an incomplete character) and
// the last id is not one the tokenizer holds (stream_hold). Ids that decode to nothing so far are dropped from the
// window at the next emission (the library adopts any complete text as prefix here; with held ids that text may
// not have been emitted yet, so only an empty one is adopted).
std::string TokenStreamer::push(int64_t id) {
  if (prefix_.empty() && !ids_.empty() && tok_.decode(ids_).empty()) prefix_index_ = ids_.size();
  ids_.push_back(id);
  const auto* base = dynamic_cast<const TokenizerBase*>(&tok_);
  if (base && base->stream_hold(id)) return {};
  std::string text = tok_.decode(ids_);
  if (text.size() <= prefix_.size() || ends_with_replacement(text) || text.compare(0, prefix_.size(), prefix_) != 0)
    return {};
  std::string out = text.substr(prefix_.size());
  const size_t new_prefix_index = ids_.size() - prefix_index_;
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(prefix_index_));
  prefix_ = tok_.decode(ids_);
  prefix_index_ = new_prefix_index;
  return out;
}

std::string TokenStreamer::finish() {
  std::string out;
  if (!ids_.empty()) {
    std::string text = tok_.decode(ids_);
    if (text.size() > prefix_.size() && text.compare(0, prefix_.size(), prefix_) == 0)
      out = text.substr(prefix_.size());
  }
  ids_.clear();
  prefix_.clear();
  prefix_index_ = 0;
  return out;
}

}  // namespace supra
