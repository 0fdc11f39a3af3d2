// Run observability: the JSONL metrics file (one object per line, appended and flushed) and the human progress
// line (step, loss, ppl, lr, grad norm, tokens/s, MFU, ETA).
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

namespace supra::training {

class MetricsLog {
 public:
  // Opens <path> for appending; with `keep_through_step`, first drops lines whose "step" is larger (a resumed
  // run rewrites what the interrupted one logged after its checkpoint).
  MetricsLog(const std::filesystem::path& path, std::optional<int64_t> keep_through_step);
  void write(const nlohmann::json& record);

 private:
  std::ofstream out_;
  std::filesystem::path path_;
};

struct StepStats {
  int64_t step = 0, total_steps = 0;
  double loss = 0, ce = 0, lr = 0, grad_norm = 0, tokens_per_s = 0, mfu = -1, eta_s = 0;
  bool skipped = false;
};

std::string progress_line(const StepStats& s);

}  // namespace supra::training
