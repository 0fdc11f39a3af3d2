// MappedFile: a read-only memory map of a whole regular file — the one mmap wrapper, used by the safetensors
// reader and the token shards. Nothing is mapped for an empty file; the map is released on destruction.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

namespace supra {

class MappedFile {
 public:
  // Throws supra::Error naming `path`: "cannot open <what>: …", "cannot stat <what>: …", "not a regular file",
  // "mmap failed: …" (`what` may be empty). When the file does not exist and `if_missing` is given, that is the
  // reason instead.
  explicit MappedFile(const std::filesystem::path& path, const std::string& what = {},
                      const std::string& if_missing = {});
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }  // null for an empty file
  uint64_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }
  void advise_random() const;  // madvise(MADV_RANDOM): no read-ahead (sampled access)

 private:
  std::filesystem::path path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace supra
