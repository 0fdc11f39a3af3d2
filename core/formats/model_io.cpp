#include "core/formats/model_io.h"

#include <unistd.h>
#include <array>
#include <fstream>

#include "core/base/error.h"
#include "core/base/files.h"
#include "core/formats/openlm.h"
#include "core/formats/safetensors.h"

namespace supra {
namespace fs = std::filesystem;

namespace {

// HF's convert_llama_weights_to_hf permutation: interleaved rotary pairs -> rotate-half halves, per head.
torch::Tensor permute_rotary_rows(const torch::Tensor& w, int64_t heads) {
  const int64_t rows = w.size(0), cols = w.size(1);
  return w.view({heads, rows / heads / 2, 2, cols}).transpose(1, 2).reshape({rows, cols}).contiguous();
}

std::string dtype_name(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat: return "float32";
    case torch::kBFloat16: return "bfloat16";
    case torch::kHalf: return "float16";
    case torch::kDouble: return "float64";
    default: return c10::toString(t);
  }
}

}  // namespace

StoredModel read_llama2c(const fs::path& path) {
  const std::string src = path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(src, "cannot open llama2.c checkpoint");
  std::array<int32_t, 7> h{};
  if (!in.read(reinterpret_cast<char*>(h.data()), sizeof(h))) throw Error(src, "file too short for a llama2.c header");
  const int64_t dim = h[0], hidden = h[1], layers = h[2], heads = h[3], kv_heads = h[4], seq_len = h[6];
  const bool shared_classifier = h[5] > 0;
  const int64_t vocab = shared_classifier ? h[5] : -static_cast<int64_t>(h[5]);
  for (int64_t v : {dim, hidden, layers, heads, kv_heads, vocab, seq_len})
    if (v <= 0 || v > (1 << 20)) throw Error(src, "implausible llama2.c header value " + std::to_string(v));
  if (dim % heads != 0 || heads % kv_heads != 0 || (dim / heads) % 2 != 0)
    throw Error(src, "inconsistent llama2.c header (dim, n_heads, n_kv_heads)");
  const int64_t head = dim / heads, kv_dim = kv_heads * head;

  struct Part {
    std::string name;
    std::vector<int64_t> shape;
  };
  std::vector<Part> parts = {
      {"tok_embeddings", {vocab, dim}},
      {"attention_norm", {layers, dim}},
      {"wq", {layers, dim, dim}},
      {"wk", {layers, kv_dim, dim}},
      {"wv", {layers, kv_dim, dim}},
      {"wo", {layers, dim, dim}},
      {"ffn_norm", {layers, dim}},
      {"w1", {layers, hidden, dim}},
      {"w2", {layers, dim, hidden}},
      {"w3", {layers, hidden, dim}},
      {"norm", {dim}},
      {"freq_cis", {seq_len, head}},
  };
  if (!shared_classifier) parts.push_back({"wcls", {vocab, dim}});
  int64_t floats = 0;
  for (const Part& p : parts) {
    int64_t n = 1;
    for (int64_t s : p.shape) n *= s;
    floats += n;
  }
  const uint64_t expected = sizeof(h) + static_cast<uint64_t>(floats) * 4;
  std::error_code ec;
  const uint64_t actual = fs::file_size(path, ec);
  if (ec || actual != expected)
    throw Error(src, "llama2.c checkpoint has " + std::to_string(actual) + " bytes, its header implies " +
                         std::to_string(expected) + " (truncated or not a llama2.c legacy export)");

  std::map<std::string, torch::Tensor> raw;
  for (const Part& p : parts) {
    auto t = torch::empty(p.shape, torch::kFloat);
    if (!in.read(reinterpret_cast<char*>(t.data_ptr<float>()), t.numel() * 4)) throw Error(src, "read failed");
    raw[p.name] = t;
  }

  StoredModel ck;
  ck.format = "llama2c";
  ck.stored_dtype = "float32";
  ModelConfig& c = ck.config;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  c.vocab_size = vocab;
  c.hidden_size = dim;
  c.intermediate_size = hidden;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.head_dim = head;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.max_position_embeddings = seq_len;
  c.tie_word_embeddings = shared_classifier;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  c.validate(src);

  auto& t = ck.tensors;
  t["model.embed_tokens.weight"] = raw["tok_embeddings"];
  t["model.norm.weight"] = raw["norm"];
  if (!shared_classifier) t["lm_head.weight"] = raw["wcls"];
  for (int64_t l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    t[p + "input_layernorm.weight"] = raw["attention_norm"][l].clone();
    t[p + "post_attention_layernorm.weight"] = raw["ffn_norm"][l].clone();
    t[p + "self_attn.q_proj.weight"] = permute_rotary_rows(raw["wq"][l], heads);
    t[p + "self_attn.k_proj.weight"] = permute_rotary_rows(raw["wk"][l], kv_heads);
    t[p + "self_attn.v_proj.weight"] = raw["wv"][l].clone();
    t[p + "self_attn.o_proj.weight"] = raw["wo"][l].clone();
    t[p + "mlp.gate_proj.weight"] = raw["w1"][l].clone();
    t[p + "mlp.down_proj.weight"] = raw["w2"][l].clone();
    t[p + "mlp.up_proj.weight"] = raw["w3"][l].clone();
  }
  return ck;
}

StoredModel read_stored_model(const fs::path& path) {
  const std::string src = path.string();
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(src, "no such file or directory");
  if (fs::is_regular_file(path, ec)) {
    if (path.extension() == ".bin") return read_llama2c(path);
    throw Error(src, "not a model folder or a llama2.c .bin file");
  }
  const fs::path config_path = path / "config.json";
  if (!fs::exists(config_path, ec)) throw Error(src, "folder has no config.json");
  if (const nlohmann::json j = nlohmann::json::parse(read_file(config_path), nullptr, /*allow_exceptions=*/false);
      is_openlm_config(j))
    return read_openlm(path, j);  // the OpenLM reference format (TRI-ML/mistral-supra)
  StoredModel ck;
  ck.format = "hf";
  ck.config = read_model_config(config_path);
  ck.tensors = load_safetensors_dir(path);
  ck.stored_dtype = ck.tensors.empty() ? "float32" : dtype_name(ck.tensors.begin()->second.scalar_type());
  return ck;
}

CausalLM build_model(const StoredModel& ck, const std::string& source, torch::Dtype dtype, torch::Device device) {
  if (dtype != torch::kFloat && dtype != torch::kBFloat16)
    throw Error(source, "model dtype must be float32 or bfloat16");
  // Before allocating anything: a config.json whose sizes the tensors come nowhere near backing (vocab_size 1e12,
  // …) is refused here, not by an allocation failure; load_weights then checks every tensor's presence and shape.
  int64_t stored = 0;
  for (const auto& [name, t] : ck.tensors) stored += t.numel();
  if (ck.config.parameter_count() > 4 * stored + (int64_t{1} << 20))  // far beyond: missing tensors are named below
    throw Error(source, "config.json describes " + std::to_string(ck.config.parameter_count()) +
                            " parameters but the checkpoint holds " + std::to_string(stored) +
                            " values: its sizes (vocab_size, hidden_size, …) do not match the weights");
  CausalLM model(ck.config);
  load_weights(model, ck.tensors, source);
  model->to(device, dtype);
  model->eval();
  return model;
}

void save_model_folder(CausalLM& model, const fs::path& out, const fs::path& companions_from,
                       uint64_t max_shard_bytes) {
  std::error_code ec;
  refuse_existing_output(out);
  const fs::path parent = out.has_parent_path() ? out.parent_path() : fs::path(".");
  if (!fs::is_directory(parent, ec)) throw Error(out.string(), "parent folder does not exist");
  remove_stale_siblings(out);
  const fs::path tmp = parent / (out.filename().string() + ".tmp-" + std::to_string(::getpid()));
  remove_tree(tmp);
  fs::create_directory(tmp, ec);
  if (ec) throw Error(tmp.string(), "cannot create folder: " + ec.message());
  try {
    std::vector<std::pair<std::string, torch::Tensor>> tensors;
    for (const auto& p : model->named_parameters()) tensors.emplace_back(p.key(), p.value().detach());
    ModelConfig config = model->config();
    config.torch_dtype = dtype_name(model->dtype());
    save_safetensors_dir(tmp, tensors, max_shard_bytes, {{"format", "pt"}});
    {
      std::ofstream f(tmp / "config.json");
      f << model_config_json(config).dump(2) << "\n";
      if (!f.flush()) throw Error((tmp / "config.json").string(), "write failed (disk full?)");
    }
    if (!companions_from.empty() && fs::is_directory(companions_from, ec)) {
      for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
                               "generation_config.json"}) {
        if (fs::exists(companions_from / name, ec)) fs::copy_file(companions_from / name, tmp / name, ec);
        if (ec) throw Error((companions_from / name).string(), "cannot copy: " + ec.message());
      }
    }
    if (fs::exists(out, ec)) fs::remove(out, ec);  // the empty folder
    fs::rename(tmp, out, ec);
    if (ec) throw Error(out.string(), "cannot move finished folder into place: " + ec.message());
  } catch (...) {
    remove_tree(tmp);
    throw;
  }
}

CausalLM load_model(const fs::path& path, torch::Dtype dtype, torch::Device device) {
  return build_model(read_stored_model(path), path.string(), dtype, device);
}

}  // namespace supra
