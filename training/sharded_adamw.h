// Data-parallel AdamW with optional ZeRO sharding, on top of torch::optim::AdamW and a Communicator.
//
// Gradients: parameters are grouped into buckets (≈ bucket_mb each, in reverse registration order, i.e. roughly the
// order the backward pass produces them). A post-accumulate-grad hook moves each parameter's gradient into its
// bucket's flat fp32 buffer as soon as autograd has it; when a bucket is complete its collective starts at once, so
// communication overlaps the rest of the backward pass. Buckets launch in index order on every rank.
//   zero = 0 (DDP): buckets are all-reduced on the last micro-batch; every rank runs the full AdamW.
//   zero = 1: buckets are reduce-scattered on the last micro-batch; each rank keeps the AdamW state (exp_avg,
//             exp_avg_sq) and an fp32 master copy of only its 1/W slice of every bucket, updates it, and the
//             updated slices are all-gathered back into the (replicated) model parameters.
//   zero = 2: as 1, but every micro-batch's buckets are reduce-scattered and accumulated into the rank's gradient
//             slice, and each full-size bucket buffer is freed as soon as its reduce-scatter is done (at most a few
//             buckets exist at a time): gradients are sharded too.
// Gradients are averaged over ranks, so the update equals the single-process one up to fp32 summation order.
//
// Checkpoints are world-size independent: each rank writes its slices as `<kind>/<param>@<offset>` pieces plus the
// common AdamW step; a later run with any world size and ZeRO stage reassembles the slices it owns.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "training/communicator.h"

namespace supra::training {

struct ShardedAdamWOptions {
  int zero = 0;           // 0 | 1 | 2
  double bucket_mb = 25;  // gradient bucket size (fp32 MiB)
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.0;
};

struct NamedParam {
  std::string name;
  torch::Tensor param;
  bool decay = true;  // weight decay applies
};

class ShardedAdamW {
 public:
  ShardedAdamW(std::vector<NamedParam> params, std::shared_ptr<Communicator> comm, ShardedAdamWOptions options);
  ~ShardedAdamW();
  ShardedAdamW(const ShardedAdamW&) = delete;
  ShardedAdamW& operator=(const ShardedAdamW&) = delete;

  // One optimizer step: begin_step(); for each micro-batch { begin_micro(is_last); backward(); end_micro(); };
  // grad_norm(); step(lr, clip).
  void begin_step();
  void begin_micro(bool last);
  void end_micro();
  // L2 norm of the rank-averaged gradient of the whole model (the same value on every rank).
  double grad_norm();
  // Clips to max_norm (≤ 0: no clipping; as torch::nn::utils::clip_grad_norm_) and applies AdamW with `lr`.
  void step(double lr, double grad_norm, double max_norm);
  // Throws away this step's gradients (non-finite step).
  void discard();

  // This rank's optimizer state into `folder` (file optimizer-RRRRR-of-WWWWW.safetensors; in DDP only rank 0
  // writes, its state being everyone's) and, on rank 0, optimizer.json naming the files.
  void save(const std::filesystem::path& folder) const;
  // Reassembles this rank's slices from a folder written with any world size / ZeRO stage.
  void load(const std::filesystem::path& folder);

  int zero() const { return opt_.zero; }
  int64_t num_buckets() const { return static_cast<int64_t>(buckets_.size()); }
  // Collectives started from inside the backward pass (overlapped) vs all started, since construction.
  int64_t launched_in_backward() const { return launched_in_backward_; }
  int64_t launched_total() const { return launched_total_; }
  // Bytes this rank holds for optimizer state, master slices and persistent gradient buffers.
  int64_t state_bytes() const;

  void on_grad(size_t slot, const torch::Tensor& param);  // called by the autograd hook

 private:
  struct Slot {
    std::string name;
    torch::Tensor param;
    bool decay;
    size_t bucket;
    int64_t offset;  // in the bucket
    int64_t numel;
  };
  struct Bucket {
    std::vector<size_t> slots;
    int64_t numel = 0, padded = 0;  // padded to a multiple of W
    torch::Tensor grad;             // [padded] fp32; persistent for zero 0/1, per micro-batch for zero 2
    torch::Tensor shard_in;         // [padded / W]: reduce-scatter output of the current micro-batch
    torch::Tensor shard_grad;       // [padded / W]: this rank's accumulated gradient slice (zero 1/2)
    torch::Tensor master;           // [padded / W]: fp32 master slice (zero 1/2)
    size_t ready = 0;
    Communicator::Handle work;
    bool pending = false;  // its collective was launched and not yet finalized
  };
  struct Leaf {  // one tensor the AdamW updates (a parameter, or a slice of a master buffer)
    std::string name;
    int64_t start = 0;     // element offset inside the parameter
    torch::Tensor tensor;  // what AdamW updates
    torch::Tensor grad;    // its gradient (a view into a bucket buffer)
  };

  void launch(size_t b);
  void launch_ready();
  void finalize(size_t b);  // waits for the bucket's collective; ZeRO: adds the reduced slice, ZeRO-2: frees the bucket
  std::string file_name(int rank, int world) const;

  std::shared_ptr<Communicator> comm_;
  ShardedAdamWOptions opt_;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  std::vector<Leaf> leaves_;
  std::unique_ptr<torch::optim::AdamW> adam_;
  size_t next_launch_ = 0;
  std::vector<size_t> in_flight_;  // ZeRO-2: launched buckets, oldest first (at most kMaxInFlight stay allocated)
  bool communicate_ = false;
  bool in_hook_ = false;
  int64_t launched_in_backward_ = 0, launched_total_ = 0;
  torch::Device device_{torch::kCPU};
};

}  // namespace supra::training
