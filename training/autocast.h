// bf16 autocast for a scope: on while the guard lives, off (and its cast cache cleared) when it goes, also when the
// forward throws — a throw can never leave autocast switched on for the next step or evaluation.
#pragma once
#include <ATen/autocast_mode.h>
#include <torch/torch.h>

namespace supra::training {

class AutocastGuard {
 public:
  AutocastGuard(torch::DeviceType device, bool enabled) : device_(device), enabled_(enabled) {
    if (!enabled_) return;
    previous_ = at::autocast::is_autocast_enabled(device_);
    at::autocast::set_autocast_enabled(device_, true);
    at::autocast::set_autocast_dtype(device_, at::kBFloat16);
  }
  ~AutocastGuard() {
    if (!enabled_) return;
    at::autocast::set_autocast_enabled(device_, previous_);
    if (!previous_) at::autocast::clear_cache();
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  torch::DeviceType device_;
  bool enabled_;
  bool previous_ = false;
};

}  // namespace supra::training
