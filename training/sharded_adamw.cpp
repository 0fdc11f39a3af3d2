#include "training/sharded_adamw.h"

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "core/base/error.h"
#include "core/base/files.h"
#include "core/formats/safetensors.h"

namespace supra::training {
namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "supra-sharded-adamw/1";
constexpr size_t kMaxInFlight = 2;  // ZeRO-2: reduce-scatters in flight before the backward pass waits for one

struct GradHook : torch::autograd::PostAccumulateGradHook {
  GradHook(ShardedAdamW* o, size_t s) : owner(o), slot(s) {}
  void operator()(const torch::autograd::Variable& tensor) override { owner->on_grad(slot, tensor); }
  ShardedAdamW* owner;
  size_t slot;
};

std::string piece_name(const std::string& kind, const std::string& param, int64_t start) {
  return kind + "/" + param + "@" + std::to_string(start);
}

}  // namespace

ShardedAdamW::ShardedAdamW(std::vector<NamedParam> params, std::shared_ptr<Communicator> comm,
                           ShardedAdamWOptions options)
    : comm_(std::move(comm)), opt_(options) {
  TORCH_CHECK(opt_.zero >= 0 && opt_.zero <= 2, "ZeRO stage must be 0, 1 or 2");
  TORCH_CHECK(!params.empty(), "no parameters to optimize");
  device_ = params.front().param.device();
  const int64_t W = comm_->size(), r = comm_->rank();
  const int64_t cap = std::max<int64_t>(1, static_cast<int64_t>(opt_.bucket_mb * (1 << 20) / 4));
  // Buckets in reverse registration order: the backward pass produces the last layers' gradients first.
  for (auto it = params.rbegin(); it != params.rend(); ++it) {
    TORCH_CHECK(it->param.is_contiguous(), "parameter ", it->name, " is not contiguous");
    const int64_t n = it->param.numel();
    if (buckets_.empty() || (buckets_.back().numel > 0 && buckets_.back().numel + n > cap)) buckets_.emplace_back();
    Bucket& b = buckets_.back();
    slots_.push_back(Slot{it->name, it->param, it->decay, buckets_.size() - 1, b.numel, n});
    b.slots.push_back(slots_.size() - 1);
    b.numel += n;
  }
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat).device(device_);
  torch::NoGradGuard no_grad;
  for (auto& b : buckets_) {
    b.padded = (b.numel + W - 1) / W * W;
    if (opt_.zero < 2) b.grad = torch::zeros({b.padded}, f32);
    if (opt_.zero >= 1) {
      const int64_t S = b.padded / W;
      b.shard_grad = torch::zeros({S}, f32);
      b.master = torch::zeros({S}, f32);
    }
  }
  for (size_t i = 0; i < slots_.size(); ++i)
    torch::autograd::impl::set_post_acc_grad_hooks(slots_[i].param, std::make_unique<GradHook>(this, i));

  // What AdamW updates: whole parameters (DDP), or this rank's slice of each bucket in fp32 (ZeRO).
  std::vector<torch::Tensor> decay, no_decay;
  for (const Slot& s : slots_) {
    if (opt_.zero == 0) {
      leaves_.push_back(Leaf{s.name, 0, s.param, {}});
    } else {
      Bucket& b = buckets_[s.bucket];
      const int64_t S = b.padded / W, lo = std::max(s.offset, r * S), hi = std::min(s.offset + s.numel, (r + 1) * S);
      if (lo >= hi) continue;
      Leaf leaf{s.name, lo - s.offset, b.master.narrow(0, lo - r * S, hi - lo),
                b.shard_grad.narrow(0, lo - r * S, hi - lo)};
      leaf.tensor.copy_(s.param.detach().reshape(-1).narrow(0, lo - s.offset, hi - lo));
      leaf.tensor.mutable_grad() = leaf.grad;
      leaves_.push_back(std::move(leaf));
    }
    (s.decay ? decay : no_decay).push_back(leaves_.back().tensor);
  }
  auto group_opts = [&](double wd) {
    auto o = std::make_unique<torch::optim::AdamWOptions>(opt_.lr);
    o->betas({opt_.beta1, opt_.beta2}).eps(opt_.eps).weight_decay(wd);
    return o;
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, group_opts(opt_.weight_decay));
  groups.emplace_back(no_decay, group_opts(0.0));
  adam_ = std::make_unique<torch::optim::AdamW>(groups);
}

ShardedAdamW::~ShardedAdamW() {
  for (auto& s : slots_) torch::autograd::impl::set_post_acc_grad_hooks(s.param, nullptr);
}

void ShardedAdamW::begin_step() {
  torch::NoGradGuard no_grad;
  for (auto& b : buckets_) {
    if (b.grad.defined()) b.grad.zero_();
    if (b.shard_grad.defined()) b.shard_grad.zero_();
  }
}

void ShardedAdamW::begin_micro(bool last) {
  communicate_ = opt_.zero == 2 || last;
  next_launch_ = 0;
  for (auto& b : buckets_) b.ready = 0;
}

void ShardedAdamW::on_grad(size_t slot, const torch::Tensor& param) {
  torch::Tensor& g = param.mutable_grad();
  if (!g.defined()) return;
  const Slot& s = slots_[slot];
  Bucket& b = buckets_[s.bucket];
  if (!b.grad.defined()) b.grad = torch::zeros({b.padded}, torch::TensorOptions().dtype(torch::kFloat).device(device_));
  b.grad.narrow(0, s.offset, s.numel).add_(g.reshape(-1));
  g.reset();  // the bucket holds it now (and, in ZeRO-2, only until its reduce-scatter is done)
  if (++b.ready == b.slots.size()) {
    in_hook_ = true;
    launch_ready();
    in_hook_ = false;
  }
}

void ShardedAdamW::launch_ready() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].ready == buckets_[next_launch_].slots.size())
    launch(next_launch_++);
}

void ShardedAdamW::launch(size_t i) {
  if (!communicate_) return;
  Bucket& b = buckets_[i];
  if (!b.grad.defined()) b.grad = torch::zeros({b.padded}, torch::TensorOptions().dtype(torch::kFloat).device(device_));
  const int64_t W = comm_->size();
  if (W > 1) b.grad.div_(static_cast<double>(W));
  if (opt_.zero == 0) {
    b.work = comm_->allreduce_sum_async(b.grad);
  } else {
    b.shard_in = torch::empty({b.padded / W}, b.grad.options());
    b.work = comm_->reduce_scatter_sum_async(b.shard_in, b.grad);
  }
  b.pending = true;
  ++launched_total_;
  if (in_hook_) ++launched_in_backward_;
  if (opt_.zero == 2) {
    // Free what has arrived; keep at most kMaxInFlight full-size buckets alive beside the ones still filling.
    in_flight_.push_back(i);
    while (!in_flight_.empty() && (in_flight_.size() > kMaxInFlight || !buckets_[in_flight_.front()].work ||
                                   buckets_[in_flight_.front()].work->isCompleted())) {
      finalize(in_flight_.front());
      in_flight_.erase(in_flight_.begin());
    }
  }
}

void ShardedAdamW::finalize(size_t i) {
  Bucket& b = buckets_[i];
  if (!b.pending) return;
  comm_->wait(b.work, opt_.zero == 0 ? "gradient allreduce" : "gradient reduce-scatter");
  b.pending = false;
  if (opt_.zero >= 1) {
    b.shard_grad.add_(b.shard_in);
    b.shard_in = torch::Tensor();
  }
  if (opt_.zero == 2) b.grad = torch::Tensor();
}

void ShardedAdamW::end_micro() {
  torch::NoGradGuard no_grad;
  // Buckets whose parameters got no gradient in this backward pass (unused parameters) go out now, in order.
  while (next_launch_ < buckets_.size()) launch(next_launch_++);
  for (size_t i = 0; i < buckets_.size(); ++i) finalize(i);
  in_flight_.clear();
  for (auto& b : buckets_) b.ready = 0;
  next_launch_ = 0;
}

double ShardedAdamW::grad_norm() {
  torch::NoGradGuard no_grad;
  auto acc = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(device_));
  for (auto& b : buckets_) acc += (opt_.zero == 0 ? b.grad : b.shard_grad).square().sum(torch::kDouble);
  double local = acc.item<double>();  // one device → host copy per step
  if (opt_.zero >= 1) local = comm_->sum(local);
  return std::sqrt(local);
}

void ShardedAdamW::step(double lr, double grad_norm, double max_norm) {
  torch::NoGradGuard no_grad;
  const double coef = max_norm > 0 ? std::min(1.0, max_norm / (grad_norm + 1e-6)) : 1.0;
  for (auto& b : buckets_) {
    torch::Tensor& g = opt_.zero == 0 ? b.grad : b.shard_grad;
    if (coef < 1.0) g.mul_(coef);
  }
  for (auto& group : adam_->param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  if (opt_.zero == 0) {
    for (const Slot& s : slots_)
      s.param.mutable_grad() = buckets_[s.bucket].grad.narrow(0, s.offset, s.numel).view(s.param.sizes());
    adam_->step();
    for (const Slot& s : slots_) s.param.mutable_grad().reset();
    return;
  }
  adam_->step();
  // The updated master slices → every rank's full parameters.
  const int64_t W = comm_->size();
  for (auto& b : buckets_) {
    torch::Tensor full = W > 1 ? torch::empty({b.padded}, b.master.options()) : b.master;
    if (W > 1) comm_->allgather(full, b.master);
    for (size_t i : b.slots) {
      const Slot& s = slots_[i];
      s.param.view({-1}).copy_(full.narrow(0, s.offset, s.numel));
    }
  }
}

void ShardedAdamW::discard() { begin_step(); }

int64_t ShardedAdamW::state_bytes() const {
  int64_t bytes = 0;
  auto add = [&](const torch::Tensor& t) {
    if (t.defined()) bytes += t.numel() * t.element_size();
  };
  for (const auto& b : buckets_) {
    add(b.grad);
    add(b.shard_grad);
    add(b.master);
  }
  for (const auto& kv : adam_->state()) {
    const auto& st = static_cast<const torch::optim::AdamWParamState&>(*kv.second);
    add(st.exp_avg());
    add(st.exp_avg_sq());
  }
  return bytes;
}

std::string ShardedAdamW::file_name(int rank, int world) const {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "optimizer-%05d-of-%05d.safetensors", rank, world);
  return buf;
}

void ShardedAdamW::save(const fs::path& folder) const {
  const int W = comm_->size(), r = comm_->rank();
  int64_t adam_step = 0;
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const Leaf& leaf : leaves_) {
    auto it = adam_->state().find(leaf.tensor.unsafeGetTensorImpl());
    if (it == adam_->state().end()) continue;
    const auto& st = static_cast<const torch::optim::AdamWParamState&>(*it->second);
    adam_step = std::max(adam_step, st.step());
    tensors.emplace_back(piece_name("exp_avg", leaf.name, leaf.start), st.exp_avg().reshape(-1));
    tensors.emplace_back(piece_name("exp_avg_sq", leaf.name, leaf.start), st.exp_avg_sq().reshape(-1));
    if (opt_.zero >= 1) tensors.emplace_back(piece_name("master", leaf.name, leaf.start), leaf.tensor);
  }
  const std::map<std::string, std::string> meta = {{"format", kFormat}, {"adam_step", std::to_string(adam_step)}};
  if (opt_.zero >= 1 || r == 0) save_safetensors(folder / file_name(r, opt_.zero >= 1 ? W : 1), tensors, meta);
  if (r == 0) {
    nlohmann::json files = nlohmann::json::array();
    for (int i = 0; i < (opt_.zero >= 1 ? W : 1); ++i) files.push_back(file_name(i, opt_.zero >= 1 ? W : 1));
    nlohmann::json js = {
        {"format", kFormat}, {"world_size", W}, {"zero", opt_.zero}, {"adam_step", adam_step}, {"files", files}};
    write_file_atomic(folder / "optimizer.json", js.dump(2) + "\n");
  }
}

void ShardedAdamW::load(const fs::path& folder) {
  const fs::path index_file = folder / "optimizer.json";
  if (!fs::exists(index_file)) {
    if (fs::exists(folder / "optimizer.pt"))
      throw Error(folder.string(),
                  "optimizer state in the old optimizer.pt format; resume it with the supra that wrote it");
    throw Error(index_file.string(), "missing (the checkpoint has no optimizer state)");
  }
  nlohmann::json js;
  std::vector<std::string> names;
  try {
    js = nlohmann::json::parse(read_file(index_file));
    if (js.at("format").get<std::string>() != kFormat) throw Error(index_file.string(), "unknown optimizer format");
    names = js.at("files").get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(index_file.string(), std::string("malformed: ") + e.what());
  }
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  int64_t adam_step = 0;
  struct Piece {
    int64_t start, numel;
    size_t file;
    std::string key;
  };
  std::map<std::string, std::vector<Piece>> pieces;  // "kind/param" → pieces
  for (const auto& n : names) {
    if (n.find('/') != std::string::npos) throw Error(index_file.string(), "names a file outside the folder: " + n);
    files.push_back(std::make_unique<SafetensorsFile>(folder / n));
    auto& f = *files.back();
    if (auto it = f.metadata().find("adam_step"); it != f.metadata().end())
      adam_step = std::max<int64_t>(adam_step, std::stoll(it->second));
    for (const auto& e : f.entries()) {
      const size_t at = e.name.rfind('@');
      if (at == std::string::npos) throw Error(f.path().string(), "unexpected tensor '" + e.name + "'");
      int64_t numel = 1;
      for (auto d : e.shape) numel *= d;
      pieces[e.name.substr(0, at)].push_back(Piece{std::stoll(e.name.substr(at + 1)), numel, files.size() - 1, e.name});
    }
  }
  // Copies the saved elements [start, start+len) of `kind/param` into a new fp32 tensor (undefined if none saved).
  auto assemble = [&](const std::string& kind, const Leaf& leaf) -> torch::Tensor {
    auto it = pieces.find(kind + "/" + leaf.name);
    if (it == pieces.end()) return {};
    const int64_t len = leaf.tensor.numel();
    torch::Tensor out = torch::zeros({len}, torch::kFloat);
    int64_t covered = 0;
    for (const Piece& p : it->second) {
      const int64_t lo = std::max(p.start, leaf.start), hi = std::min(p.start + p.numel, leaf.start + len);
      if (lo >= hi) continue;
      torch::Tensor src = files[p.file]->get(p.key).reshape(-1).to(torch::kFloat);
      out.narrow(0, lo - leaf.start, hi - lo).copy_(src.narrow(0, lo - p.start, hi - lo));
      covered += hi - lo;
    }
    if (covered != len)
      throw Error(folder.string(), "optimizer state covers " + std::to_string(covered) + " of the " +
                                       std::to_string(len) + " elements of '" + leaf.name + "' this rank owns");
    return out.to(device_);
  };
  torch::NoGradGuard no_grad;
  adam_->state().clear();
  std::map<std::string, const Slot*> slot_of;
  for (const Slot& s : slots_) slot_of[s.name] = &s;
  for (Leaf& leaf : leaves_) {
    if (opt_.zero >= 1) {
      torch::Tensor m = assemble("master", leaf);
      if (m.defined())
        leaf.tensor.copy_(m);
      else
        leaf.tensor.copy_(slot_of.at(leaf.name)->param.detach().reshape(-1).narrow(0, leaf.start, leaf.tensor.numel()));
    }
    if (adam_step == 0) continue;
    torch::Tensor ea = assemble("exp_avg", leaf), eas = assemble("exp_avg_sq", leaf);
    if (!ea.defined() || !eas.defined()) throw Error(folder.string(), "optimizer state lacks '" + leaf.name + "'");
    auto st = std::make_unique<torch::optim::AdamWParamState>();
    st->step(adam_step);
    st->exp_avg(ea.view(leaf.tensor.sizes()).to(leaf.tensor.dtype()));
    st->exp_avg_sq(eas.view(leaf.tensor.sizes()).to(leaf.tensor.dtype()));
    adam_->state()[leaf.tensor.unsafeGetTensorImpl()] = std::move(st);
  }
}

}  // namespace supra::training
