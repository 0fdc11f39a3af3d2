#include "core/model/decoder.h"

#if SUPRA_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#endif

namespace supra {

#if SUPRA_WITH_CUDA
// The captured step: static input ids and output logits, replayed on the current stream.
struct DecodeGraph {
  at::cuda::CUDAGraph graph;
  torch::Tensor ids, out;
};
#else
struct DecodeGraph {};
#endif

Decoder::Decoder(CausalLM model, InferenceCache& cache, int64_t max_positions, DecoderOptions options)
    : model_(std::move(model)), cache_(cache) {
  TORCH_CHECK(cache_.next_position.defined(), "Decoder: the cache has no positions (run the prefill first)");
  TORCH_CHECK(cache_.layers.size() == model_->model->layers->size(), "Decoder: the cache has ", cache_.layers.size(),
              " layers, the model ", model_->model->layers->size());
  torch::NoGradGuard no_grad;
  bool capturable = true;
  for (size_t i = 0; i < cache_.layers.size(); ++i) {
    mixers_.push_back(model_->layer(static_cast<int64_t>(i))->self_attn->decode_step(cache_.layers[i], cache_.kv));
    capturable = capturable && mixers_.back()->capturable();
  }
  const auto device = cache_.next_position.device();
  auto positions = torch::arange(max_positions, torch::TensorOptions().dtype(torch::kLong).device(device));
  auto rows = rope_tables(model_->inv_freq().to(device), positions.unsqueeze(0));
  table_ = {rows.cos.squeeze(0), rows.sin.squeeze(0)};
#if SUPRA_WITH_CUDA
  use_graph_ = options.cuda_graph && device.is_cuda() && capturable;
#else
  (void)options;
#endif
}

torch::Tensor Decoder::eager_step(const torch::Tensor& ids) {
  torch::NoGradGuard no_grad;
  // Each sequence's position is its next_position (all tokens real: padding exists only in prompts).
  auto positions = cache_.next_position.clone();
  RopeTables rope{table_.cos.index_select(0, positions), table_.sin.index_select(0, positions)};
  auto h = model_->model->embed_tokens(ids);  // [B, hidden]
  for (size_t i = 0; i < mixers_.size(); ++i) {
    auto layer = model_->layer(static_cast<int64_t>(i));
    h = h + mixers_[i]->run(layer->input_layernorm(h), rope, positions);
    h = h + layer->mlp(layer->post_attention_layernorm(h));
  }
  cache_.next_position.add_(1);
  return torch::linear(model_->model->norm(h), model_->lm_head_weight()).to(torch::kFloat);
}

torch::Tensor Decoder::step(const torch::Tensor& ids) { return step(ids, {}); }

torch::Tensor Decoder::step(const torch::Tensor& ids, const Then& then) {
  auto run = [&](const torch::Tensor& x) { return then ? then(eager_step(x)) : eager_step(x); };
  if (!use_graph_) return run(ids);
#if SUPRA_WITH_CUDA
  // Warm-up and capture run on a side stream (a capture cannot use the legacy default stream), ordered after the
  // current stream's work and finished before the caller's next op.
  auto on_side_stream = [](const auto& work) {
    auto side = c10::cuda::getStreamFromPool();
    at::cuda::getCurrentCUDAStream().synchronize();
    c10::cuda::CUDAStreamGuard guard(side);
    auto out = work();
    side.synchronize();
    return out;
  };
  if (!graph_) {  // first step: eager (lazy allocations, cuBLAS workspaces)
    graph_ = std::make_shared<DecodeGraph>();
    return on_side_stream([&] { return run(ids); });
  }
  if (!graph_->ids.defined()) {  // second step: captured — recorded, not run — then replayed below like the rest
    on_side_stream([&] {
      graph_->ids = ids.clone();
      graph_->graph.capture_begin();
      graph_->out = run(graph_->ids);
      graph_->graph.capture_end();
      return graph_->out;
    });
  }
  graph_->ids.copy_(ids);  // ids may be the previous replay's output: copied before this replay overwrites it
  graph_->graph.replay();
  return graph_->out;
#else
  return run(ids);
#endif
}

}  // namespace supra
