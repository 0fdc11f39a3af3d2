#include "core/formats/torch_pickle.h"

#include <torch/serialize.h>

#include <fstream>
#include <set>

#include "core/base/error.h"
#include "core/base/files.h"

namespace supra {
namespace fs = std::filesystem;

namespace {

constexpr const char* kSingle = "pytorch_model.bin";
constexpr const char* kIndex = "pytorch_model.bin.index.json";

void load_file_into(const fs::path& path, std::map<std::string, torch::Tensor>& out) {
  const std::string src = path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(src, "cannot open");
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < 4 || bytes[0] != 'P' || bytes[1] != 'K')
    throw Error(src, "not a torch.save zip archive (legacy pre-1.6 pickles cannot be read; convert to safetensors)");
  c10::IValue value;
  try {
    value = torch::pickle_load(bytes);
  } catch (const c10::Error& e) {
    throw Error(src, std::string("cannot unpickle: ") + e.what_without_backtrace());
  }
  if (value.isGenericDict()) {
    auto dict = value.toGenericDict();
    for (const auto& item : dict)
      if (item.key().isString() && item.key().toStringRef() == "state_dict" && item.value().isGenericDict()) {
        value = item.value();
        break;
      }
  }
  if (!value.isGenericDict()) throw Error(src, "does not hold a dict of tensors");
  for (const auto& item : value.toGenericDict()) {
    if (!item.key().isString()) throw Error(src, "has a non-string key");
    const std::string name = item.key().toStringRef();
    if (!item.value().isTensor()) throw Error(src, "entry '" + name + "' is not a tensor");
    if (out.count(name)) throw Error(src, "tensor '" + name + "' appears twice");
    out[name] = item.value().toTensor().contiguous();
  }
}

}  // namespace

bool has_torch_pickle_weights(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / kSingle, ec) || fs::is_regular_file(dir / kIndex, ec);
}

std::map<std::string, torch::Tensor> load_torch_pickle_dir(const fs::path& dir) {
  std::map<std::string, torch::Tensor> out;
  std::error_code ec;
  if (!fs::is_regular_file(dir / kIndex, ec)) {
    load_file_into(dir / kSingle, out);
    return out;
  }
  const fs::path index_path = dir / kIndex;
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(read_file(index_path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(index_path.string(), std::string("invalid JSON: ") + e.what());
  }
  if (!index.contains("weight_map") || !index["weight_map"].is_object())
    throw Error(index_path.string(), "has no \"weight_map\" object");
  std::set<std::string> shards;
  for (const auto& [name, file] : index["weight_map"].items()) {
    if (!file.is_string()) throw Error(index_path.string(), "weight_map entry '" + name + "' is not a file name");
    const std::string f = file.get<std::string>();
    if (f.find('/') != std::string::npos)
      throw Error(index_path.string(), "shard '" + f + "' is not a plain file name");
    shards.insert(f);
  }
  for (const std::string& f : shards) load_file_into(dir / f, out);
  for (const auto& [name, file] : index["weight_map"].items())
    if (!out.count(name)) throw Error(index_path.string(), "lists '" + name + "', which its shard does not hold");
  return out;
}

}  // namespace supra
