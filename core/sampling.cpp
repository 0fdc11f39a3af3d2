#include "core/sampling.h"

#include <ATen/CPUGeneratorImpl.h>

namespace supra {

std::vector<std::vector<int64_t>> sample_documents(CausalLM& model, const SampleOptions& o) {
  TORCH_CHECK(o.max_tokens >= 2 && o.num_docs >= 1 && o.batch >= 1, "sample_documents: bad options");
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  const auto device = model->lm_head_weight().device();
  std::vector<std::vector<int64_t>> docs;
  for (int64_t first = 0; first < o.num_docs; first += o.batch) {
    const int64_t B = std::min(o.batch, o.num_docs - first);
    auto ids = torch::full({B, 1}, o.bos_token_id, torch::kLong);
    auto done = torch::zeros({B}, torch::kBool);
    // The last slot is kept for the end-of-document token.
    const int64_t steps = o.max_tokens - 1 - (o.eos_token_id ? 1 : 0);
    for (int64_t t = 0; t < steps && !done.all().item<bool>(); ++t) {
      auto logits = model->forward(ids.to(device)).select(1, -1).to(torch::kFloat).cpu();
      torch::Tensor next;
      if (o.temperature <= 0) {
        next = logits.argmax(-1);
      } else {
        logits = logits / o.temperature;
        if (o.top_k > 0 && o.top_k < logits.size(-1)) {
          auto kth = std::get<0>(logits.topk(o.top_k, -1)).select(-1, o.top_k - 1).unsqueeze(-1);
          logits = logits.masked_fill(logits < kth, -std::numeric_limits<float>::infinity());
        }
        next = torch::multinomial(torch::softmax(logits, -1), 1, /*replacement=*/true, gen).squeeze(-1);
      }
      if (o.eos_token_id) next = torch::where(done, torch::full_like(next, *o.eos_token_id), next);
      ids = torch::cat({ids, next.unsqueeze(1)}, 1);
      if (o.eos_token_id) done = done.logical_or(next == *o.eos_token_id);
    }
    for (int64_t b = 0; b < B; ++b) {
      auto row = ids[b];
      std::vector<int64_t> doc(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
      if (o.eos_token_id) {
        auto it = std::find(doc.begin() + 1, doc.end(), *o.eos_token_id);
        if (it != doc.end()) doc.erase(it + 1, doc.end());
        else doc.push_back(*o.eos_token_id);
      }
      docs.push_back(std::move(doc));
    }
  }
  return docs;
}

}  // namespace supra
