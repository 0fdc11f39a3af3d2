// The training data loader; see loader.h and docs/data.md.
#include "data/loader.h"

#include <spdlog/spdlog.h>

#include "core/base/error.h"

namespace supra::data {

using json = nlohmann::json;

namespace {

// splitmix64's finaliser: a bijective 64-bit mixer with full avalanche.
constexpr uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ull;

std::string str(uint64_t v) { return std::to_string(v); }

}  // namespace

// ------------------------------------------------------------------------------------------------ permutation

SamplePermutation::SamplePermutation(uint64_t n, uint64_t seed, uint64_t epoch) : n_(n) {
  if (n == 0) throw std::invalid_argument("SamplePermutation: empty domain");
  int bits = 0;
  while (bits < 64 && (uint64_t{1} << bits) < n) ++bits;
  bits = std::max(2, bits + (bits & 1));
  half_bits_ = bits / 2;
  mask_ = (uint64_t{1} << half_bits_) - 1;
  // Round keys: a splitmix64 stream started from (seed, epoch, n).
  uint64_t s = mix64(seed ^ 0x5355505241ull) ^ mix64(epoch + kGolden) ^ mix64(n * kGolden + 1);
  for (uint64_t& k : keys_) {
    s += kGolden;
    k = mix64(s);
  }
}

uint64_t SamplePermutation::encrypt(uint64_t x) const {
  uint64_t l = x >> half_bits_, r = x & mask_;
  for (uint64_t k : keys_) {
    const uint64_t f = mix64(r ^ k) & mask_;
    const uint64_t nl = r;
    r = l ^ f;
    l = nl;
  }
  return (l << half_bits_) | r;
}

uint64_t SamplePermutation::operator()(uint64_t i) const {
  uint64_t y = encrypt(i);
  while (y >= n_) y = encrypt(y);  // cycle walking: the cycle through i (< n) returns below n
  return y;
}

// ------------------------------------------------------------------------------------------------ state

json LoaderState::to_json() const {
  return {{"version", 1},
          {"seed", seed},
          {"epoch", epoch},
          {"position", position},
          {"num_train_samples", num_train_samples},
          {"seq_len", seq_len}};
}

LoaderState LoaderState::from_json(const json& j, const std::string& source) {
  if (!j.is_object()) throw Error(source, "loader state is not a JSON object");
  auto u64 = [&](const char* key) -> uint64_t {
    if (!j.contains(key)) throw Error(source, std::string("loader state lacks \"") + key + "\"");
    const json& v = j.at(key);
    if (v.is_number_unsigned()) return v.get<uint64_t>();
    if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
    throw Error(source, std::string("loader state field \"") + key + "\" must be a non-negative integer");
  };
  if (j.contains("version") && u64("version") != 1)
    throw Error(source, "loader state version " + j.at("version").dump() + " is not supported");
  LoaderState s;
  s.seed = u64("seed");
  s.epoch = u64("epoch");
  s.position = u64("position");
  s.num_train_samples = u64("num_train_samples");
  s.seq_len = static_cast<int64_t>(u64("seq_len"));
  return s;
}

// ------------------------------------------------------------------------------------------------ loader

TokenLoader::TokenLoader(std::shared_ptr<const ShardedTokens> data, const LoaderOptions& options)
    : data_(std::move(data)), options_(options) {
  const std::string what = "data loader";
  const auto& o = options_;
  if (!data_) throw std::invalid_argument("TokenLoader: no data");
  if (o.seq_len < 1) throw Error(what, "seq_len must be at least 1, got " + std::to_string(o.seq_len));
  if (o.global_batch < 1) throw Error(what, "global batch must be at least 1, got " + std::to_string(o.global_batch));
  if (o.world_size < 1) throw Error(what, "world size must be at least 1, got " + std::to_string(o.world_size));
  if (o.rank < 0 || o.rank >= o.world_size)
    throw Error(what, "rank " + std::to_string(o.rank) + " is outside [0, " + std::to_string(o.world_size) + ")");
  if (o.global_batch % o.world_size != 0)
    throw Error(what, "global batch " + std::to_string(o.global_batch) + " is not divisible by the world size " +
                          std::to_string(o.world_size));
  const std::string dir = data_->manifest().dir.string();
  const uint64_t row = static_cast<uint64_t>(o.seq_len) + 1;
  num_samples_ = data_->num_tokens() / row;
  if (num_samples_ == 0)
    throw Error(dir, "only " + str(data_->num_tokens()) + " tokens: not a single sample of seq_len+1 = " + str(row) +
                         " tokens");
  uint64_t eval = 0;
  if (o.eval_samples >= 0) {
    eval = static_cast<uint64_t>(o.eval_samples);
  } else {
    if (!(o.eval_fraction >= 0.0 && o.eval_fraction < 1.0))
      throw Error(what, "eval fraction must be in [0, 1), got " + std::to_string(o.eval_fraction));
    eval = static_cast<uint64_t>(static_cast<double>(num_samples_) * o.eval_fraction);
  }
  if (eval >= num_samples_)
    throw Error(dir, "a held-out split of " + str(eval) + " samples leaves nothing to train on (" + str(num_samples_) +
                         " samples of " + str(row) + " tokens)");
  num_train_ = num_samples_ - eval;
  if (num_train_ < static_cast<uint64_t>(o.global_batch))
    spdlog::warn("{}: {} training samples are fewer than the global batch {}: batches span several epochs", dir,
                 num_train_, o.global_batch);
}

uint64_t TokenLoader::entry(uint64_t epoch, uint64_t position) const {
  epoch += position / num_train_;
  position %= num_train_;
  if (!perm_ || perm_epoch_ != epoch) {
    perm_ = std::make_unique<SamplePermutation>(num_train_, options_.seed, epoch);
    perm_epoch_ = epoch;
  }
  return (*perm_)(position);
}

std::vector<uint64_t> TokenLoader::peek_samples() const {
  const uint64_t b = static_cast<uint64_t>(local_batch());
  std::vector<uint64_t> out(b);
  const uint64_t first = position_ + static_cast<uint64_t>(options_.rank) * b;
  for (uint64_t j = 0; j < b; ++j) out[j] = entry(epoch_, first + j);
  return out;
}

void TokenLoader::read_sample(uint64_t sample, int64_t* tokens, bool* doc_start) const {
  const uint64_t row = static_cast<uint64_t>(options_.seq_len) + 1;
  if (sample >= num_samples_) throw std::out_of_range("TokenLoader::read_sample: sample index beyond the data");
  data_->copy_tokens(sample * row, row, tokens);
  data_->doc_starts(sample * row, row - 1, doc_start);
}

void TokenLoader::next_batch_into(torch::Tensor& tokens, torch::Tensor& doc_start, std::vector<uint64_t>* samples,
                                  uint64_t* epoch) {
  const int64_t b = local_batch(), t = options_.seq_len;
  TORCH_CHECK(tokens.defined() && tokens.device().is_cpu() && tokens.scalar_type() == torch::kLong &&
                  tokens.is_contiguous() && tokens.sizes() == torch::IntArrayRef({b, t + 1}),
              "next_batch_into: tokens must be a contiguous CPU int64 tensor [", b, ", ", t + 1, "]");
  TORCH_CHECK(doc_start.defined() && doc_start.device().is_cpu() && doc_start.scalar_type() == torch::kBool &&
                  doc_start.is_contiguous() && doc_start.sizes() == torch::IntArrayRef({b, t}),
              "next_batch_into: doc_start must be a contiguous CPU bool tensor [", b, ", ", t, "]");
  const std::vector<uint64_t> rows = peek_samples();
  int64_t* tp = tokens.data_ptr<int64_t>();
  bool* dp = doc_start.data_ptr<bool>();
  for (int64_t j = 0; j < b; ++j) read_sample(rows[j], tp + j * (t + 1), dp + j * t);
  if (samples) *samples = rows;
  if (epoch) *epoch = epoch_;
  // Advance the global position by one global batch.
  const uint64_t next = position_ + static_cast<uint64_t>(options_.global_batch);
  epoch_ += next / num_train_;
  position_ = next % num_train_;
}

Batch TokenLoader::next_batch() {
  Batch batch;
  batch.tokens = torch::empty({local_batch(), options_.seq_len + 1}, torch::kLong);
  batch.doc_start = torch::empty({local_batch(), options_.seq_len}, torch::kBool);
  next_batch_into(batch.tokens, batch.doc_start, &batch.samples, &batch.epoch);
  return batch;
}

LoaderState TokenLoader::state() const {
  LoaderState s;
  s.seed = options_.seed;
  s.epoch = epoch_;
  s.position = position_;
  s.num_train_samples = num_train_;
  s.seq_len = options_.seq_len;
  return s;
}

void TokenLoader::restore(const LoaderState& s) {
  const std::string dir = data_->manifest().dir.string();
  if (s.seq_len != options_.seq_len)
    throw Error(dir, "loader state was saved with seq_len " + std::to_string(s.seq_len) + ", the loader has " +
                         std::to_string(options_.seq_len));
  if (s.num_train_samples != num_train_)
    throw Error(dir, "loader state was saved for " + str(s.num_train_samples) + " training samples, this data gives " +
                         str(num_train_) + " (other data, or another held-out split)");
  if (s.position >= num_train_)
    throw Error(dir,
                "loader state position " + str(s.position) + " is beyond the epoch of " + str(num_train_) + " samples");
  if (s.seed != options_.seed)
    spdlog::info("data loader: seed {} from the restored state replaces the configured {}", s.seed, options_.seed);
  options_.seed = s.seed;
  perm_.reset();
  epoch_ = s.epoch;
  position_ = s.position;
}

uint64_t TokenLoader::eval_steps() const {
  const uint64_t g = static_cast<uint64_t>(options_.global_batch);
  return (num_eval_samples() + g - 1) / g;
}

Batch TokenLoader::eval_batch(uint64_t step) const {
  if (step >= eval_steps()) throw std::out_of_range("TokenLoader::eval_batch: step beyond the held-out split");
  const uint64_t g = static_cast<uint64_t>(options_.global_batch), b = static_cast<uint64_t>(local_batch());
  const uint64_t begin = step * g, end = std::min(begin + g, num_eval_samples());
  const uint64_t lo = std::min(end, begin + static_cast<uint64_t>(options_.rank) * b), hi = std::min(end, lo + b);
  const int64_t rows = static_cast<int64_t>(hi - lo), t = options_.seq_len;
  Batch batch;
  batch.tokens = torch::empty({rows, t + 1}, torch::kLong);
  batch.doc_start = torch::empty({rows, t}, torch::kBool);
  for (int64_t j = 0; j < rows; ++j) {
    const uint64_t sample = num_train_ + lo + static_cast<uint64_t>(j);
    read_sample(sample, batch.tokens.data_ptr<int64_t>() + j * (t + 1), batch.doc_start.data_ptr<bool>() + j * t);
    batch.samples.push_back(sample);
  }
  return batch;
}

}  // namespace supra::data
