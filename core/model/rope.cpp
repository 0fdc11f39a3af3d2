#include "core/model/rope.h"

#include <cmath>

namespace supra {

torch::Tensor rope_inv_freq(int64_t head_dim, double theta, const RopeScaling& scaling) {
  // inv_freq_i = 1 / theta^(2i/d), computed in fp32 like HF (int64 arange -> float, then pow).
  auto exponents = torch::arange(0, head_dim, 2, torch::kInt64).to(torch::kFloat) / static_cast<double>(head_dim);
  auto inv_freq = 1.0 / torch::pow(torch::tensor(theta, torch::kFloat64).to(torch::kFloat), exponents);
  inv_freq = inv_freq.to(torch::kFloat);
  switch (scaling.kind) {
    case RopeScaling::Kind::kDefault: return inv_freq;
    case RopeScaling::Kind::kLinear: return inv_freq / scaling.factor;
    case RopeScaling::Kind::kLlama3: {
      // Llama 3.1: long wavelengths are divided by `factor`, short ones kept, and the band between is blended.
      const double old_len = static_cast<double>(scaling.original_max_position_embeddings);
      const double low_freq_wavelen = old_len / scaling.low_freq_factor;
      const double high_freq_wavelen = old_len / scaling.high_freq_factor;
      auto wavelen = 2 * M_PI / inv_freq;
      auto scaled = torch::where(wavelen > low_freq_wavelen, inv_freq / scaling.factor, inv_freq);
      auto smooth =
          (old_len / wavelen - scaling.low_freq_factor) / (scaling.high_freq_factor - scaling.low_freq_factor);
      auto smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled;
      auto is_medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
      return torch::where(is_medium, smoothed, scaled);
    }
  }
  return inv_freq;
}

RopeTables rope_tables(const torch::Tensor& inv_freq, const torch::Tensor& positions) {
  // freqs[b, t, i] = pos[b, t] * inv_freq[i]; emb = cat(freqs, freqs) so both halves share a frequency.
  auto freqs = positions.to(torch::kFloat).unsqueeze(-1) * inv_freq.to(positions.device()).view({1, 1, -1});
  auto emb = torch::cat({freqs, freqs}, -1);
  return {emb.cos(), emb.sin()};
}

torch::Tensor apply_rope(const torch::Tensor& x, const RopeTables& rope) {
  const int64_t half = x.size(-1) / 2;
  auto cos = rope.cos.to(x.scalar_type()).unsqueeze(1);  // [B, 1, T, d]
  auto sin = rope.sin.to(x.scalar_type()).unsqueeze(1);
  auto x1 = x.narrow(-1, 0, half);
  auto x2 = x.narrow(-1, half, half);
  auto rotated = torch::cat({-x2, x1}, -1);
  return x * cos + rotated * sin;
}

}  // namespace supra
