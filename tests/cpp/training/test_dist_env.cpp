// Launcher environments → DistEnv (training/dist_env.h): torchrun, Slurm, plain variables, and bad input.
#include <gtest/gtest.h>

#include <map>

#include "core/base/error.h"
#include "training/dist_env.h"

using supra::training::DistEnv;
using supra::training::first_slurm_host;
using supra::training::read_dist_env;

namespace {

DistEnv from(const std::map<std::string, std::string>& vars) {
  return read_dist_env([&](const std::string& n) -> std::optional<std::string> {
    auto it = vars.find(n);
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  });
}

}  // namespace

TEST(DistEnv, NoLauncherIsASingleProcess) {
  DistEnv e = from({});
  EXPECT_EQ(e.world_size, 1);
  EXPECT_EQ(e.rank, 0);
  EXPECT_FALSE(e.distributed());
  EXPECT_EQ(e.launcher, "single");
}

TEST(DistEnv, Torchrun) {
  DistEnv e = from({{"RANK", "5"},
                    {"WORLD_SIZE", "16"},
                    {"LOCAL_RANK", "1"},
                    {"MASTER_ADDR", "node7"},
                    {"MASTER_PORT", "29400"},
                    {"TORCHELASTIC_RUN_ID", "abc"},
                    {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                    {"TORCHELASTIC_RESTART_COUNT", "2"}});
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.world_size, 16);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.master_addr, "node7");
  EXPECT_EQ(e.master_port, 29400);
  EXPECT_TRUE(e.agent_store);
  EXPECT_EQ(e.launcher, "torchrun");
  EXPECT_EQ(e.store_prefix, "supra/attempt_2");  // a restarted attempt does not see the failed one's keys
}

TEST(DistEnv, PlainVariables) {
  DistEnv e = from({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "10.0.0.1"}});
  EXPECT_EQ(e.launcher, "env");
  EXPECT_FALSE(e.agent_store);
  EXPECT_EQ(e.master_port, 29500);
  EXPECT_EQ(e.master_addr, "10.0.0.1");
}

TEST(DistEnv, SlurmTakesTheMasterFromTheNodeList) {
  DistEnv e = from({{"SLURM_NTASKS", "16"},
                    {"SLURM_PROCID", "9"},
                    {"SLURM_LOCALID", "1"},
                    {"SLURM_JOB_ID", "42"},
                    {"SLURM_JOB_NODELIST", "gpu[003-004]"}});
  EXPECT_EQ(e.launcher, "slurm");
  EXPECT_EQ(e.rank, 9);
  EXPECT_EQ(e.world_size, 16);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.master_addr, "gpu003");
  // MASTER_ADDR, when exported in the batch script, wins.
  EXPECT_EQ(from({{"SLURM_NTASKS", "2"}, {"SLURM_JOB_NODELIST", "a,b"}, {"MASTER_ADDR", "b"}}).master_addr, "b");
  // torchrun inside an allocation: its variables win over Slurm's.
  EXPECT_EQ(from({{"SLURM_NTASKS", "1"}, {"RANK", "3"}, {"WORLD_SIZE", "8"}}).world_size, 8);
}

TEST(DistEnv, SlurmNodeLists) {
  EXPECT_EQ(first_slurm_host("node1"), "node1");
  EXPECT_EQ(first_slurm_host("node1,node2"), "node1");
  EXPECT_EQ(first_slurm_host("gpu[07-12,15]"), "gpu07");
  EXPECT_EQ(first_slurm_host("gpu[9,11]-ib"), "gpu9-ib");
  EXPECT_EQ(first_slurm_host("a1,gpu[1-2]"), "a1");
  EXPECT_THROW(first_slurm_host("gpu[1-2"), supra::Error);
  EXPECT_THROW(first_slurm_host("gpu[]"), supra::Error);
  EXPECT_THROW(first_slurm_host(""), supra::Error);
}

TEST(DistEnv, InconsistentVariablesAreErrors) {
  EXPECT_THROW(from({{"RANK", "2"}, {"WORLD_SIZE", "2"}}), supra::Error);
  EXPECT_THROW(from({{"RANK", "x"}, {"WORLD_SIZE", "2"}}), supra::Error);
  EXPECT_THROW(from({{"WORLD_SIZE", "0"}}), supra::Error);
  EXPECT_THROW(from({{"WORLD_SIZE", "2"}, {"MASTER_PORT", "70000"}}), supra::Error);
  EXPECT_THROW(from({{"SLURM_NTASKS", "2"}}), supra::Error);  // no node list, no MASTER_ADDR
}
