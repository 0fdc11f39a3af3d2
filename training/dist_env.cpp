#include "training/dist_env.h"

#include <cstdlib>

#include "core/base/error.h"

namespace supra::training {

namespace {

int parse_int(const std::string& name, const std::string& value) {
  try {
    size_t used = 0;
    const long v = std::stol(value, &used);
    if (used != value.size() || v < 0 || v > (1L << 30)) throw std::invalid_argument("range");
    return static_cast<int>(v);
  } catch (const std::exception&) {
    throw Error("environment", name + "='" + value + "' is not a non-negative integer");
  }
}

}  // namespace

std::string first_slurm_host(const std::string& nodelist) {
  // Grammar: host[,host…] where a host is prefix[ranges]suffix?; ranges = a[-b][,c[-d]…] with zero-padded numbers.
  const size_t comma = nodelist.find(',');
  const size_t bracket = nodelist.find('[');
  if (bracket == std::string::npos || (comma != std::string::npos && comma < bracket)) {
    const std::string host = nodelist.substr(0, comma);
    if (host.empty()) throw Error("environment", "SLURM_JOB_NODELIST='" + nodelist + "' names no host");
    return host;
  }
  const size_t close = nodelist.find(']', bracket);
  if (close == std::string::npos || close == bracket + 1)
    throw Error("environment", "SLURM_JOB_NODELIST='" + nodelist + "' has an unclosed or empty range");
  const std::string ranges = nodelist.substr(bracket + 1, close - bracket - 1);
  const size_t end = ranges.find_first_of(",-");
  const std::string first = ranges.substr(0, end);
  if (first.empty() || first.find_first_not_of("0123456789") != std::string::npos)
    throw Error("environment", "SLURM_JOB_NODELIST='" + nodelist + "' has a malformed range");
  const size_t next = nodelist.find(',', close);
  const std::string suffix =
      nodelist.substr(close + 1, next == std::string::npos ? std::string::npos : next - close - 1);
  return nodelist.substr(0, bracket) + first + suffix;
}

std::string DistEnv::describe() const {
  return "rank " + std::to_string(rank) + "/" + std::to_string(world_size) + " (local " + std::to_string(local_rank) +
         ", " + launcher + ", master " + master_addr + ":" + std::to_string(master_port) + ")";
}

DistEnv read_dist_env(const std::function<std::optional<std::string>(const std::string&)>& getenv) {
  DistEnv e;
  auto get = [&](const char* n) { return getenv(n); };
  auto num = [&](const char* n) -> std::optional<int> {
    auto v = get(n);
    if (!v || v->empty()) return std::nullopt;
    return parse_int(n, *v);
  };
  if (auto ws = num("WORLD_SIZE")) {
    // torchrun, or plain variables (also the usual choice under Slurm with srun + explicit exports).
    e.world_size = *ws;
    e.rank = num("RANK").value_or(0);
    e.local_rank = num("LOCAL_RANK").value_or(0);
    e.launcher = get("TORCHELASTIC_RUN_ID") ? "torchrun" : "env";
    auto agent = get("TORCHELASTIC_USE_AGENT_STORE");
    e.agent_store = agent && (*agent == "True" || *agent == "true" || *agent == "1");
    e.store_prefix = "supra/attempt_" + get("TORCHELASTIC_RESTART_COUNT").value_or("0");
  } else if (auto nt = num("SLURM_NTASKS")) {
    e.world_size = *nt;
    e.rank = num("SLURM_PROCID").value_or(0);
    e.local_rank = num("SLURM_LOCALID").value_or(0);
    e.launcher = "slurm";
    e.store_prefix = "supra/slurm_" + get("SLURM_JOB_ID").value_or("0") + "_" + get("SLURM_STEP_ID").value_or("0");
    if (!get("MASTER_ADDR")) {
      auto nodes = get("SLURM_STEP_NODELIST");
      if (!nodes) nodes = get("SLURM_JOB_NODELIST");
      if (nodes)
        e.master_addr = first_slurm_host(*nodes);
      else if (e.world_size > 1)
        throw Error("environment", "Slurm job without SLURM_JOB_NODELIST or MASTER_ADDR");
    }
  } else {
    e.store_prefix = "supra/single";
  }
  if (e.world_size < 1) throw Error("environment", "world size must be ≥ 1");
  if (e.rank >= e.world_size)
    throw Error("environment", "rank " + std::to_string(e.rank) + " is outside the world of " +
                                   std::to_string(e.world_size) + " processes");
  if (auto a = get("MASTER_ADDR"); a && !a->empty()) e.master_addr = *a;
  if (auto p = num("MASTER_PORT")) e.master_port = *p;
  if (e.master_port < 1 || e.master_port > 65535)
    throw Error("environment", "MASTER_PORT=" + std::to_string(e.master_port) + " is not a TCP port");
  return e;
}

DistEnv read_dist_env() {
  return read_dist_env([](const std::string& n) -> std::optional<std::string> {
    const char* v = std::getenv(n.c_str());
    return v ? std::optional<std::string>(v) : std::nullopt;
  });
}

}  // namespace supra::training
