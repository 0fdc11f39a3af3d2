// Evaluation of a causal LM — transformer, SUPRA model, or transformer with a bounded (window/TOVA) K/V cache —
// by the same code: perplexity / bits per token over a token-shard folder, and multiple-choice accuracy (acc and
// length-normalised acc_norm) on JSONL task files. `supra eval` is the command around it.
#pragma once
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "core/model/causal_lm.h"
#include "core/model/inference_cache.h"
#include "data/shards.h"

namespace supra {
class Tokenizer;
}

namespace supra::eval {

// log p(ids[b, t+1] | ids[b, ≤t]) for t < T-1: float64 [B, T-1]. Rows are right-padded (`real` [B, T] marks real
// tokens; padded targets get 0). With a bounded K/V policy (transformers only) the tokens after the first K are fed
// one at a time through the cache, so that no prediction sees more than K cached tokens; otherwise one forward.
torch::Tensor next_token_logprobs(CausalLM& model, const torch::Tensor& ids, const torch::Tensor& real,
                                  const KvCacheOptions& kv = {});

struct PerplexityOptions {
  int64_t seq_len = 2048;  // documents longer than this are scored in independent windows of seq_len predictions
  int64_t batch_size = 8;  // windows per forward
  uint64_t first_doc = 0;  // documents [first_doc, first_doc + max_docs) of the folder, in manifest order
  uint64_t max_docs = 0;   // 0: to the end
  int64_t max_tokens = 0;  // 0: no limit; else stop after about this many predicted tokens
  KvCacheOptions kv;
};

struct PerplexityResult {
  double nll_sum = 0;  // nats
  int64_t tokens = 0;  // predicted tokens
  int64_t docs = 0;
  double nll() const { return tokens ? nll_sum / static_cast<double>(tokens) : 0.0; }
  double perplexity() const;
  double bits_per_token() const;
};

// Every document starts a fresh state (BOS as stored in the shards); each token after the first is predicted.
PerplexityResult evaluate_perplexity(CausalLM& model, const data::ShardedTokens& tokens,
                                     const PerplexityOptions& options);

// Perplexity of text documents as lm-evaluation-harness's loglikelihood_rolling scores them: each document is
// encoded as the tokenizer's default encode does (Tokenizer::encode_prefix, then the text), cut into disjoint
// windows of up to `max_length` predicted tokens (the first conditioned on the prefix token — BOS, else EOS —, every
// later one on the max_length + 1 − n tokens before it), and every token is predicted (no EOS is added). The corpus
// metrics weigh by words (pieces of re.split(r"\s+", text)) and UTF-8 bytes.
struct RollingResult {
  std::vector<double> loglikelihood;  // per document, nats (summed over its tokens)
  int64_t tokens = 0, words = 0, bytes = 0;
  double total() const;
  double word_perplexity() const { return std::exp(-total() / static_cast<double>(words)); }
  double byte_perplexity() const { return std::exp(-total() / static_cast<double>(bytes)); }
  double bits_per_byte() const { return -total() / static_cast<double>(bytes) / std::log(2.0); }
};
RollingResult evaluate_rolling(CausalLM& model, const Tokenizer& tokenizer, const std::vector<std::string>& docs,
                               int64_t max_length, int64_t batch_size = 8, const KvCacheOptions& kv = {});
// JSONL with one {"text": "..."} per line (errors name the file and line).
std::vector<std::string> read_text_documents(const std::filesystem::path& file);

// One multiple-choice question as token ids: each choice is a (context, continuation) pair and is scored by the
// summed log-probability of its continuation. `chars` / `bytes`: the lengths lm-evaluation-harness divides by for
// acc_norm / acc_bytes (the choice's characters and UTF-8 bytes without the target delimiter; for the
// WinoGrande-style form those of the context option; tokens when the task was given as ids).
struct ChoiceItem {
  struct Choice {
    std::vector<int64_t> context, continuation;
    double chars = 1, bytes = 1;
  };
  std::vector<Choice> choices;
  int64_t gold = 0;
};

struct ChoiceResult {
  int64_t items = 0, correct = 0, correct_norm = 0, correct_bytes = 0;
  std::vector<std::vector<double>> logprobs;  // per item, per choice: summed continuation log-probability
  double acc() const { return items ? static_cast<double>(correct) / items : 0.0; }
  double acc_norm() const { return items ? static_cast<double>(correct_norm) / items : 0.0; }
  double acc_bytes() const { return items ? static_cast<double>(correct_bytes) / items : 0.0; }
};

// acc: argmax of the log-probabilities; acc_norm / acc_bytes: of log-probability / chars / bytes (ties: the first
// choice, as numpy's argmax). A (context, continuation) longer than max_length + 1 tokens loses its first tokens,
// as lm-evaluation-harness truncates (0: no limit).
ChoiceResult evaluate_choices(CausalLM& model, const std::vector<ChoiceItem>& items, int64_t batch_size = 16,
                              const KvCacheOptions& kv = {}, int64_t max_length = 0);

// Reads a JSONL task file. Accepted lines: {"query", "choices": [...], "gold"} (HellaSwag/ARC/PIQA style: the query
// is the context of every choice), {"context_options": [...], "continuation", "gold"} (WinoGrande style), each with
// an optional "target_delimiter" (default " ", put between context and choice as lm-evaluation-harness does), and
// the same with token ids: {"query_ids", "choices_ids"} / {"context_options_ids", "continuation_ids"} (`bos`, if
// any, starts every context). Text becomes the requests lm-evaluation-harness's HF backend scores: trailing spaces
// of the context move to the continuation; context = encode(context), continuation = encode(context +
// continuation) after its first len(context) tokens, both encoded as the tokenizer's default encode does (with its
// prefix); an empty context is the prefix token (BOS, else EOS). Errors name the file and line.
std::vector<ChoiceItem> read_choice_task(const std::filesystem::path& file, const Tokenizer* tokenizer,
                                         std::optional<int64_t> bos);

}  // namespace supra::eval
