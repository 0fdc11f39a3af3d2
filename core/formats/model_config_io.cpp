#include "core/formats/model_config_io.h"

#include <fstream>

#include "core/supra/decay.h"

namespace supra {

ModelConfig read_model_config(const nlohmann::json& j, const std::string& source) {
  ModelConfig c = ModelConfig::from_json(j, source);
  check_log_gamma(j, c, source);
  return c;
}

ModelConfig read_model_config(const std::filesystem::path& config_json) {
  ModelConfig c = ModelConfig::from_file(config_json);  // reports unreadable / malformed files
  check_log_gamma(nlohmann::json::parse(std::ifstream(config_json), nullptr, /*allow_exceptions=*/false), c,
                  config_json.string());
  return c;
}

nlohmann::json model_config_json(const ModelConfig& config) {
  nlohmann::json j = config.to_json();
  write_log_gamma(j, config);
  return j;
}

}  // namespace supra
