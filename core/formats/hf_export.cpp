#include "core/formats/hf_export.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>

#include "core/base/error.h"
#include "core/base/files.h"
#include "core/formats/hf_modeling_files.h"
#include "core/formats/safetensors.h"
#include "core/supra/decay.h"

namespace supra {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kTokenizerFiles[] = {"tokenizer.json", "tokenizer.model", "tokenizer_config.json",
                                           "special_tokens_map.json", "added_tokens.json"};

std::string dtype_name(torch::Dtype d) { return d == torch::kBFloat16 ? "bfloat16" : "float32"; }

// The first folder that holds any tokenizer file.
fs::path find_tokenizer_folder(const std::vector<fs::path>& sources) {
  std::error_code ec;
  for (const fs::path& dir : sources) {
    if (dir.empty() || !fs::is_directory(dir, ec)) continue;
    for (const char* name : kTokenizerFiles)
      if (fs::is_regular_file(dir / name, ec)) return dir;
  }
  return {};
}

json read_json_file(const fs::path& path);

// A tokenizer_config.json that names no tokenizer class (and no auto_map) makes transformers look for one in
// config.json, where model_type "supra" leads it to the remote code (a prompt, then a failure, in 4.x): name the
// standard class of the copied files — PreTrainedTokenizerFast for tokenizer.json, LlamaTokenizer for a
// SentencePiece tokenizer.model.
void name_tokenizer_class(const fs::path& dir) {
  std::error_code ec;
  const bool fast = fs::is_regular_file(dir / "tokenizer.json", ec);
  if (!fast && !fs::is_regular_file(dir / "tokenizer.model", ec)) return;
  const fs::path file = dir / "tokenizer_config.json";
  json cfg = fs::is_regular_file(file, ec) ? read_json_file(file) : json::object();
  if (!cfg.is_object() || cfg.contains("tokenizer_class") || cfg.contains("auto_map")) return;
  cfg["tokenizer_class"] = fast ? "PreTrainedTokenizerFast" : "LlamaTokenizer";
  write_file_atomic(file, cfg.dump(2) + "\n");
}

json read_json_file(const fs::path& path) {
  try {
    return json::parse(read_file(path));
  } catch (const json::exception& e) {
    throw Error(path.string(), std::string("invalid JSON: ") + e.what());
  }
}

}  // namespace

uint64_t parse_byte_size(const std::string& text, const std::string& subject) {
  auto fail = [&] {
    throw Error(subject, "'" + text + "' is not a size (e.g. 5GB, 500MB, 2GiB or a number of bytes)");
  };
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  if (i == 0) fail();
  double number = 0;
  try {
    size_t used = 0;
    number = std::stod(text.substr(0, i), &used);
    if (used != i) fail();
  } catch (const std::logic_error&) {
    fail();
  }
  std::string unit = text.substr(i);
  std::string upper = unit;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  double scale = 0;
  if (upper.empty() || upper == "B")
    scale = 1;
  else if (upper == "KIB")
    scale = 1024.0;
  else if (upper == "MIB")
    scale = 1024.0 * 1024;
  else if (upper == "GIB")
    scale = 1024.0 * 1024 * 1024;
  else if (upper == "TIB")
    scale = 1024.0 * 1024 * 1024 * 1024;
  else if (upper == "KB")
    scale = 1e3;
  else if (upper == "MB")
    scale = 1e6;
  else if (upper == "GB")
    scale = 1e9;
  else if (upper == "TB")
    scale = 1e12;
  else
    fail();
  // transformers: a decimal unit spelled with a lowercase final b ("5Gb") counts bits.
  if (unit.size() == 2 && unit.back() == 'b' && upper != "B") scale /= 8;
  const double bytes = std::floor(number * scale);
  if (!(bytes >= 1) || bytes > 1.8e19) throw Error(subject, "'" + text + "' must be at least one byte");
  return static_cast<uint64_t>(bytes);
}

json export_config_json(const ModelConfig& config, torch::Dtype dtype, const std::string& source) {
  if (!config.supra)
    throw Error(source,
                "is not a SUPRA model (a softmax " + config.architecture + "); convert it first with `supra convert`");
  ModelConfig c = config;
  c.torch_dtype = dtype_name(dtype);
  json j = c.to_json();
  write_log_gamma(j, c);
  j["auto_map"] = {{"AutoConfig", "configuration_supra.SupraConfig"},
                   {"AutoModelForCausalLM", "modeling_supra.SupraForCausalLM"}};
  j["use_cache"] = true;
  // Informational: what the shipped modeling file computes (the numbers it reads are log_gamma, qk_norm,
  // chunk_size and the head counts).
  j["supra"]["layer"] = {
      {"feature_map", "relu(linear(x) + bias)"},
      {"rope", "after_feature_map"},
      {"key_scale", 1.0 / std::sqrt(static_cast<double>(c.head_dim))},
      {"attention", "decayed causal linear attention, no denominator"},
      {"group_norm", {{"groups", c.num_attention_heads}, {"eps", 1e-5}, {"affine", false}, {"dtype", "float32"}}},
      {"state_dtype", "float32"}};
  return j;
}

json export_generation_config(const ModelConfig& config, const json& base) {
  json g = base.is_object() ? base : json::object();
  g.erase("_from_model_config");  // transformers would otherwise regenerate it from config.json
  if (config.bos_token_id && !g.contains("bos_token_id")) g["bos_token_id"] = *config.bos_token_id;
  if (!config.eos_token_ids.empty() && !g.contains("eos_token_id"))
    g["eos_token_id"] = config.eos_token_ids.size() == 1 ? json(config.eos_token_ids[0]) : json(config.eos_token_ids);
  g["use_cache"] = true;  // the recurrent state: constant memory per sequence
  return g;
}

ExportResult export_hf_folder(const StoredModel& ck, const std::string& source, const fs::path& out,
                              const ExportOptions& o) {
  std::error_code ec;
  if (!o.force) refuse_existing_output(out, "pass --force to replace it");
  if (o.max_shard_bytes == 0) throw Error("--max-shard-size", "must be at least one byte");
  const torch::Dtype dtype = o.dtype ? *o.dtype : (ck.stored_dtype == "bfloat16" ? torch::kBFloat16 : torch::kFloat);
  const json config = export_config_json(ck.config, dtype, source);  // refuses non-SUPRA models first

  const fs::path parent = out.has_parent_path() ? out.parent_path() : fs::path(".");
  if (!fs::is_directory(parent, ec)) throw Error(out.string(), "parent folder does not exist");
  remove_stale_siblings(out);  // an earlier export killed mid-way (its .tmp-/.old- copies)
  const std::string pid = std::to_string(::getpid());
  const fs::path tmp = parent / (out.filename().string() + ".tmp-" + pid);
  const fs::path old = parent / (out.filename().string() + ".old-" + pid);
  remove_tree(tmp);
  fs::create_directory(tmp, ec);
  if (ec) throw Error(tmp.string(), "cannot create folder: " + ec.message());

  ExportResult result;
  try {
    // Weights: built through the model so that names and shapes are validated, then cast to the export dtype.
    CausalLM model = build_model(ck, source, dtype, torch::kCPU);
    std::vector<std::pair<std::string, torch::Tensor>> tensors;
    for (const auto& p : model->named_parameters()) {
      tensors.emplace_back(p.key(), p.value().detach());
      result.weight_bytes += static_cast<uint64_t>(p.value().numel()) * p.value().element_size();
    }
    save_safetensors_dir(tmp, tensors, o.max_shard_bytes, {{"format", "pt"}});

    write_file_atomic(tmp / "config.json", config.dump(2) + "\n");
    json gen_base;
    if (!o.generation_config_from.empty() &&
        fs::is_regular_file(o.generation_config_from / "generation_config.json", ec))
      gen_base = read_json_file(o.generation_config_from / "generation_config.json");
    write_file_atomic(tmp / "generation_config.json", export_generation_config(ck.config, gen_base).dump(2) + "\n");

    result.tokenizer_from = find_tokenizer_folder(o.tokenizer_sources);
    if (!result.tokenizer_from.empty()) {
      for (const char* name : kTokenizerFiles)
        if (fs::is_regular_file(result.tokenizer_from / name, ec))
          write_file_atomic(tmp / name, read_file(result.tokenizer_from / name));
      name_tokenizer_class(tmp);
    }

    for (const EmbeddedFile& f : hf_modeling_files()) write_file_atomic(tmp / f.name, f.content);
    fsync_path(tmp);

    for (const fs::path& p : list_directory(tmp)) result.files.push_back(p.filename().string());
    std::sort(result.files.begin(), result.files.end());

    // Into place. An existing folder (empty, or non-empty with force) is moved aside first and removed only
    // once the new one is in place, so a failure leaves the old folder where it was.
    const bool had_old = fs::exists(out, ec);
    if (had_old) {
      remove_tree(old);
      fs::rename(out, old, ec);
      if (ec) throw Error(out.string(), "cannot move the existing folder aside: " + ec.message());
    }
    fs::rename(tmp, out, ec);
    if (ec) {
      const std::string why = ec.message();
      if (had_old) fs::rename(old, out, ec);
      throw Error(out.string(), "cannot move the finished folder into place: " + why);
    }
    fsync_path(parent);
    if (had_old) remove_tree(old);
  } catch (...) {
    remove_tree(tmp);
    throw;
  }
  return result;
}

}  // namespace supra
