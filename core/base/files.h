// Durable file-system helpers for everything that must never leave a partial file behind: fsync of files and
// folders, and atomic small-file writes (tmp name, fsync, rename, fsync of the folder).
#pragma once
#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

namespace supra {

// A file or a folder; throws supra::Error on failure. Folders on file systems that cannot sync them (EINVAL, EROFS)
// are tolerated.
void fsync_path(const std::filesystem::path& path);

// A file that appears under its final name complete or not at all — the one implementation of atomic writing. It is
// written to "<path>.tmp.<pid>"; commit() fsyncs it, renames it onto `path` and fsyncs the folder. Destroyed without
// commit() (a failed write, an exception), it removes the tmp file and leaves `path` untouched. Errors are
// supra::Error naming `path` (and the tmp file).
class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path path);  // creates the tmp file
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void commit();  // once; no write after it
  const std::filesystem::path& path() const { return path_; }
  const std::string& tmp_path() const { return tmp_; }

 private:
  std::filesystem::path path_;
  std::string tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

// Writes `n` bytes / `content` to `path` atomically (an AtomicFile). Throws supra::Error (disk full, permissions,
// …); `path` is untouched then.
void write_file_atomic(const std::filesystem::path& path, const void* data, size_t n);
void write_file_atomic(const std::filesystem::path& path, const std::string& content);
std::string read_file(const std::filesystem::path& path);  // throws supra::Error

// Refuses an output path that holds something (a file, or a non-empty folder): supra never writes into or over a
// previous result unless asked to (`hint`, e.g. "pass --force to replace it", completes the message).
void refuse_existing_output(const std::filesystem::path& out, const std::string& hint = "");

// Removes a file or a folder tree (no-op when absent); returns false if something could not be removed. POSIX
// nftw rather than std::filesystem::remove_all: on an H100 node (Ubuntu 24.04, GCC 13, torch 2.11+cu130) every
// remove_all of a non-empty folder segfaulted inside processes linked with LibTorch, while the same call in a
// plain program worked — the torch wheel's libraries carry std::filesystem code of their own (see
// docs/benchmarks.md, 2026-11-22). supra's file handling therefore depends only on POSIX calls.
bool remove_tree(const std::filesystem::path& path);

// Removes what killed writers of `path` left beside it: `<name>.tmp-<pid>` / `<name>.old-<pid>` entries of its
// folder whose process no longer runs (a live process may still be writing its own). Returns how many.
int remove_stale_siblings(const std::filesystem::path& path);

// The entries of a folder (names joined to `dir`), sorted; empty when it cannot be read. POSIX readdir, for the
// same reason.
std::vector<std::filesystem::path> list_directory(const std::filesystem::path& dir);

}  // namespace supra
