#include "core/supra/decay.h"

#include <cmath>

#include "core/base/error.h"

namespace supra {

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

void write_log_gamma(nlohmann::json& j, const ModelConfig& c) {
  if (!c.supra) return;
  auto lg = decay_log_gamma(c.supra->decay, c.num_attention_heads);
  j["supra"]["log_gamma"] = std::vector<double>(lg.data_ptr<float>(), lg.data_ptr<float>() + lg.numel());
}

void check_log_gamma(const nlohmann::json& j, const ModelConfig& c, const std::string& source) {
  if (!c.supra || !j.contains("supra") || !j.at("supra").is_object()) return;
  const auto& s = j.at("supra");
  if (!s.contains("log_gamma") || s.at("log_gamma").is_null()) return;
  const auto& lg = s.at("log_gamma");
  const auto expected = decay_log_gamma(c.supra->decay, c.num_attention_heads);
  bool same = lg.is_array() && static_cast<int64_t>(lg.size()) == expected.numel();
  for (int64_t h = 0; same && h < expected.numel(); ++h)
    same = lg[h].is_number() && static_cast<float>(lg[h].get<double>()) == expected[h].item<float>();
  if (!same)
    throw Error(source, "supra log_gamma does not match decay '" + to_string(c.supra->decay) + "' for " +
                            std::to_string(c.num_attention_heads) + " heads (custom decays are not supported)");
}

}  // namespace supra
