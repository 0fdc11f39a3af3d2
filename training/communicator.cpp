#include "training/communicator.h"

#include <spdlog/spdlog.h>

#include <csignal>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#if __has_include(<gloo/algorithm.h>)
#define SUPRA_HAVE_GLOO 1
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if defined(SUPRA_WITH_CUDA) && defined(SUPRA_HAVE_NCCL)
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "core/base/error.h"

namespace supra::training {

namespace {

std::string first_line(std::string s) {
  const size_t nl = s.find('\n');
  if (nl != std::string::npos) s.resize(nl);
  return s;
}

}  // namespace

Communicator::Communicator(const DistEnv& env, torch::Device device, std::chrono::milliseconds timeout)
    : env_(env), device_(device), timeout_(timeout) {
  // A launcher's world of one still gets a process group (so `torchrun --nproc-per-node 1` exercises NCCL / Gloo).
  if (env_.launcher == "single") return;
  // A peer that dies leaves sockets whose next write raises SIGPIPE, which would kill this rank silently; ignored,
  // the write fails with EPIPE and the collective reports the dead peer.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(env_.master_port);
    so.isServer = !env_.agent_store && env_.rank == 0;
    so.numWorkers = env_.agent_store ? std::nullopt : std::optional<size_t>(env_.world_size);
    so.waitWorkers = false;
    so.timeout = timeout_;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(env_.master_addr, so);
    auto store = c10::make_intrusive<c10d::PrefixStore>(env_.store_prefix, tcp);
    if (device_.is_cuda()) {
#if defined(SUPRA_WITH_CUDA) && defined(SUPRA_HAVE_NCCL)
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout_;
      backend_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, env_.rank, env_.world_size, opts);
#else
      throw Error("dist", "this build of supra has no NCCL (LibTorch without CUDA or nccl.h not found at build time)");
#endif
    } else {
#ifdef SUPRA_HAVE_GLOO
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout_);
      const bool loopback = env_.master_addr == "127.0.0.1" || env_.master_addr == "localhost";
      opts->devices.push_back(loopback ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                       : c10d::ProcessGroupGloo::createDefaultDevice());
      backend_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store, env_.rank, env_.world_size, opts);
#else
      throw Error("dist",
                  "this build of supra has no Gloo (the gloo headers were not found at build time; "
                  "install Debian's libgloo-dev and rebuild)");
#endif
    }
  } catch (const supra::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(env_.rank),
                "cannot join the process group at " + env_.master_addr + ":" + std::to_string(env_.master_port) +
                    " within " + std::to_string(timeout_.count() / 1000) + " s: " + first_line(e.what()));
  }
  barrier();
  spdlog::info("joined the process group: {} via {}", env_.describe(), backend_name());
}

Communicator::~Communicator() = default;

std::string Communicator::backend_name() const {
  if (!backend_) return "none";
  return device_.is_cuda() ? "nccl" : "gloo";
}

void Communicator::fail(const char* what, const std::exception& e) const {
  std::string msg = first_line(e.what());
  if (auto* c = dynamic_cast<const c10::Error*>(&e)) msg = first_line(c->what_without_backtrace());
  throw Error("rank " + std::to_string(env_.rank), std::string(what) +
                                                       " failed (a peer exited, or the collective timed out after " +
                                                       std::to_string(timeout_.count() / 1000) + " s): " + msg);
}

Communicator::Handle Communicator::allreduce_sum_async(torch::Tensor& t) {
  if (!backend_) return {};
  try {
    std::vector<at::Tensor> v{t};
    return backend_->allreduce(v, c10d::AllreduceOptions{});
  } catch (const std::exception& e) {
    fail("allreduce", e);
  }
}

Communicator::Handle Communicator::reduce_scatter_sum_async(torch::Tensor& out, torch::Tensor& in) {
  if (!backend_) {
    out.copy_(in);
    return {};
  }
  try {
    return backend_->_reduce_scatter_base(out, in, c10d::ReduceScatterOptions{});
  } catch (const std::exception& e) {
    fail("reduce_scatter", e);
  }
}

void Communicator::wait(Handle& h, const char* what) {
  if (!h) return;
  try {
    h->wait(timeout_);
  } catch (const std::exception& e) {
    h.reset();
    fail(what, e);
  }
  h.reset();
}

void Communicator::allreduce_sum(torch::Tensor& t) {
  auto h = allreduce_sum_async(t);
  wait(h, "allreduce");
}

void Communicator::allgather(torch::Tensor& out, torch::Tensor& in) {
  if (!backend_) {
    out.copy_(in);
    return;
  }
  Handle h;
  try {
    h = backend_->_allgather_base(out, in, c10d::AllgatherOptions{});
  } catch (const std::exception& e) {
    fail("allgather", e);
  }
  wait(h, "allgather");
}

void Communicator::broadcast(torch::Tensor& t, int root) {
  if (!backend_) return;
  Handle h;
  try {
    std::vector<at::Tensor> v{t};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    h = backend_->broadcast(v, o);
  } catch (const std::exception& e) {
    fail("broadcast", e);
  }
  wait(h, "broadcast");
}

int64_t Communicator::broadcast(int64_t value, int root) {
  if (!backend_) return value;
  auto t = torch::tensor({value}, torch::TensorOptions().dtype(torch::kLong).device(device_));
  broadcast(t, root);
  return t.item<int64_t>();
}

double Communicator::reduce_scalar(double local, c10d::ReduceOp op) {
  if (!backend_) return local;
  auto t = torch::tensor({local}, torch::TensorOptions().dtype(torch::kDouble).device(device_));
  Handle h;
  try {
    std::vector<at::Tensor> v{t};
    c10d::AllreduceOptions o;
    o.reduceOp = op;
    h = backend_->allreduce(v, o);
  } catch (const std::exception& e) {
    fail("allreduce", e);
  }
  wait(h, "allreduce");
  return t.item<double>();
}

double Communicator::sum(double local) { return reduce_scalar(local, c10d::ReduceOp::SUM); }

double Communicator::max(double local) { return reduce_scalar(local, c10d::ReduceOp::MAX); }

bool Communicator::all_ok(bool local_ok) { return sum(local_ok ? 0.0 : 1.0) == 0.0; }

void Communicator::barrier() {
  if (!backend_) return;
  // An allreduce rather than c10d's barrier: it honours the timeout the same way on Gloo and NCCL.
  sum(0.0);
}

}  // namespace supra::training
