// The weight-read floor of a decode step: the time to multiply one token per sequence by every matrix the model
// holds (each layer's projections, MLP and feature maps, and the LM head), with the same BLAS and threads a step
// uses. A decode step cannot go faster than reading its weights once; `supra generate --floor` and
// scripts/tools/bench_decode.py report a step's time as a ratio to this, measured in the same run.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "core/model/causal_lm.h"

namespace supra {

struct DecodeFloor {
  std::vector<double> sweep_seconds;  // one sweep = one GEMV (x [batch, in] · Wᵀ) per matrix, in layer order
  int64_t matrices = 0, bytes = 0;    // matrices per sweep and the bytes of their weights
};

// Runs `sweeps` sweeps (after one untimed warm-up sweep).
DecodeFloor measure_decode_floor(const CausalLM& model, int64_t batch, int sweeps);

double median(std::vector<double> values);  // of a non-empty list

}  // namespace supra
