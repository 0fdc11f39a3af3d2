// safetensors reader and writer (https://github.com/huggingface/safetensors format).
// Reading is memory-mapped and every header field is validated before any byte of tensor data is touched:
// a malformed file raises supra::Error naming the file and the problem, never crashes or reads out of bounds.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace supra {

class MappedFile;  // core/base/mapped_file.h

// One tensor entry of a safetensors header.
struct TensorEntry {
  std::string name;
  torch::ScalarType dtype;  // F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets relative to the start of the data section
  uint64_t end = 0;
};

// A memory-mapped, validated safetensors file. Tensors returned by get() are copies (owning memory), so they
// stay valid after the file is closed.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);  // throws supra::Error on any malformation
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const std::vector<TensorEntry>& entries() const { return entries_; }  // in data-offset order
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const;
  const TensorEntry& entry(const std::string& name) const;  // throws supra::Error if absent
  torch::Tensor get(const std::string& name) const;         // CPU tensor, owning copy

 private:
  std::filesystem::path path_;
  std::unique_ptr<MappedFile> map_;
  uint64_t data_start_ = 0;
  std::vector<TensorEntry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Writes tensors (any device; contiguous copies are made on CPU) in the given order with optional __metadata__.
// Atomic: written to "<path>.tmp.<pid>", fsynced, then renamed over <path>; a failure leaves <path> untouched.
void save_safetensors(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// All tensors of a checkpoint folder: either model.safetensors, or the shards listed by
// model.safetensors.index.json ("weight_map": name -> shard file). Validates that every indexed tensor exists
// in its shard and that no tensor appears twice.
std::map<std::string, torch::Tensor> load_safetensors_dir(const std::filesystem::path& dir);

// Writes a checkpoint folder: one model.safetensors when the total is ≤ max_shard_bytes, else
// model-0000i-of-0000N.safetensors shards plus model.safetensors.index.json. Atomic per file.
void save_safetensors_dir(const std::filesystem::path& dir,
                          const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                          uint64_t max_shard_bytes = 5ull << 30,
                          const std::map<std::string, std::string>& metadata = {});

}  // namespace supra
