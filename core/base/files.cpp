#include "core/base/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "core/base/error.h"

namespace supra {

void fsync_path(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path.string(), std::string("cannot open for fsync: ") + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  // Some file systems cannot fsync folders (EINVAL, EROFS); data files must sync.
  if (rc != 0 && !((err == EINVAL || err == EROFS) && std::filesystem::is_directory(path)))
    throw Error(path.string(), std::string("fsync failed: ") + std::strerror(err));
}

AtomicFile::AtomicFile(std::filesystem::path path)
    : path_(std::move(path)), tmp_(path_.string() + ".tmp." + std::to_string(::getpid())) {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error(path_.string(), "cannot create " + tmp_ + ": " + std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());  // best effort; the final name was never touched
}

void AtomicFile::write(const void* data, size_t n) {
  if (fd_ < 0) throw std::logic_error("AtomicFile::write after commit");
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    // Bounded chunks: Linux writes at most ~2 GiB per call anyway.
    const ssize_t w = ::write(fd_, p, std::min<size_t>(n, size_t{1} << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error(path_.string(), "write to " + tmp_ + " failed: " + std::strerror(errno));
    }
    if (w == 0) throw Error(path_.string(), "write to " + tmp_ + " made no progress");
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void AtomicFile::commit() {
  if (fd_ < 0) throw std::logic_error("AtomicFile::commit called twice");
  if (::fsync(fd_) != 0) throw Error(path_.string(), "fsync of " + tmp_ + " failed: " + std::strerror(errno));
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) throw Error(path_.string(), "close of " + tmp_ + " failed: " + std::strerror(errno));
  if (::rename(tmp_.c_str(), path_.c_str()) != 0)
    throw Error(path_.string(), "rename of " + tmp_ + " failed: " + std::strerror(errno));
  committed_ = true;
  // The rename is durable once the folder is synced.
  fsync_path(path_.has_parent_path() ? path_.parent_path() : std::filesystem::path("."));
}

void write_file_atomic(const std::filesystem::path& path, const void* data, size_t n) {
  AtomicFile file(path);
  file.write(data, n);
  file.commit();
}

void write_file_atomic(const std::filesystem::path& path, const std::string& content) {
  write_file_atomic(path, content.data(), content.size());
}

void refuse_existing_output(const std::filesystem::path& out, const std::string& hint) {
  std::error_code ec;
  if (std::filesystem::exists(out, ec) &&
      !(std::filesystem::is_directory(out, ec) && std::filesystem::is_empty(out, ec)))
    throw Error(out.string(),
                "already exists and is not empty; refusing to overwrite it" + (hint.empty() ? "" : " (" + hint + ")"));
}

std::string read_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw Error(path.string(), "is a folder, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string(), "cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(path.string(), "read error");
  return ss.str();
}

namespace {
bool g_remove_ok = true;  // nftw has no user pointer; remove_tree is not called concurrently on one tree
int remove_entry(const char* path, const struct stat*, int, struct FTW*) {
  if (::remove(path) != 0 && errno != ENOENT) g_remove_ok = false;
  return 0;  // keep going: remove as much as possible
}
}  // namespace

int remove_stale_siblings(const std::filesystem::path& path) {
  const std::filesystem::path parent = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  const std::string name = path.filename().string();
  int removed = 0;
  for (const auto& e : list_directory(parent)) {
    const std::string n = e.filename().string();
    for (const char* tag : {".tmp-", ".old-"}) {
      const std::string prefix = name + tag;
      if (n.size() <= prefix.size() || n.compare(0, prefix.size(), prefix) != 0) continue;
      const std::string pid = n.substr(prefix.size());
      if (pid.find_first_not_of("0123456789") != std::string::npos || pid.size() > 9) continue;
      const pid_t p = static_cast<pid_t>(std::stol(pid));
      if (p == ::getpid() || ::kill(p, 0) == 0 || errno != ESRCH) continue;  // ours, or still alive
      removed += remove_tree(e) ? 1 : 0;
    }
  }
  return removed;
}

bool remove_tree(const std::filesystem::path& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return errno == ENOENT;
  if (!S_ISDIR(st.st_mode)) return ::remove(path.c_str()) == 0;
  g_remove_ok = true;
  if (::nftw(path.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) return false;
  return g_remove_ok;
}

std::vector<std::filesystem::path> list_directory(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") out.push_back(dir / name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace supra
