// SHA-256 (FIPS 180-4), self-contained: the checksums of token shards and the identity of tokenizer files in a
// data manifest. Incremental (update/hex) or one call for a buffer or a file. Matches Python's hashlib.sha256.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace supra::data {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  std::array<uint8_t, 32> digest();  // finishes the hash; the object must not be updated afterwards
  std::string hex();                 // digest() as 64 lowercase hex characters

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string sha256_hex(const void* data, size_t n);
// Streams the file; throws supra::Error(path, reason) if it cannot be opened or read.
std::string sha256_file(const std::filesystem::path& path);

}  // namespace supra::data
