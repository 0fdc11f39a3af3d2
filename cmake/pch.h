// Precompiled header for supra's C++ targets: the heavy, stable includes only.
#pragma once
#include <torch/torch.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>
