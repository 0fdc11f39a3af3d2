// The process group of a training job: LibTorch's c10d with NCCL for CUDA tensors and Gloo for CPU tensors,
// rendezvous through a TCPStore (hosted by rank 0, or by torchrun's agent). Every collective has the job's
// timeout; a peer that dies or stalls turns into a supra::Error naming this rank and the collective, never a hang.
// A single process started without a launcher needs no process group: every collective is then the identity.
#pragma once
#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include <chrono>
#include <memory>
#include <string>

#include "training/dist_env.h"

namespace supra::training {

class Communicator {
 public:
  // Connects to the others (blocks until all WORLD_SIZE processes joined or `timeout` passed). `device` picks the
  // backend: NCCL for CUDA, Gloo for CPU.
  Communicator(const DistEnv& env, torch::Device device, std::chrono::milliseconds timeout);
  ~Communicator();

  int rank() const { return env_.rank; }
  int size() const { return env_.world_size; }
  const DistEnv& env() const { return env_; }
  std::string backend_name() const;

  // Asynchronous collectives (handles are waited with wait(); null handle when there is nothing to do).
  using Handle = c10::intrusive_ptr<c10d::Work>;
  Handle allreduce_sum_async(torch::Tensor& t);
  Handle reduce_scatter_sum_async(torch::Tensor& out, torch::Tensor& in);  // in: [W·n], out: [n]
  void wait(Handle& h, const char* what);

  void allreduce_sum(torch::Tensor& t);
  void allgather(torch::Tensor& out, torch::Tensor& in);  // in: [n], out: [W·n]
  void broadcast(torch::Tensor& t, int root = 0);
  int64_t broadcast(int64_t value, int root = 0);  // a host value through a tensor on the job's device
  double sum(double local);
  double max(double local);
  bool all_ok(bool local_ok);  // true when every rank passed true
  void barrier();

 private:
  [[noreturn]] void fail(const char* what, const std::exception& e) const;
  double reduce_scalar(double local, c10d::ReduceOp op);

  DistEnv env_;
  torch::Device device_;
  std::chrono::milliseconds timeout_;
  c10::intrusive_ptr<c10d::Backend> backend_;
};

}  // namespace supra::training
