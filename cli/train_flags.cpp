#include "cli/train_flags.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <memory>
#include <regex>
#include <type_traits>

#include "core/base/error.h"

namespace supra::cli {
namespace {

// Registers one config key as a flag. Booleans get `--section.key` / `--section.no_key`; enumerated keys are
// parsed by name (their textual value is kept so that --print-config shows names); `finish` collects the
// conversions that run after parsing.
template <typename T>
void add_key(CLI::App& cmd, T& member, const std::string& key, const std::string& help,
             std::vector<std::function<void()>>& finish) {
  const std::string flag = "--" + key;
  if constexpr (std::is_same_v<T, bool>) {
    const auto dot = key.find('.');
    cmd.add_flag(flag + "{true},!--" + key.substr(0, dot + 1) + "no_" + key.substr(dot + 1), member, help);
  } else if constexpr (std::is_enum_v<T>) {
    auto text = std::make_shared<std::string>(training::enum_name(member));
    std::vector<std::string> names;
    for (const auto& [n, v] : training::enum_names<T>()) names.push_back(n);
    cmd.add_option(flag, *text, help)->check(CLI::IsMember(names))->capture_default_str();
    finish.push_back([text, &member] {
      for (const auto& [n, v] : training::enum_names<T>())
        if (n == *text) member = v;
    });
  } else if constexpr (std::is_integral_v<T>) {
    // Integers exactly as written: "1e20", "2.5" or out-of-range values are refused, never rounded or clamped.
    cmd.add_option(flag, member, help)
        ->capture_default_str()
        ->check(CLI::Validator(
            [](std::string& text) -> std::string {
              T v{};
              const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
              if (ec == std::errc() && end == text.data() + text.size()) return "";
              return "'" + text + "' is not an integer in [" + std::to_string(std::numeric_limits<T>::min()) + ", " +
                     std::to_string(std::numeric_limits<T>::max()) + "]";
            },
            "INTEGER"));
  } else {
    cmd.add_option(flag, member, help)->capture_default_str();
  }
}

}  // namespace

void add_keys(CLI::App& cmd, training::TrainConfig& c, std::vector<std::function<void()>>& finish) {
#define SUPRA_ADD_KEY(type, member, key, def, bounds, on_resume, help) add_key(cmd, c.member, key, help, finish);
  SUPRA_TRAIN_CONFIG_KEYS(SUPRA_ADD_KEY)
#undef SUPRA_ADD_KEY
}

std::vector<StageSettings> split_stage_items(std::vector<CLI::ConfigItem>& items, const std::string& source) {
  // "stages.NAME.section.key", NAME of a-z 0-9 _ (no std::regex: its recursion is unbounded in the key's length).
  auto word = [](const std::string& w) {
    return !w.empty() && std::all_of(w.begin(), w.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    });
  };
  std::vector<StageSettings> stages;
  std::vector<CLI::ConfigItem> rest;
  for (auto& item : items) {
    if (item.name.rfind("stages.", 0) != 0) {
      rest.push_back(std::move(item));
      continue;
    }
    const size_t a = item.name.find('.', 7), b = a == std::string::npos ? a : item.name.find('.', a + 1);
    const std::string name = item.name.substr(7, a - 7);
    const std::string section = b == std::string::npos ? "" : item.name.substr(a + 1, b - a - 1);
    const std::string key = b == std::string::npos ? "" : item.name.substr(b + 1);
    if (!word(name) || !word(section) || !word(key))
      throw Error(source,
                  "'" + item.name + "': stage settings are [stages.NAME.section] key = value (NAME: a-z 0-9 _)");
    auto it = std::find_if(stages.begin(), stages.end(), [&](const StageSettings& s) { return s.name == name; });
    if (it == stages.end()) it = stages.insert(stages.end(), StageSettings{name, {}, {}});
    item.name = section + "." + key;
    it->file.push_back(std::move(item));
  }
  items = std::move(rest);
  return stages;
}

void add_stage_flags(std::vector<StageSettings>& stages, const std::vector<std::string>& flags) {
  static const std::regex flag(R"(([a-z0-9_]+)\.([a-z_]+\.[a-z_0-9]+)=(.*))");
  for (const std::string& f : flags) {
    std::smatch m;
    if (!std::regex_match(f, m, flag)) throw Error("--stage " + f, "expected NAME.section.key=value");
    auto it = std::find_if(stages.begin(), stages.end(), [&](const StageSettings& s) { return s.name == m[1].str(); });
    if (it == stages.end()) throw Error("--stage " + f, "the recipe has no stage '" + m[1].str() + "'");
    CLI::ConfigItem item;
    item.name = m[2].str();
    item.inputs = {m[3].str()};
    it->flags.push_back(std::move(item));
  }
}

}  // namespace supra::cli
