#include "core/base/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/base/error.h"

namespace supra {

MappedFile::MappedFile(const std::filesystem::path& path, const std::string& what, const std::string& if_missing)
    : path_(path) {
  const std::string subject = path.string(), noun = what.empty() ? "" : " " + what;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT && !if_missing.empty()) throw Error(subject, if_missing);
    throw Error(subject, "cannot open" + noun + ": " + std::strerror(errno));
  }
  // The map stays valid after the descriptor is closed.
  struct Close {
    int fd;
    ~Close() { ::close(fd); }
  } close_fd{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw Error(subject, "cannot stat" + noun + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw Error(subject, "not a regular file");
  size_ = static_cast<uint64_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) throw Error(subject, std::string("mmap failed: ") + std::strerror(errno));
    data_ = static_cast<const uint8_t*>(p);
  }
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

void MappedFile::advise_random() const {
  if (data_) ::madvise(const_cast<uint8_t*>(data_), size_, MADV_RANDOM);
}

}  // namespace supra
