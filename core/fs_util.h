// Durable file-system helpers for everything that must never leave a partial file behind: fsync of files and
// folders, and atomic small-file writes (tmp name, fsync, rename, fsync of the folder).
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace supra {

void fsync_path(const std::filesystem::path& path);  // a file or a folder; throws supra::Error on failure
// Writes `content` to `path` atomically. Throws supra::Error (disk full, permissions, …); `path` is untouched then.
void write_file_atomic(const std::filesystem::path& path, const std::string& content);
std::string read_file(const std::filesystem::path& path);  // throws supra::Error

// Removes a file or a folder tree (no-op when absent); returns false if something could not be removed. POSIX
// nftw rather than std::filesystem::remove_all: on an H100 node (Ubuntu 24.04, GCC 13, torch 2.11+cu130) every
// remove_all of a non-empty folder segfaulted inside processes linked with LibTorch, while the same call in a
// plain program worked — the torch wheel's libraries carry std::filesystem code of their own (see
// docs/benchmarks.md, 2026-11-22). supra's file handling therefore depends only on POSIX calls.
bool remove_tree(const std::filesystem::path& path);

// The entries of a folder (names joined to `dir`), sorted; empty when it cannot be read. POSIX readdir, for the
// same reason.
std::vector<std::filesystem::path> list_directory(const std::filesystem::path& dir);

}  // namespace supra
