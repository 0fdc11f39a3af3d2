// libFuzzer harness: the TOML config path of `supra train` (cli/toml_settings, cli/train_flags, TrainConfig). Any
// bytes as run.toml must give a validated config (and stage configs) or supra::Error naming the file. Seeds:
// tests/fuzz/corpus/train_toml (the configs/ recipes).
#include "cli/toml_settings.h"
#include "cli/train_flags.h"
#include "core/base/error.h"
#include "tests/fuzz/fuzz_files.h"

namespace {

// The config that `items` make over `base`, validated (what `supra train` does before building anything).
supra::training::TrainConfig apply(const supra::training::TrainConfig& base, const std::vector<CLI::ConfigItem>& items,
                                   const std::string& source) {
  supra::training::TrainConfig c = base;
  CLI::App app("", "train");
  std::vector<std::function<void()>> finish;
  supra::cli::add_keys(app, c, finish);
  supra::cli::apply_config_items(app, items, source);
  for (const auto& f : finish) f();
  (void)app.config_to_str(/*default_also=*/true, /*write_description=*/false);
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = supra::fuzz::folder().write("run.toml", data, size).string();
  try {
    auto items = supra::cli::read_toml_items(path);
    const auto stages = supra::cli::split_stage_items(items, path);
    const supra::training::TrainConfig recipe = apply({}, items, path);
    recipe.validate();
    for (const auto& s : stages) apply(recipe, s.file, path).validate();
  } catch (const supra::Error&) {
  }
  return 0;
}
