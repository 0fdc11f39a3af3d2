// supra::Error — the one exception type for bad input: carries the offending file (or subject) and the reason.
// Caught once in the CLI's main, printed as one line, exit code 2. Internal failures use TORCH_CHECK / std errors (exit
// 1).
#pragma once
#include <stdexcept>
#include <string>

namespace supra {

class Error : public std::runtime_error {
 public:
  Error(std::string subject, std::string reason)
      : std::runtime_error(subject.empty() ? reason : subject + ": " + reason),
        subject_(std::move(subject)),
        reason_(std::move(reason)) {}
  const std::string& subject() const { return subject_; }
  const std::string& reason() const { return reason_; }

 private:
  std::string subject_;
  std::string reason_;
};

}  // namespace supra
