#include "core/model/attention.h"

namespace supra {
namespace {

// The generic decode step: forward() on a context of one token per sequence, exactly as forward_cached runs it.
class ForwardStep : public MixerStep {
 public:
  ForwardStep(AttentionImpl& attention, LayerCache& cache, const KvCacheOptions& kv)
      : attention_(attention), cache_(cache), kv_(kv) {}
  torch::Tensor run(const torch::Tensor& x, const RopeTables& rope, const torch::Tensor& positions) override {
    AttentionContext ctx;
    ctx.rope = {rope.cos.unsqueeze(1), rope.sin.unsqueeze(1)};
    ctx.positions = positions.unsqueeze(1);
    ctx.cache = &cache_;
    ctx.kv = kv_;
    return attention_.forward(x.unsqueeze(1), ctx).squeeze(1);
  }

 private:
  AttentionImpl& attention_;
  LayerCache& cache_;
  KvCacheOptions kv_;
};

}  // namespace

std::unique_ptr<MixerStep> AttentionImpl::decode_step(LayerCache& cache, const KvCacheOptions& kv) {
  return std::make_unique<ForwardStep>(*this, cache, kv);
}

}  // namespace supra
