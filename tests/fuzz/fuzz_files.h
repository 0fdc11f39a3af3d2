// The fuzz harnesses' one helper: supra's readers take paths, so each input is written to files in a private
// folder (under /dev/shm when there is one: no disk writes per execution), removed when the harness exits.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace supra::fuzz {

class FuzzFolder {
 public:
  FuzzFolder() {
    const std::filesystem::path base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
    root_ = base / ("supra-fuzz-" + std::to_string(getpid()));
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  ~FuzzFolder() {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  const std::filesystem::path& path() const { return root_; }

  // Writes `size` bytes as <folder>/<name> and returns its path.
  std::filesystem::path write(const std::string& name, const uint8_t* data, size_t size) const {
    const std::filesystem::path p = root_ / name;
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!out) {
      std::perror(p.c_str());
      std::abort();  // the harness's own failure, not a finding in the reader
    }
    return p;
  }

 private:
  std::filesystem::path root_;
};

// One folder per process, created on first use (libFuzzer runs each harness in one process).
inline const FuzzFolder& folder() {
  static const FuzzFolder f;
  return f;
}

// A finding that is not a crash: the reader accepted an input and then broke a promise (e.g. a round trip).
[[noreturn]] inline void broken_promise(const std::string& what) {
  std::fprintf(stderr, "FUZZ FINDING: %s\n", what.c_str());
  std::abort();
}

}  // namespace supra::fuzz
