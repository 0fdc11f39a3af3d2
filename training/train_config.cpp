#include "training/train_config.h"

#include <sstream>
#include <type_traits>

#include "core/base/error.h"

namespace supra::training {

template <>
const std::vector<std::pair<std::string, DeviceChoice>>& enum_names<DeviceChoice>() {
  static const std::vector<std::pair<std::string, DeviceChoice>> n = {
      {"auto", DeviceChoice::kAuto}, {"cpu", DeviceChoice::kCpu}, {"cuda", DeviceChoice::kCuda}};
  return n;
}
template <>
const std::vector<std::pair<std::string, Precision>>& enum_names<Precision>() {
  static const std::vector<std::pair<std::string, Precision>> n = {
      {"auto", Precision::kAuto}, {"fp32", Precision::kFp32}, {"bf16", Precision::kBf16}};
  return n;
}
template <>
const std::vector<std::pair<std::string, ParamDtype>>& enum_names<ParamDtype>() {
  static const std::vector<std::pair<std::string, ParamDtype>> n = {{"fp32", ParamDtype::kFp32},
                                                                    {"bf16", ParamDtype::kBf16}};
  return n;
}
template <>
const std::vector<std::pair<std::string, ResumeMode>>& enum_names<ResumeMode>() {
  static const std::vector<std::pair<std::string, ResumeMode>> n = {{"none", ResumeMode::kNone},
                                                                    {"auto", ResumeMode::kAuto}};
  return n;
}

template <>
const std::vector<std::pair<std::string, Objective>>& enum_names<Objective>() {
  static const std::vector<std::pair<std::string, Objective>> n = {
      {"lm", Objective::kLm}, {"attention", Objective::kAttention}, {"distill", Objective::kDistill}};
  return n;
}

namespace {

template <typename T>
constexpr bool kIsEnum = std::is_enum_v<T>;

std::string format_number(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// "must be ≥ 1", "must be in [0, 1)", … from a key's bounds.
std::string describe(const Bounds& b) {
  const bool has_lo = b.lo > -std::numeric_limits<double>::infinity();
  const bool has_hi = b.hi < std::numeric_limits<double>::infinity();
  if (has_lo && has_hi)
    return std::string("must be in ") + (b.lo_open ? "(" : "[") + format_number(b.lo) + ", " + format_number(b.hi) +
           (b.hi_open ? ")" : "]");
  if (has_lo) return std::string("must be ") + (b.lo_open ? "> " : "≥ ") + format_number(b.lo);
  return std::string("must be ") + (b.hi_open ? "< " : "≤ ") + format_number(b.hi);
}

template <typename T>
void check_bounds(const char* key, const T& v, const Bounds& b) {
  if constexpr (std::is_same_v<T, std::string>) {
    if (b.required && v.empty()) throw Error("config", std::string(key) + " is required");
  } else if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
    const double x = static_cast<double>(v);
    const bool ok = (b.lo_open ? x > b.lo : x >= b.lo) && (b.hi_open ? x < b.hi : x <= b.hi);
    if (!ok) throw Error("config", std::string(key) + " " + describe(b) + " (got " + format_number(x) + ")");
  }
}

template <typename T>
nlohmann::json to_json_value(const T& v) {
  if constexpr (kIsEnum<T>)
    return enum_name(v);
  else
    return v;
}

template <typename T>
void from_json_value(const nlohmann::json& j, T& v) {
  if constexpr (kIsEnum<T>) {
    const std::string name = j.get<std::string>();
    for (const auto& [n, e] : enum_names<T>())
      if (n == name) {
        v = e;
        return;
      }
    throw Error("config", "unknown value '" + name + "' in a saved train config");
  } else {
    j.get_to(v);
  }
}

template <typename T>
std::string default_text(const T& v, const Bounds& b) {
  if constexpr (kIsEnum<T>)
    return enum_name(v);
  else if constexpr (std::is_same_v<T, bool>)
    return v ? "true" : "false";
  else if constexpr (std::is_same_v<T, std::string>)
    return v.empty() ? (b.required ? "(required)" : "\"\"") : "\"" + v + "\"";
  else
    return format_number(static_cast<double>(v));
}

}  // namespace

void TrainConfig::validate(int64_t world_size) const {
  auto fail = [](const std::string& why) { throw Error("config", why); };
#define SUPRA_CHECK_KEY(type, member, key, def, bounds, on_resume, help) check_bounds(key, member, bounds);
  SUPRA_TRAIN_CONFIG_KEYS(SUPRA_CHECK_KEY)
#undef SUPRA_CHECK_KEY
  // Relations between keys.
  if (global_batch % world_size != 0)
    fail("train.global_batch (" + std::to_string(global_batch) + ") must be divisible by the world size (" +
         std::to_string(world_size) + ")");
  const int64_t local = global_batch / world_size;
  if (local % micro_batch != 0)
    fail("the per-rank batch (" + std::to_string(local) + " rows) must be a multiple of train.micro_batch (" +
         std::to_string(micro_batch) + ")");
  if (min_lr > lr) fail("optim.min_lr must be ≤ optim.lr");
  if (decay != "reference" && decay != "retnet" && decay != "none")
    fail("model.decay must be reference, retnet or none");
  if (param_dtype == ParamDtype::kBf16 && dist_zero < 1)
    fail("train.param_dtype = bf16 needs dist.zero ≥ 1 (the fp32 master weights live in the optimizer's slices)");
  if (param_dtype == ParamDtype::kBf16 && precision == Precision::kFp32)
    fail("train.param_dtype = bf16 needs train.precision bf16 or auto");
  if (o_proj_fit_batches > 0 && objective != Objective::kAttention)
    fail("attention.o_proj_fit_batches needs train.objective = attention");
}

nlohmann::json TrainConfig::to_json() const {
  nlohmann::json j;
#define SUPRA_KEY_TO_JSON(type, member, key, def, bounds, on_resume, help) j[#member] = to_json_value(member);
  SUPRA_TRAIN_CONFIG_KEYS(SUPRA_KEY_TO_JSON)
#undef SUPRA_KEY_TO_JSON
  return j;
}

TrainConfig TrainConfig::from_json(const nlohmann::json& j) {
  TrainConfig c;
  try {
#define SUPRA_KEY_FROM_JSON(type, member, key, def, bounds, on_resume, help) \
  if (j.contains(#member)) from_json_value(j.at(#member), c.member);
    SUPRA_TRAIN_CONFIG_KEYS(SUPRA_KEY_FROM_JSON)
#undef SUPRA_KEY_FROM_JSON
  } catch (const nlohmann::json::exception& e) {
    throw Error("config", std::string("malformed saved train config: ") + e.what());
  }
  return c;
}

std::string TrainConfig::resume_incompatibility(const TrainConfig& s) const {
#define SUPRA_KEY_RESUME(type, member, key, def, bounds, on_resume, help) \
  if (on_resume == OnResume::kMustMatch && !(member == s.member))         \
    return std::string(key) + " differs from the checkpoint's";
  SUPRA_TRAIN_CONFIG_KEYS(SUPRA_KEY_RESUME)
#undef SUPRA_KEY_RESUME
  return "";
}

std::string TrainConfig::doc_table() {
  const TrainConfig d;
  auto cell = [](std::string text) {  // a Markdown table cell: `|` escaped
    for (size_t i = text.find('|'); i != std::string::npos; i = text.find('|', i + 2)) text.insert(i, "\\");
    return text;
  };
  std::ostringstream out;
  out << "| key | default | meaning | on resume |\n|---|---|---|---|\n";
#define SUPRA_KEY_DOC(type, member, key, def, bounds, on_resume, help)                            \
  out << "| `" << key << "` | " << default_text(d.member, bounds) << " | " << cell(help) << " | " \
      << (on_resume == OnResume::kMustMatch ? "must match" : "may change") << " |\n";
  SUPRA_TRAIN_CONFIG_KEYS(SUPRA_KEY_DOC)
#undef SUPRA_KEY_DOC
  return out.str();
}

}  // namespace supra::training
