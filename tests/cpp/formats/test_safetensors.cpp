// Tests for core/formats/safetensors: bit-exact round trips, sharded checkpoint folders, atomic saves, and rejection of
// malformed files (each built from raw bytes) with a supra::Error naming the file and the problem.
#include "core/base/error.h"
#include "core/base/files.h"
#include "core/formats/safetensors.h"
#include "tests/cpp/temp_dir.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <csignal>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

namespace fs = std::filesystem;
using supra::Error;
using supra::SafetensorsFile;
using Named = std::vector<std::pair<std::string, torch::Tensor>>;

namespace {

// A fresh, uniquely named temporary folder, removed with its contents at scope exit.
using supra::test::TempDir;

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << p;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string u64le(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}

// A safetensors file image: correct length prefix, the given header text, then `data_bytes` zero bytes.
std::string image(const std::string& header, size_t data_bytes = 0) {
  return u64le(header.size()) + header + std::string(data_bytes, '\0');
}

// Writes `bytes` to a temp file and expects opening it to throw supra::Error mentioning the path and `keyword`.
void expect_rejected(const std::string& bytes, const std::string& keyword) {
  TempDir dir;
  const fs::path p = dir / "bad.safetensors";
  write_bytes(p, bytes);
  try {
    SafetensorsFile f(p);
    ADD_FAILURE() << "accepted a malformed file; expected an error about '" << keyword << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
    EXPECT_EQ(e.subject(), p.string());
    EXPECT_NE(msg.find(keyword), std::string::npos) << "message lacks '" << keyword << "': " << msg;
  }
}

void expect_same(const torch::Tensor& a, const torch::Tensor& b, const std::string& name) {
  ASSERT_TRUE(a.defined() && b.defined()) << name;
  EXPECT_EQ(a.scalar_type(), b.scalar_type()) << name;
  EXPECT_EQ(a.sizes(), b.sizes()) << name;
  EXPECT_TRUE(torch::equal(a, b)) << name;
}

Named sample_tensors() {
  torch::manual_seed(7);
  return {
      {"f32", torch::randn({3, 4})},
      {"f16", torch::randn({5}).to(torch::kFloat16)},
      {"bf16", torch::randn({2, 3, 2}).to(torch::kBFloat16)},
      {"f64", torch::randn({2}, torch::kFloat64)},
      {"i64", torch::arange(-6, 6, torch::kInt64).reshape({3, 4})},
      {"i32", torch::tensor({-2147483647 - 1, 0, 2147483647}, torch::kInt32)},
      {"i16", torch::tensor({-32768, 1, 32767}, torch::kInt16)},
      {"i8", torch::tensor({-128, 0, 127}, torch::kInt8)},
      {"u8", torch::tensor({0, 128, 255}, torch::kUInt8)},
      {"bool", torch::tensor({true, false, true, true})},
      {"scalar", torch::tensor(3.5f)},
  };
}

}  // namespace

// ================================================================================================ round trips

TEST(SafetensorsRoundTrip, AllDtypesAndMetadataBitExact) {
  TempDir dir;
  const fs::path p = dir / "m.safetensors";
  const Named tensors = sample_tensors();
  const std::map<std::string, std::string> meta{{"format", "pt"}, {"note", "héllo \"quoted\""}};
  supra::save_safetensors(p, tensors, meta);

  // Header length is a multiple of 8, so the data section is aligned.
  const std::string raw = read_bytes(p);
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  EXPECT_EQ(n % 8, 0u);

  SafetensorsFile f(p);
  EXPECT_EQ(f.metadata(), meta);
  ASSERT_EQ(f.entries().size(), tensors.size());
  // Entries are written contiguously in the given order, so offset order equals input order.
  for (size_t i = 0; i < tensors.size(); ++i) EXPECT_EQ(f.entries()[i].name, tensors[i].first);
  for (const auto& [name, t] : tensors) {
    ASSERT_TRUE(f.contains(name));
    expect_same(f.get(name), t, name);
  }
  EXPECT_FALSE(f.contains("nope"));
  EXPECT_THROW(f.entry("nope"), Error);
  EXPECT_THROW(f.get("nope"), Error);
}

TEST(SafetensorsRoundTrip, TensorsOutliveTheFile) {
  TempDir dir;
  const fs::path p = dir / "m.safetensors";
  const auto t = torch::randn({64});
  supra::save_safetensors(p, {{"t", t}});
  torch::Tensor loaded;
  {
    SafetensorsFile f(p);
    loaded = f.get("t");
  }
  fs::remove(p);
  expect_same(loaded, t, "t");
}

TEST(SafetensorsRoundTrip, NonContiguousInput) {
  TempDir dir;
  const fs::path p = dir / "m.safetensors";
  const auto base = torch::arange(24, torch::kFloat32).reshape({4, 6});
  const auto view = base.t().slice(0, 1, 5, 2);  // strided, non-contiguous
  ASSERT_FALSE(view.is_contiguous());
  supra::save_safetensors(p, {{"v", view}});
  SafetensorsFile f(p);
  expect_same(f.get("v"), view.contiguous(), "v");
}

TEST(SafetensorsRoundTrip, ZeroElementTensor) {
  TempDir dir;
  const fs::path p = dir / "m.safetensors";
  const Named tensors{
      {"a", torch::ones({2})}, {"empty", torch::empty({0, 5})}, {"b", torch::zeros({3}, torch::kInt64)}};
  supra::save_safetensors(p, tensors);
  SafetensorsFile f(p);
  const auto& e = f.entry("empty");
  EXPECT_EQ(e.begin, e.end);
  EXPECT_EQ(e.shape, (std::vector<int64_t>{0, 5}));
  for (const auto& [name, t] : tensors) expect_same(f.get(name), t, name);
}

TEST(SafetensorsRoundTrip, NoTensors) {
  TempDir dir;
  const fs::path p = dir / "m.safetensors";
  supra::save_safetensors(p, {});
  SafetensorsFile f(p);
  EXPECT_TRUE(f.entries().empty());
  EXPECT_TRUE(f.metadata().empty());
  // Hand-written minimal file: "{}" padded with spaces is valid too.
  write_bytes(p, image("{}      "));
  SafetensorsFile g(p);
  EXPECT_TRUE(g.entries().empty());
}

TEST(SafetensorsRoundTrip, ReadsHandWrittenFile) {
  // Entries listed out of offset order; reader reports them in offset order.
  TempDir dir;
  const fs::path p = dir / "m.safetensors";
  const std::string header =
      R"({"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]},"a":{"dtype":"I16","shape":[2],"data_offsets":[0,4]},)"
      R"("__metadata__":{"k":"v"}})";
  write_bytes(p, image(header) + std::string("\x01\x00\xff\xff\x07\x08", 6));
  SafetensorsFile f(p);
  ASSERT_EQ(f.entries().size(), 2u);
  EXPECT_EQ(f.entries()[0].name, "a");
  EXPECT_EQ(f.entries()[1].name, "b");
  EXPECT_EQ(f.metadata().at("k"), "v");
  expect_same(f.get("a"), torch::tensor({1, -1}, torch::kInt16), "a");
  expect_same(f.get("b"), torch::tensor({7, 8}, torch::kUInt8), "b");
}

// ================================================================================================ writer errors

TEST(SafetensorsSave, UnsupportedDtypeLeavesExistingFileIntact) {
  TempDir dir;
  const fs::path p = dir / "m.safetensors";
  supra::save_safetensors(p, {{"good", torch::arange(10, torch::kFloat32)}});
  const std::string before = read_bytes(p);

  EXPECT_THROW(supra::save_safetensors(p, {{"ok", torch::ones({2})}, {"c", torch::zeros({2}, torch::kComplexFloat)}}),
               Error);
  EXPECT_EQ(read_bytes(p), before);
  // No temporary file is left behind.
  size_t files = 0;
  for (const auto& path : supra::list_directory(dir.path())) {
    ++files;
    EXPECT_EQ(path.filename().string(), "m.safetensors");
  }
  EXPECT_EQ(files, 1u);
  SafetensorsFile f(p);
  expect_same(f.get("good"), torch::arange(10, torch::kFloat32), "good");
}

TEST(SafetensorsSave, WriteFailureRemovesTmpAndKeepsOldFile) {
  TempDir dir;
  const fs::path p = dir / "m.safetensors";
  supra::save_safetensors(p, {{"good", torch::arange(4, torch::kFloat32)}});
  const std::string before = read_bytes(p);

  // Simulate a full disk: cap the file size for this process (writes then fail with EFBIG instead of SIGXFSZ).
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit capped = old;
  capped.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &capped), 0);
  std::string message;
  try {
    supra::save_safetensors(p, {{"big", torch::randn({1 << 16})}});
  } catch (const Error& e) {
    message = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);

  EXPECT_NE(message.find("write to"), std::string::npos) << "expected a write error, got: '" << message << "'";
  EXPECT_NE(message.find(std::strerror(EFBIG)), std::string::npos) << message;
  EXPECT_EQ(read_bytes(p), before);
  for (const auto& path : supra::list_directory(dir.path())) EXPECT_EQ(path.filename().string(), "m.safetensors");
}

TEST(SafetensorsSave, RejectsDuplicateAndReservedNames) {
  TempDir dir;
  const fs::path p = dir / "m.safetensors";
  EXPECT_THROW(supra::save_safetensors(p, {{"a", torch::ones({1})}, {"a", torch::ones({1})}}), Error);
  EXPECT_THROW(supra::save_safetensors(p, {{"__metadata__", torch::ones({1})}}), Error);
  EXPECT_FALSE(fs::exists(p));
}

TEST(SafetensorsSave, MissingParentDirectoryIsAnError) {
  TempDir dir;
  const fs::path p = dir / "no" / "such" / "m.safetensors";
  try {
    supra::save_safetensors(p, {{"a", torch::ones({1})}});
    FAIL() << "expected supra::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.subject(), p.string());
  }
}

// ================================================================================================ folders

TEST(SafetensorsDir, SingleFileAndDirectFilePath) {
  TempDir dir;
  const Named tensors = sample_tensors();
  supra::save_safetensors_dir(dir.path(), tensors);
  EXPECT_TRUE(fs::exists(dir / "model.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "model.safetensors.index.json"));
  for (const auto& src : {dir.path(), dir / "model.safetensors"}) {
    const auto loaded = supra::load_safetensors_dir(src);
    ASSERT_EQ(loaded.size(), tensors.size());
    for (const auto& [name, t] : tensors) expect_same(loaded.at(name), t, name);
  }
}

TEST(SafetensorsDir, ShardedRoundTrip) {
  TempDir dir;
  Named tensors;
  for (int i = 0; i < 6; ++i) tensors.emplace_back("layer." + std::to_string(i), torch::randn({1024}));  // 4 KiB each
  tensors.emplace_back("tiny", torch::tensor({1, 2, 3}, torch::kInt64));
  const std::map<std::string, std::string> meta{{"format", "pt"}};
  supra::save_safetensors_dir(dir.path(), tensors, /*max_shard_bytes=*/10000, meta);

  // 2 × 4 KiB per shard: layers 0-1, 2-3, 4-5 + tiny.
  EXPECT_FALSE(fs::exists(dir / "model.safetensors"));
  for (int i = 1; i <= 3; ++i)
    EXPECT_TRUE(fs::exists(dir / ("model-0000" + std::to_string(i) + "-of-00003.safetensors"))) << i;
  EXPECT_FALSE(fs::exists(dir / "model-00004-of-00004.safetensors"));
  const auto index = nlohmann::json::parse(read_bytes(dir / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), 6u * 4096 + 24);
  EXPECT_EQ(index["weight_map"].size(), tensors.size());
  EXPECT_EQ(index["weight_map"]["layer.0"], "model-00001-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["tiny"], "model-00003-of-00003.safetensors");
  EXPECT_EQ(SafetensorsFile(dir / "model-00002-of-00003.safetensors").metadata(), meta);

  const auto loaded = supra::load_safetensors_dir(dir.path());
  ASSERT_EQ(loaded.size(), tensors.size());
  for (const auto& [name, t] : tensors) expect_same(loaded.at(name), t, name);
  // The index file itself may be given as the path.
  EXPECT_EQ(supra::load_safetensors_dir(dir / "model.safetensors.index.json").size(), tensors.size());

  // Re-saving as a single file removes the stale index and shards, which would otherwise win on load.
  const Named small{{"x", torch::ones({2})}};
  supra::save_safetensors_dir(dir.path(), small);
  EXPECT_FALSE(fs::exists(dir / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(dir / "model-00001-of-00003.safetensors"));
  const auto reloaded = supra::load_safetensors_dir(dir.path());
  ASSERT_EQ(reloaded.size(), 1u);
  expect_same(reloaded.at("x"), small[0].second, "x");
}

TEST(SafetensorsDir, TensorLargerThanShardLimitGetsOwnShard) {
  TempDir dir;
  const Named tensors{{"a", torch::randn({100})}, {"big", torch::randn({1000})}, {"c", torch::randn({100})}};
  supra::save_safetensors_dir(dir.path(), tensors, /*max_shard_bytes=*/1000);
  EXPECT_TRUE(fs::exists(dir / "model-00003-of-00003.safetensors"));
  const auto loaded = supra::load_safetensors_dir(dir.path());
  for (const auto& [name, t] : tensors) expect_same(loaded.at(name), t, name);
}

TEST(SafetensorsDir, EmptyFolderIsAnError) {
  TempDir dir;
  try {
    supra::load_safetensors_dir(dir.path());
    FAIL() << "expected supra::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.subject(), dir.path().string());
    EXPECT_NE(std::string(e.what()).find("no model.safetensors"), std::string::npos) << e.what();
  }
}

TEST(SafetensorsDir, IndexPointingToMissingShard) {
  TempDir dir;
  supra::save_safetensors(dir / "model-00001-of-00002.safetensors", {{"a", torch::ones({2})}});
  write_bytes(dir / "model.safetensors.index.json",
              R"({"metadata":{},"weight_map":{"a":"model-00001-of-00002.safetensors",)"
              R"("b":"model-00002-of-00002.safetensors"}})");
  try {
    supra::load_safetensors_dir(dir.path());
    FAIL() << "expected supra::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model-00002-of-00002.safetensors"), std::string::npos) << e.what();
  }
}

TEST(SafetensorsDir, IndexMappingTensorAbsentFromShard) {
  TempDir dir;
  supra::save_safetensors(dir / "shard.safetensors", {{"a", torch::ones({2})}, {"extra", torch::ones({1})}});
  write_bytes(dir / "model.safetensors.index.json",
              R"({"weight_map":{"a":"shard.safetensors","ghost":"shard.safetensors"}})");
  try {
    supra::load_safetensors_dir(dir.path());
    FAIL() << "expected supra::Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("shard.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find("ghost"), std::string::npos) << msg;
  }
  // Without the ghost entry the load succeeds and the unmapped "extra" tensor is ignored.
  write_bytes(dir / "model.safetensors.index.json", R"({"weight_map":{"a":"shard.safetensors"}})");
  const auto loaded = supra::load_safetensors_dir(dir.path());
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_TRUE(loaded.count("a"));
}

TEST(SafetensorsDir, MalformedIndex) {
  TempDir dir;
  supra::save_safetensors(dir / "shard.safetensors", {{"a", torch::ones({2})}});
  const fs::path index = dir / "model.safetensors.index.json";
  const auto expect_index_error = [&](const std::string& text, const std::string& keyword) {
    write_bytes(index, text);
    try {
      supra::load_safetensors_dir(dir.path());
      ADD_FAILURE() << "accepted index " << text;
    } catch (const Error& e) {
      EXPECT_EQ(e.subject(), index.string()) << e.what();
      EXPECT_NE(std::string(e.what()).find(keyword), std::string::npos) << e.what();
    }
  };
  expect_index_error("{\"weight_map\": ", "JSON");
  expect_index_error(R"({"metadata":{}})", "weight_map");
  expect_index_error(R"({"weight_map":{"a":3}})", "not a string");
  expect_index_error(R"({"weight_map":{"a":"../shard.safetensors"}})", "plain file name");
  expect_index_error(R"({"weight_map":{"a":".."}})", "plain file name");
}

// ================================================================================================ malformed files

TEST(SafetensorsMalformed, MissingFile) {
  TempDir dir;
  const fs::path p = dir / "absent.safetensors";
  try {
    SafetensorsFile f(p);
    FAIL() << "expected supra::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.subject(), p.string());
    EXPECT_NE(std::string(e.what()).find("cannot open"), std::string::npos) << e.what();
  }
}

TEST(SafetensorsMalformed, DirectoryInsteadOfFile) {
  TempDir dir;
  EXPECT_THROW(SafetensorsFile f(dir.path()), Error);
}

TEST(SafetensorsMalformed, FileShorterThanLengthPrefix) {
  expect_rejected("", "too short");
  expect_rejected(std::string("\x05\x00\x00", 3), "too short");
}

TEST(SafetensorsMalformed, HeaderLengthZero) { expect_rejected(u64le(0) + "{}", "header length is 0"); }

TEST(SafetensorsMalformed, HeaderLengthAbsurd) {
  expect_rejected(u64le(1ull << 40) + "{}", "100 MB");
  expect_rejected(u64le(~0ull) + "{}", "header length");
}

TEST(SafetensorsMalformed, HeaderLengthBeyondEndOfFile) {
  expect_rejected(u64le(1000) + "{}      ", "beyond the end of the file");
}

TEST(SafetensorsMalformed, HeaderNotJson) {
  expect_rejected(image("{not json}"), "JSON");
  expect_rejected(image(R"({"a":{"dtype":"F32")"), "JSON");            // truncated
  expect_rejected(image(std::string("{\"\xff\xfe\":1}", 8)), "JSON");  // invalid UTF-8
  expect_rejected(image(std::string("{}\0\0\0\0\0\0", 8)), "JSON");    // NUL padding is not whitespace
}

TEST(SafetensorsMalformed, HeaderNotObject) {
  expect_rejected(image("[1, 2, 3]"), "not an object");
  expect_rejected(image("42"), "not an object");
}

TEST(SafetensorsMalformed, EntryNotObject) { expect_rejected(image(R"({"a": [1, 2]})"), "not an object"); }

TEST(SafetensorsMalformed, EntryMissingField) {
  expect_rejected(image(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", 4), "missing \"dtype\"");
  expect_rejected(image(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", 4), "missing \"shape\"");
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":[1]}})", 4), "missing \"data_offsets\"");
}

TEST(SafetensorsMalformed, UnknownDtype) {
  expect_rejected(image(R"({"a":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})", 4), "dtype");
  expect_rejected(image(R"({"a":{"dtype":32,"shape":[1],"data_offsets":[0,4]}})", 4), "dtype");
}

TEST(SafetensorsMalformed, BadShape) {
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4), "shape");
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4), "shape");
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}})", 4), "shape");
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":4,"data_offsets":[0,4]}})", 4), "shape");
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,4]}})", 4), "shape");
}

TEST(SafetensorsMalformed, ShapeSizeOverflow) {
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})"), "overflow");
  expect_rejected(image(R"({"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]}})"), "overflow");
}

TEST(SafetensorsMalformed, BadDataOffsets) {
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4), "data_offsets");
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", 4), "data_offsets");
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 4), "data_offsets");
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":"0,4"}})", 4), "data_offsets");
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})", 4), "begin > end");
}

TEST(SafetensorsMalformed, DataBeyondEndOfFile) {
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8), "beyond the data section");
}

TEST(SafetensorsMalformed, SizeMismatch) {
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})", 12), "does not match");
}

TEST(SafetensorsMalformed, OverlappingTensors) {
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                        12),
                  "overlap");
  // Two names aliasing the same bytes.
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})",
                        8),
                  "overlap");
}

TEST(SafetensorsMalformed, GapBetweenTensors) {
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                        R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                        12),
                  "gap");
}

TEST(SafetensorsMalformed, TrailingBytes) {
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8), "trailing");
  expect_rejected(image("{}", 1), "trailing");
}

TEST(SafetensorsMalformed, BadMetadata) {
  expect_rejected(image(R"({"__metadata__":["x"]})"), "__metadata__");
  expect_rejected(image(R"({"__metadata__":{"k":1}})"), "__metadata__");
}

// Every truncation and many random single-byte corruptions of a valid file are either read or rejected with
// supra::Error; nothing else escapes and nothing crashes.
TEST(SafetensorsMalformed, TruncationsAndCorruptionsNeverCrash) {
  TempDir dir;
  const fs::path good = dir / "good.safetensors";
  supra::save_safetensors(good, {{"w", torch::randn({3, 2})}, {"b", torch::ones({2}, torch::kInt64)}}, {{"k", "v"}});
  const std::string bytes = read_bytes(good);
  const fs::path p = dir / "bad.safetensors";
  for (size_t len = 0; len < bytes.size(); ++len) {
    write_bytes(p, bytes.substr(0, len));
    EXPECT_THROW(SafetensorsFile f(p), Error) << "truncated to " << len;
  }
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  std::mt19937 rng(123);
  for (int trial = 0; trial < 400; ++trial) {
    std::string b = bytes;
    const size_t pos = rng() % (8 + n);  // corrupt the length prefix or the header
    b[pos] = static_cast<char>(rng() & 0xff);
    write_bytes(p, b);
    try {
      SafetensorsFile f(p);
      for (const auto& e : f.entries()) (void)f.get(e.name);
    } catch (const Error&) {
    } catch (const std::exception& e) {
      ADD_FAILURE() << "non-supra exception at byte " << pos << ": " << e.what();
    }
  }
}
