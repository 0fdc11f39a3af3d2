#include "core/model/attention_registry.h"

#include <map>

#include "core/base/error.h"

namespace supra {
namespace {
// A function-local static: safe to use from other files' static initialisers, whatever their order.
std::map<std::string, AttentionFactory>& registry() {
  static std::map<std::string, AttentionFactory> r;
  return r;
}
}  // namespace

bool register_attention(const std::string& kind, AttentionFactory factory) {
  if (!registry().emplace(kind, std::move(factory)).second)
    throw std::logic_error("attention kind '" + kind + "' registered twice");
  return true;
}

std::shared_ptr<AttentionImpl> make_attention(const ModelConfig& config, int64_t layer) {
  const std::string kind = config.attention_kind();
  auto it = registry().find(kind);
  if (it == registry().end()) {
    std::string known;
    for (const auto& k : attention_kinds()) known += (known.empty() ? "" : ", ") + k;
    throw Error("model", "unknown attention kind '" + kind + "' (registered: " + known + ")");
  }
  return it->second(config, layer);
}

std::vector<std::string> attention_kinds() {
  std::vector<std::string> out;
  for (const auto& [k, f] : registry()) out.push_back(k);
  return out;
}

}  // namespace supra
