#include "training/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <mutex>

#include "core/base/error.h"
#include "core/base/files.h"
#include "core/formats/model_io.h"
#include "core/formats/safetensors.h"

namespace supra::training {
namespace fs = std::filesystem;

namespace {

constexpr const char* kComplete = "COMPLETE";  // written last inside a checkpoint folder

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "step_%08lld", static_cast<long long>(step));
  return buf;
}

std::vector<std::pair<std::string, torch::Tensor>> rng_states() {
  std::vector<std::pair<std::string, torch::Tensor>> out = {{"cpu", at::detail::getDefaultCPUGenerator().get_state()}};
  if (torch::cuda::is_available())
    for (int64_t d = 0; d < static_cast<int64_t>(torch::cuda::device_count()); ++d)
      out.emplace_back("cuda" + std::to_string(d),
                       at::globalContext().defaultGenerator(at::Device(at::kCUDA, d)).get_state());
  return out;
}

}  // namespace

CheckpointManager::CheckpointManager(fs::path run_dir, int64_t keep_last, std::shared_ptr<Communicator> comm)
    : run_dir_(std::move(run_dir)), keep_last_(keep_last), comm_(std::move(comm)) {
  if (!comm_) comm_ = std::make_shared<Communicator>(DistEnv{}, torch::kCPU, std::chrono::seconds(1));
}

std::optional<fs::path> CheckpointManager::latest() const {
  std::error_code ec;
  const fs::path pointer = dir() / "latest";
  if (!fs::exists(pointer, ec)) return std::nullopt;
  std::string name = read_file(pointer);
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  const fs::path folder = dir() / name;
  if (name.empty() || name.find('/') != std::string::npos || !fs::exists(folder / kComplete, ec))
    throw Error(pointer.string(), "points to '" + name + "', which is not a complete checkpoint");
  return folder;
}

nlohmann::json read_trainer_state(const fs::path& folder) {
  const fs::path file = folder / "trainer_state.json";
  try {
    return nlohmann::json::parse(read_file(file));
  } catch (const nlohmann::json::exception& e) {
    throw Error(file.string(), std::string("malformed trainer state: ") + e.what());
  }
}

fs::path resolve_run_checkpoint(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec) || fs::exists(dir / "config.json", ec)) return dir;
  if (fs::exists(dir / "checkpoints" / "latest", ec)) return *CheckpointManager(dir, 1).latest();
  if (fs::exists(dir / "latest", ec)) {
    const fs::path run = dir.has_parent_path() ? dir.parent_path() : fs::path(".");
    if (fs::equivalent(run / "checkpoints", dir, ec)) return *CheckpointManager(run, 1).latest();
  }
  return dir;
}

void CheckpointManager::remove_partial() const {
  std::error_code ec;
  if (!fs::is_directory(dir(), ec)) return;
  for (const auto& e : list_directory(dir()))
    if (e.filename().string().find(".tmp") != std::string::npos) remove_tree(e);
}

fs::path CheckpointManager::save(CausalLM& model, ShardedAdamW& optimizer, const TrainState& state,
                                 const std::string& resolved_config_toml) {
  const bool lead = comm_->rank() == 0;
  const std::string name = step_name(state.step);
  const fs::path final_dir = dir() / name;
  // One temporary name for all ranks (rank 0's pid, broadcast), so that they all write into the same folder.
  const int64_t pid = comm_->broadcast(static_cast<int64_t>(::getpid()), 0);
  const fs::path tmp = dir() / (name + ".tmp-" + std::to_string(pid));
  std::string error;
  auto attempt = [&](const std::function<void()>& f) {
    if (!error.empty()) return;
    try {
      f();
    } catch (const supra::Error& e) {
      error = e.what();
    } catch (const c10::Error& e) {
      error = tmp.string() + ": cannot write checkpoint: " + e.what_without_backtrace();
    } catch (const std::exception& e) {
      error = tmp.string() + ": cannot write checkpoint: " + e.what();
    }
  };
  auto agree = [&](const char* stage) {
    if (!comm_->all_ok(error.empty())) {
      if (lead) remove_tree(tmp);
      throw Error(error.empty() ? tmp.string() : "",
                  error.empty() ? std::string("another rank failed while ") + stage : error);
    }
  };
  if (lead)
    attempt([&] {
      std::error_code ec;
      fs::create_directories(dir(), ec);
      if (ec) throw Error(dir().string(), "cannot create checkpoint folder: " + ec.message());
      remove_tree(tmp);
      fs::create_directory(tmp, ec);
      if (ec) throw Error(tmp.string(), "cannot create: " + ec.message());
    });
  agree("creating the checkpoint folder");
  attempt([&] {
    optimizer.save(tmp);
    if (lead) {
      std::vector<std::pair<std::string, torch::Tensor>> params;
      for (const auto& p : model->named_parameters()) params.emplace_back(p.key(), p.value().detach());
      save_safetensors_dir(tmp, params, 5ull << 30, {{"format", "pt"}});
      ModelConfig config = model->config();
      config.torch_dtype = "float32";
      write_file_atomic(tmp / "config.json", model_config_json(config).dump(2) + "\n");
      save_safetensors(tmp / "rng.safetensors", rng_states());
      nlohmann::json js = {{"step", state.step},
                           {"tokens_seen", state.tokens_seen},
                           {"nonfinite_streak", state.nonfinite_streak},
                           {"world_size", comm_->size()},
                           {"loader", state.loader.to_json()},
                           {"config", state.config.to_json()}};
      write_file_atomic(tmp / "trainer_state.json", js.dump(2) + "\n");
      write_file_atomic(tmp / "train_config.toml", resolved_config_toml);
    }
  });
  agree("writing its checkpoint shard");
  if (lead)
    attempt([&] {
      std::error_code ec;
      for (const auto& f : list_directory(tmp)) fsync_path(f);  // every rank's files are on disk
      write_file_atomic(tmp / kComplete, name + "\n");
      fsync_path(tmp);
      if (fs::exists(final_dir, ec)) remove_tree(final_dir);  // a stale copy of this very step
      fs::rename(tmp, final_dir, ec);
      if (ec) throw Error(final_dir.string(), "cannot rename finished checkpoint: " + ec.message());
      fsync_path(dir());
      write_file_atomic(dir() / "latest", name + "\n");
      // Keep the newest keep_last complete checkpoints (names sort by step).
      std::vector<fs::path> done;
      for (const auto& e : list_directory(dir()))
        if (fs::is_directory(e, ec) && e.filename().string().rfind("step_", 0) == 0 &&
            e.filename().string().find(".tmp") == std::string::npos)
          done.push_back(e);
      std::sort(done.begin(), done.end());
      // Crash-safe: a pruned folder first gets a ".tmp" name (atomic rename), so a kill mid-deletion never leaves
      // a half-deleted folder under a checkpoint's name; remove_partial() finishes it on the next start.
      for (size_t i = 0; i + keep_last_ < done.size(); ++i) {
        if (done[i] == final_dir) continue;
        const fs::path tomb = dir() / (done[i].filename().string() + ".tmp-pruned");
        fs::rename(done[i], tomb, ec);
        remove_tree(ec ? done[i] : tomb);
      }
    });
  agree("publishing the checkpoint");
  return final_dir;
}

TrainState CheckpointManager::load(const fs::path& folder, CausalLM& model, ShardedAdamW& optimizer) const {
  TrainState st;
  const fs::path state_file = folder / "trainer_state.json";
  nlohmann::json js;
  try {
    js = read_trainer_state(folder);
    st.step = js.at("step").get<int64_t>();
    st.tokens_seen = js.at("tokens_seen").get<uint64_t>();
    st.nonfinite_streak = js.value("nonfinite_streak", int64_t{0});
    st.loader = data::LoaderState::from_json(js.at("loader"), state_file.string());
    st.config = TrainConfig::from_json(js.at("config"));
  } catch (const nlohmann::json::exception& e) {
    throw Error(state_file.string(), std::string("malformed trainer state: ") + e.what());
  }
  torch::NoGradGuard no_grad;
  auto tensors = load_safetensors_dir(folder);
  for (auto& p : model->named_parameters()) {
    auto it = tensors.find(p.key());
    if (it == tensors.end()) throw Error(folder.string(), "checkpoint lacks parameter '" + p.key() + "'");
    if (it->second.sizes() != p.value().sizes())
      throw Error(folder.string(), "parameter '" + p.key() + "' has another shape than the model's");
    p.value().copy_(it->second);
  }
  optimizer.load(folder);
  SafetensorsFile rng(folder / "rng.safetensors");
  {
    at::Generator cpu_gen = at::detail::getDefaultCPUGenerator();  // a handle on the global generator
    std::lock_guard<std::mutex> lock(cpu_gen.mutex());
    cpu_gen.set_state(rng.get("cpu"));
  }
  if (torch::cuda::is_available()) {
    for (int64_t d = 0; d < static_cast<int64_t>(torch::cuda::device_count()); ++d) {
      if (!rng.contains("cuda" + std::to_string(d))) continue;
      at::Generator gen = at::globalContext().defaultGenerator(at::Device(at::kCUDA, d));
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(rng.get("cuda" + std::to_string(d)));
    }
  }
  return st;
}

}  // namespace supra::training
