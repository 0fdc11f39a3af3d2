// libFuzzer harness: config.json (core/formats/model_config_io, ModelConfig). Any bytes must give a validated
// config or supra::Error; a config that is accepted must be written back (model_config_json) as one that reads
// back to the same config. Seeds: tests/fuzz/corpus/model_config.
#include "core/base/error.h"
#include "core/formats/model_config_io.h"
#include "tests/fuzz/fuzz_files.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = supra::fuzz::folder().write("config.json", data, size);
  supra::ModelConfig config;
  try {
    config = supra::read_model_config(path);
  } catch (const supra::Error&) {
    return 0;
  }
  const nlohmann::json written = supra::model_config_json(config);
  try {
    const supra::ModelConfig again = supra::read_model_config(written, "written config.json");
    if (supra::model_config_json(again) != written)
      supra::fuzz::broken_promise("config.json does not read back to the config it was written from");
  } catch (const supra::Error& e) {
    supra::fuzz::broken_promise(std::string("an accepted config is written as one that is refused: ") + e.what());
  }
  return 0;
}
