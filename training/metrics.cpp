#include "training/metrics.h"

#include <cmath>
#include <cstdio>
#include <sstream>
#include <vector>

#include "core/base/error.h"
#include "core/base/files.h"

namespace supra::training {

MetricsLog::MetricsLog(const std::filesystem::path& path, std::optional<int64_t> keep_through_step) : path_(path) {
  std::error_code ec;
  if (keep_through_step && std::filesystem::exists(path, ec)) {
    std::istringstream in(read_file(path));
    std::string line, kept;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded()) continue;  // a line cut by a kill
      if (j.contains("step") && j["step"].is_number_integer() && j["step"].get<int64_t>() > *keep_through_step)
        continue;
      kept += line + "\n";
    }
    write_file_atomic(path, kept);
  }
  out_.open(path, std::ios::app);
  if (!out_) throw Error(path.string(), "cannot open metrics file");
}

void MetricsLog::write(const nlohmann::json& record) {
  out_ << record.dump() << "\n";
  out_.flush();
  if (!out_) throw Error(path_.string(), "cannot write metrics (disk full?)");
}

std::string progress_line(const StepStats& s) {
  auto hms = [](double sec) {
    const long t = static_cast<long>(std::max(0.0, sec));
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%02ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    return std::string(buf);
  };
  const int width = 24;
  const int filled = s.total_steps > 0 ? static_cast<int>(width * s.step / s.total_steps) : 0;
  std::string bar = "[" + std::string(filled, '#') + std::string(width - filled, '.') + "]";
  char ppl[32] = "";  // the text perplexity, when the objective measures the cross-entropy
  if (!std::isnan(s.ce)) std::snprintf(ppl, sizeof(ppl), " | ppl %.2f", std::exp(std::min(s.ce, 50.0)));
  char buf[320];
  std::snprintf(buf, sizeof(buf), "%s step %lld/%lld | loss %.4f%s | lr %.2e | gnorm %.3f | %.1fk tok/s%s | ETA %s%s",
                bar.c_str(), static_cast<long long>(s.step), static_cast<long long>(s.total_steps), s.loss, ppl, s.lr,
                s.grad_norm, s.tokens_per_s / 1e3,
                s.mfu >= 0 ? (" | MFU " + std::to_string(static_cast<int>(std::round(100 * s.mfu))) + "%").c_str() : "",
                hms(s.eta_s).c_str(), s.skipped ? " | SKIPPED (non-finite)" : "");
  return buf;
}

}  // namespace supra::training
