// The learning-rate schedule of the SUPRA reference (open_lm's cosine_lr): linear warmup to the peak, then a
// cosine decay to a floor.
#pragma once
#include <cstdint>

namespace supra::training {

struct Schedule {
  double lr = 3e-5;      // peak
  double min_lr = 1e-5;  // floor reached at the last step
  int64_t warmup_steps = 1000;
  int64_t total_steps = 1;

  // lr at optimizer step `step` (0-based):
  //   step < warmup:  lr · (step + 1) / warmup
  //   otherwise:      min_lr + ½ (1 + cos(π · e / E)) (lr − min_lr),  e = step − warmup, E = total − warmup
  double at(int64_t step) const;
};

}  // namespace supra::training
