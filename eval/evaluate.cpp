#include "eval/evaluate.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>

#include "core/base/error.h"
#include "core/model/prefill.h"
#include "core/tokenizer/tokenizer.h"

namespace supra::eval {
namespace {

// Right-pads `rows` into ids [B, T] and real [B, T].
std::pair<torch::Tensor, torch::Tensor> pad_rows(const std::vector<std::vector<int64_t>>& rows) {
  int64_t T = 0;
  for (const auto& r : rows) T = std::max<int64_t>(T, static_cast<int64_t>(r.size()));
  const int64_t B = static_cast<int64_t>(rows.size());
  auto ids = torch::zeros({B, T}, torch::kLong), real = torch::zeros({B, T}, torch::kBool);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = static_cast<int64_t>(rows[b].size());
    if (n == 0) continue;
    ids[b].narrow(0, 0, n).copy_(torch::tensor(rows[b], torch::kLong));
    real[b].narrow(0, 0, n).fill_(true);
  }
  return {ids, real};
}

int64_t utf8_chars(const std::string& s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// len(re.split(r"\s+", text)): one more piece than there are runs of whitespace (ASCII whitespace and the
// information separators \x1c-\x1f, which Python's \s also matches).
int64_t whitespace_pieces(const std::string& s) {
  auto space = [](unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f); };
  int64_t runs = 0;
  for (size_t i = 0; i < s.size(); ++i)
    if (space(s[i]) && (i == 0 || !space(s[i - 1]))) ++runs;
  return runs + 1;
}

// The prefix token of lm-evaluation-harness's HF backend for an empty context or a document's first window.
int64_t prefix_token(const Tokenizer& tok, const std::string& where) {
  if (auto id = tok.bos_id()) return *id;
  if (auto id = tok.eos_id()) return *id;
  throw Error(where, "the tokenizer has neither BOS nor EOS to condition the first token on");
}

}  // namespace

torch::Tensor next_token_logprobs(CausalLM& model, const torch::Tensor& ids, const torch::Tensor& real,
                                  const KvCacheOptions& kv) {
  torch::NoGradGuard no_grad;
  const auto dev = model->lm_head_weight().device();
  const int64_t T = ids.size(1);
  TORCH_CHECK(T >= 2, "next_token_logprobs: rows need at least 2 tokens");
  auto x = ids.to(dev);
  auto m = real.to(dev, torch::kBool);
  torch::Tensor logits;  // [B, T, V] float32
  if (!kv.bounded() || model->config().supra || T <= kv.size) {
    logits = model->forward(x, m.all().item<bool>() ? torch::Tensor() : m).to(torch::kFloat);
  } else {
    InferenceCache cache(static_cast<int64_t>(model->model->layers->size()), kv);
    logits = prefill(model, x, m, cache, /*all_positions=*/true);
  }
  logits = logits.narrow(1, 0, T - 1);
  auto target = x.narrow(1, 1, T - 1).unsqueeze(-1);
  auto lp = (logits.gather(-1, target).squeeze(-1) - logits.logsumexp(-1)).to(torch::kDouble);
  return lp.masked_fill(m.narrow(1, 1, T - 1).logical_not(), 0.0).cpu();
}

double RollingResult::total() const {
  double s = 0;
  for (double x : loglikelihood) s += x;
  return s;
}

RollingResult evaluate_rolling(CausalLM& model, const Tokenizer& tok, const std::vector<std::string>& docs, int64_t L,
                               int64_t batch_size, const KvCacheOptions& kv) {
  TORCH_CHECK(L >= 1 && batch_size >= 1, "evaluate_rolling: bad options");
  RollingResult r;
  r.loglikelihood.assign(docs.size(), 0.0);
  struct Window {
    size_t doc;
    std::vector<int64_t> ids;  // conditioning tokens, then the n scored ones
    int64_t scored;
  };
  std::vector<Window> windows;
  auto flush = [&] {
    if (windows.empty()) return;
    std::vector<std::vector<int64_t>> rows;
    for (const auto& w : windows) rows.push_back(w.ids);
    auto [ids, real] = pad_rows(rows);
    auto lp = next_token_logprobs(model, ids, real, kv);
    for (size_t i = 0; i < windows.size(); ++i) {
      const int64_t n = static_cast<int64_t>(windows[i].ids.size());
      r.loglikelihood[windows[i].doc] +=
          lp[static_cast<int64_t>(i)].narrow(0, n - 1 - windows[i].scored, windows[i].scored).sum().item<double>();
    }
    windows.clear();
  };
  for (size_t d = 0; d < docs.size(); ++d) {
    std::vector<int64_t> t;
    if (auto p = tok.encode_prefix()) t.push_back(*p);
    const auto text = tok.encode(docs[d]);
    t.insert(t.end(), text.begin(), text.end());
    const int64_t n = static_cast<int64_t>(t.size());
    r.tokens += n, r.words += whitespace_pieces(docs[d]), r.bytes += static_cast<int64_t>(docs[d].size());
    if (n == 0) continue;
    // get_rolling_token_windows(context_len=1) + make_disjoint_window: the first window predicts t[0, first) after
    // the prefix token; each later one predicts the next min(L, rest) tokens after the L + 1 − that many before them.
    const int64_t first = std::min(L, n);
    std::vector<int64_t> w = {prefix_token(tok, "document " + std::to_string(d + 1))};
    w.insert(w.end(), t.begin(), t.begin() + first);
    windows.push_back({d, std::move(w), first});
    for (int64_t done = first; done < n;) {
      const int64_t p = std::min(n - done, L), end = done + p;
      windows.push_back({d, std::vector<int64_t>(t.begin() + (end - L - 1), t.begin() + end), p});
      done = end;
    }
    while (static_cast<int64_t>(windows.size()) >= batch_size) {
      std::vector<Window> rest(windows.begin() + batch_size, windows.end());
      windows.resize(static_cast<size_t>(batch_size));
      flush();
      windows = std::move(rest);
    }
  }
  flush();
  return r;
}

std::vector<std::string> read_text_documents(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw Error(file.string(), "cannot open the text file");
  std::vector<std::string> docs;
  std::string line;
  for (int64_t ln = 1; std::getline(in, line); ++ln) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = file.string() + ":" + std::to_string(ln);
    try {
      const auto j = nlohmann::json::parse(line);
      if (!j.is_object() || !j.contains("text") || !j.at("text").is_string())
        throw Error(where, "expected {\"text\": \"...\"}");
      docs.push_back(j.at("text").get<std::string>());
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Error(where, std::string("not valid JSON (") + e.what() + ")");
    }
  }
  if (docs.empty()) throw Error(file.string(), "no documents");
  return docs;
}

double PerplexityResult::perplexity() const { return std::exp(nll()); }
double PerplexityResult::bits_per_token() const { return nll() / std::log(2.0); }

PerplexityResult evaluate_perplexity(CausalLM& model, const data::ShardedTokens& tokens, const PerplexityOptions& o) {
  TORCH_CHECK(o.seq_len >= 1 && o.batch_size >= 1, "evaluate_perplexity: bad options");
  PerplexityResult r;
  const uint64_t end = o.max_docs ? std::min<uint64_t>(tokens.num_docs(), o.first_doc + o.max_docs) : tokens.num_docs();
  std::vector<std::vector<int64_t>> windows;
  auto flush = [&] {
    if (windows.empty()) return;
    auto [ids, real] = pad_rows(windows);
    auto lp = next_token_logprobs(model, ids, real, o.kv);
    r.nll_sum -= lp.sum().item<double>();
    r.tokens += real.narrow(1, 1, real.size(1) - 1).sum().item<int64_t>();
    windows.clear();
  };
  for (uint64_t d = o.first_doc; d < end; ++d) {
    if (o.max_tokens > 0 && r.tokens >= o.max_tokens) break;
    auto doc = tokens.document(d);
    ++r.docs;
    const int64_t n = static_cast<int64_t>(doc.size());
    // Windows of up to seq_len predictions: tokens [s, s + seq_len], consecutive windows share one token.
    for (int64_t s = 0; s + 1 < n; s += o.seq_len) {
      const int64_t len = std::min<int64_t>(o.seq_len + 1, n - s);
      windows.emplace_back(doc.begin() + s, doc.begin() + s + len);
      if (static_cast<int64_t>(windows.size()) == o.batch_size) flush();
    }
  }
  flush();
  return r;
}

ChoiceResult evaluate_choices(CausalLM& model, const std::vector<ChoiceItem>& items, int64_t batch_size,
                              const KvCacheOptions& kv, int64_t max_length) {
  TORCH_CHECK(batch_size >= 1, "evaluate_choices: batch_size must be >= 1");
  struct Seq {
    size_t item, choice;
  };
  std::vector<Seq> seqs;
  for (size_t i = 0; i < items.size(); ++i)
    for (size_t c = 0; c < items[i].choices.size(); ++c) seqs.push_back({i, c});
  ChoiceResult r;
  r.logprobs.resize(items.size());
  for (size_t i = 0; i < items.size(); ++i) r.logprobs[i].assign(items[i].choices.size(), 0.0);
  for (size_t first = 0; first < seqs.size(); first += static_cast<size_t>(batch_size)) {
    const size_t n = std::min(seqs.size() - first, static_cast<size_t>(batch_size));
    std::vector<std::vector<int64_t>> rows;
    for (size_t s = first; s < first + n; ++s) {
      const auto& ch = items[seqs[s].item].choices[seqs[s].choice];
      std::vector<int64_t> row = ch.context;
      row.insert(row.end(), ch.continuation.begin(), ch.continuation.end());
      if (max_length > 0 && static_cast<int64_t>(row.size()) > max_length + 1)  // lm-eval: the last max_length + 1
        row.erase(row.begin(), row.end() - (max_length + 1));
      if (row.size() < 2) row.resize(2, 0);  // guarded by read_choice_task; keeps the shapes valid
      rows.push_back(std::move(row));
    }
    auto [ids, real] = pad_rows(rows);
    auto lp = next_token_logprobs(model, ids, real, kv);
    for (size_t s = first; s < first + n; ++s) {
      const auto& ch = items[seqs[s].item].choices[seqs[s].choice];
      const int64_t len = static_cast<int64_t>(rows[s - first].size());
      const int64_t from =
          len - 1 - static_cast<int64_t>(ch.continuation.size());  // predicts the first continuation token
      r.logprobs[seqs[s].item][seqs[s].choice] = lp[static_cast<int64_t>(s - first)]
                                                     .narrow(0, from, static_cast<int64_t>(ch.continuation.size()))
                                                     .sum()
                                                     .item<double>();
    }
  }
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& lps = r.logprobs[i];
    const auto& ch = items[i].choices;
    size_t best = 0, best_norm = 0, best_bytes = 0;
    for (size_t c = 1; c < lps.size(); ++c) {
      if (lps[c] > lps[best]) best = c;
      if (lps[c] / ch[c].chars > lps[best_norm] / ch[best_norm].chars) best_norm = c;
      if (lps[c] / ch[c].bytes > lps[best_bytes] / ch[best_bytes].bytes) best_bytes = c;
    }
    ++r.items;
    r.correct += static_cast<int64_t>(best) == items[i].gold;
    r.correct_norm += static_cast<int64_t>(best_norm) == items[i].gold;
    r.correct_bytes += static_cast<int64_t>(best_bytes) == items[i].gold;
  }
  return r;
}

std::vector<ChoiceItem> read_choice_task(const std::filesystem::path& file, const Tokenizer* tok,
                                         std::optional<int64_t> bos) {
  std::ifstream in(file);
  if (!in) throw Error(file.string(), "cannot open the task file");
  std::vector<ChoiceItem> items;
  std::string line;
  for (int64_t ln = 1; std::getline(in, line); ++ln) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = file.string() + ":" + std::to_string(ln);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const std::exception& e) {
      throw Error(where, std::string("not valid JSON (") + e.what() + ")");
    }
    auto with_bos = [&](std::vector<int64_t> ids) {
      if (bos) ids.insert(ids.begin(), *bos);
      return ids;
    };
    // Text pairs become lm-evaluation-harness's requests (HF backend, _encode_pair): the request is (context,
    // delimiter + choice); trailing whitespace of the context moves to the continuation; context tokens =
    // encode(context), continuation tokens = encode(context + continuation)[len(context tokens):], both with the
    // tokenizer's default prefix; an empty context is the prefix token. `norm`: the text acc_norm measures.
    auto encode = [&](const std::string& text) {
      std::vector<int64_t> ids;
      if (auto p = tok->encode_prefix()) ids.push_back(*p);
      const auto body = tok->encode(text);
      ids.insert(ids.end(), body.begin(), body.end());
      return ids;
    };
    auto text_choice = [&](std::string ctx, std::string cont, const std::string& norm) {
      if (tok == nullptr)
        throw Error(where,
                    "text task but the model has no tokenizer (give ids: query_ids/choices_ids, or --tokenizer)");
      ChoiceItem::Choice c;
      c.chars = static_cast<double>(utf8_chars(norm));
      c.bytes = static_cast<double>(norm.size());
      if (ctx.empty()) {
        const int64_t prefix = prefix_token(*tok, where);
        auto ids = tok->encode(cont);
        const bool starts = !ids.empty() && ids.front() == prefix;
        c.context = {prefix};
        c.continuation.assign(ids.begin() + (starts ? 1 : 0), ids.end());
        return c;
      }
      const size_t keep = ctx.find_last_not_of(" \t\n\r\f\v");
      const size_t cut = keep == std::string::npos ? 0 : keep + 1;
      cont = ctx.substr(cut) + cont;
      ctx.resize(cut);
      auto whole = encode(ctx + cont);
      c.context = encode(ctx);
      if (c.context.size() < whole.size()) c.continuation.assign(whole.begin() + c.context.size(), whole.end());
      return c;
    };
    auto ids_choice = [&](const std::vector<int64_t>& ctx, const std::vector<int64_t>& cont) {
      ChoiceItem::Choice c;
      c.context = with_bos(ctx);
      c.continuation = cont;
      c.chars = c.bytes = static_cast<double>(std::max<size_t>(1, cont.size()));
      return c;
    };
    ChoiceItem item;
    try {
      const std::string delim = j.value("target_delimiter", std::string(" "));
      if (j.contains("query") && j.contains("choices")) {
        for (const auto& ch : j.at("choices")) {
          const std::string choice = ch.get<std::string>();
          item.choices.push_back(text_choice(j.at("query").get<std::string>(), delim + choice, choice));
        }
      } else if (j.contains("context_options") && j.contains("continuation")) {
        for (const auto& cx : j.at("context_options")) {
          const std::string option = cx.get<std::string>();
          item.choices.push_back(text_choice(option, delim + j.at("continuation").get<std::string>(), option));
        }
      } else if (j.contains("query_ids") && j.contains("choices_ids")) {
        for (const auto& ch : j.at("choices_ids"))
          item.choices.push_back(
              ids_choice(j.at("query_ids").get<std::vector<int64_t>>(), ch.get<std::vector<int64_t>>()));
      } else if (j.contains("context_options_ids") && j.contains("continuation_ids")) {
        for (const auto& cx : j.at("context_options_ids"))
          item.choices.push_back(
              ids_choice(cx.get<std::vector<int64_t>>(), j.at("continuation_ids").get<std::vector<int64_t>>()));
      } else {
        throw Error(where,
                    "expected {query, choices, gold} or {context_options, continuation, gold} (or their _ids forms)");
      }
      item.gold = j.at("gold").get<int64_t>();
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Error(where, std::string("bad field (") + e.what() + ")");
    }
    if (item.choices.size() < 2) throw Error(where, "needs at least 2 choices");
    if (item.gold < 0 || item.gold >= static_cast<int64_t>(item.choices.size()))
      throw Error(where, "gold " + std::to_string(item.gold) + " is not a choice index");
    for (const auto& c : item.choices) {
      if (c.context.empty()) throw Error(where, "empty context and no BOS token to condition on");
      if (c.continuation.empty()) throw Error(where, "a choice has no continuation tokens");
    }
    items.push_back(std::move(item));
  }
  if (items.empty()) throw Error(file.string(), "no task items");
  return items;
}

}  // namespace supra::eval
