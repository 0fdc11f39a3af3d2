// libFuzzer harness: the token shard reader (data/shards: manifest.json + one .bin/.idx pair). The input is
// [u32 manifest bytes][u32 idx bytes][manifest.json][shard_00000.idx][shard_00000.bin] (little endian; lengths are
// clipped to what is there). An accepted folder must read every document, token range and document start without
// touching memory outside the mapped files; anything it refuses must be supra::Error. Seeds:
// tests/fuzz/corpus/shards (tests/fuzz/make_seeds.py).
#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "core/base/error.h"
#include "data/shards.h"
#include "tests/fuzz/fuzz_files.h"

namespace {

uint32_t read_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 8) return 0;
  const size_t manifest_len = std::min<size_t>(read_u32(data), size - 8);
  const size_t idx_len = std::min<size_t>(read_u32(data + 4), size - 8 - manifest_len);
  const uint8_t* p = data + 8;
  const auto& dir = supra::fuzz::folder();
  dir.write("manifest.json", p, manifest_len);
  dir.write("shard_00000.idx", p + manifest_len, idx_len);
  dir.write("shard_00000.bin", p + manifest_len + idx_len, size - 8 - manifest_len - idx_len);
  try {
    supra::data::ShardedTokens tokens(dir.path());
    const uint64_t docs = std::min<uint64_t>(tokens.num_docs(), 64);
    for (uint64_t d = 0; d < docs; ++d) (void)tokens.document(d);
    const uint64_t n = std::min<uint64_t>(tokens.num_tokens(), 4096);
    std::vector<int64_t> ids(n);
    std::unique_ptr<bool[]> starts(new bool[n]);
    tokens.copy_tokens(0, n, ids.data());
    tokens.doc_starts(0, n, starts.get());
    if (n > 1) {  // a window that does not begin at 0
      tokens.copy_tokens(1, n - 1, ids.data());
      tokens.doc_starts(1, n - 1, starts.get());
    }
  } catch (const supra::Error&) {
  }
  try {
    (void)supra::data::check_dataset(dir.path());
  } catch (const supra::Error&) {
  }
  return 0;
}
