#include "core/decay.h"

#include <cmath>

#include "core/error.h"

namespace supra {

DecayKind parse_decay(const std::string& name) {
  if (name == "reference") return DecayKind::kReference;
  if (name == "retnet") return DecayKind::kRetNet;
  if (name == "none") return DecayKind::kNone;
  throw Error("decay", "unknown decay '" + name + "' (reference, retnet, none)");
}

std::string to_string(DecayKind kind) {
  switch (kind) {
    case DecayKind::kReference: return "reference";
    case DecayKind::kRetNet: return "retnet";
    case DecayKind::kNone: return "none";
  }
  return "?";
}

namespace {
std::vector<double> power_of_two_slopes(int64_t n) {
  std::vector<double> s(n);
  for (int64_t h = 0; h < n; ++h) s[h] = std::pow(2.0, -8.0 * static_cast<double>(h + 1) / static_cast<double>(n));
  return s;
}
}  // namespace

std::vector<double> alibi_slopes(int64_t heads) {
  TORCH_CHECK(heads > 0, "alibi_slopes: heads must be positive");
  int64_t c = 1;
  while (c * 2 <= heads) c *= 2;
  auto slopes = power_of_two_slopes(c);
  if (c == heads) return slopes;
  auto extra = power_of_two_slopes(2 * c);
  for (int64_t i = 0; static_cast<int64_t>(slopes.size()) < heads; i += 2) slopes.push_back(extra[i]);
  return slopes;
}

torch::Tensor decay_log_gamma(DecayKind kind, int64_t heads) {
  std::vector<double> lg(heads, 0.0);
  if (kind == DecayKind::kReference) {
    auto s = alibi_slopes(heads);
    for (int64_t h = 0; h < heads; ++h) lg[h] = -s[h];
  } else if (kind == DecayKind::kRetNet) {
    for (int64_t h = 0; h < heads; ++h) lg[h] = std::log1p(-std::pow(2.0, -5.0 - static_cast<double>(h)));
  }
  return torch::tensor(lg, torch::kDouble).to(torch::kFloat);
}

}  // namespace supra
