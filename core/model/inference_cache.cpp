#include "core/model/inference_cache.h"

#include "core/base/error.h"

namespace supra {

KvPolicy parse_kv_policy(const std::string& name) {
  if (name == "full") return KvPolicy::kFull;
  if (name == "window") return KvPolicy::kWindow;
  if (name == "tova") return KvPolicy::kTova;
  throw Error("--kv-policy", "'" + name + "' is not one of full, window, tova");
}

std::string kv_policy_name(KvPolicy policy) {
  switch (policy) {
    case KvPolicy::kFull: return "full";
    case KvPolicy::kWindow: return "window";
    case KvPolicy::kTova: return "tova";
  }
  return "?";
}

InferenceCache::InferenceCache(int64_t num_layers, KvCacheOptions kv_options)
    : layers(static_cast<size_t>(num_layers)), kv(kv_options) {
  if (kv.bounded() && kv.size < 1) throw Error("--kv-size", "a bounded KV policy needs a size of at least 1 token");
}

int64_t InferenceCache::bytes() const {
  int64_t n = 0;
  for (const auto& l : layers)
    for (const auto* t : {&l.state, &l.k, &l.v})
      if (t->defined()) n += t->numel() * static_cast<int64_t>(t->element_size());
  return n;
}

void evict_to(LayerCache& c, const torch::Tensor& score, int64_t keep) {
  const int64_t L = c.pos.size(1);
  if (L <= keep) return;
  // The `keep` best entries per row, back in cache order (sorting the indices keeps positions increasing).
  auto idx = std::get<0>(std::get<1>(score.topk(keep, /*dim=*/1)).sort(/*dim=*/1));  // [B, keep]
  c.pos = c.pos.gather(1, idx);
  const auto H = c.k.size(1), d = c.k.size(3);
  auto kv_idx = idx.view({idx.size(0), 1, keep, 1}).expand({idx.size(0), H, keep, d});
  c.k = c.k.gather(2, kv_idx);
  c.v = c.v.gather(2, kv_idx);
}

}  // namespace supra
