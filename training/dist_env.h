// Where this process sits in a multi-process job, read from the variables that launchers set: torchrun (RANK,
// WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT, and its agent-hosted store), Slurm (SLURM_PROCID, SLURM_NTASKS,
// SLURM_LOCALID, the master taken from SLURM_JOB_NODELIST), or the same plain variables set by hand.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace supra::training {

struct DistEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  bool agent_store = false;         // torchrun hosts the TCPStore in its agent: every rank is a client
  std::string store_prefix;         // namespaces the keys of this attempt (torchrun restarts reuse the store)
  std::string launcher = "single";  // single | torchrun | slurm | env

  bool distributed() const { return world_size > 1; }
  std::string describe() const;
};

// Reads the environment through `getenv` (injectable for tests). Throws supra::Error("environment", …) when the
// variables are inconsistent (rank out of range, unparsable numbers, a world without a master address, …).
DistEnv read_dist_env(const std::function<std::optional<std::string>(const std::string&)>& getenv);
DistEnv read_dist_env();  // from the process environment

// The first host of a Slurm node list: "gpu[003-006,9],cpu1" → "gpu003". Throws supra::Error when malformed.
std::string first_slurm_host(const std::string& nodelist);

}  // namespace supra::training
