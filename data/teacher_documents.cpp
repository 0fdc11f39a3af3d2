#include "data/teacher_documents.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>

#include "core/model/generate.h"

namespace supra::data {

std::vector<std::vector<int64_t>> sample_documents(CausalLM& model, const SampleOptions& o) {
  TORCH_CHECK(o.max_tokens >= 2 && o.num_docs >= 1 && o.batch >= 1, "sample_documents: bad options");
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  GenerateOptions g;
  // The last slot is kept for the end-of-document token.
  g.max_new_tokens = o.max_tokens - 1 - (o.eos_token_id ? 1 : 0);
  g.sampling.temperature = o.temperature;
  g.sampling.top_k = o.top_k;
  g.generator = &gen;
  if (o.eos_token_id) g.stop_ids = {*o.eos_token_id};
  std::vector<std::vector<int64_t>> docs;
  for (int64_t first = 0; first < o.num_docs; first += o.batch) {
    const int64_t B = std::min(o.batch, o.num_docs - first);
    auto out = generate(model, std::vector<std::vector<int64_t>>(B, {o.bos_token_id}), g);
    for (auto& tokens : out.tokens) {
      std::vector<int64_t> doc{o.bos_token_id};
      doc.insert(doc.end(), tokens.begin(), tokens.end());
      if (o.eos_token_id && doc.back() != *o.eos_token_id) doc.push_back(*o.eos_token_id);
      docs.push_back(std::move(doc));
    }
  }
  return docs;
}

}  // namespace supra::data
