// Precompiled header for supra's C++ targets: the heavy, stable includes only.
#pragma once
#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>
