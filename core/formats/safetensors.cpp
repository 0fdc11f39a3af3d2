// safetensors reader and writer; see safetensors.h. Format: u64 little-endian header length N, N bytes of JSON
// header ({name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}), then the data section. Validation
// follows the HuggingFace reference implementation: tensors must tile the data section exactly (no overlap, no
// gap, no trailing bytes), and each tensor's byte range must equal numel × element size.
#include "core/formats/safetensors.h"

#include "core/base/error.h"
#include "core/base/files.h"
#include "core/base/mapped_file.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <cstring>
#include <fstream>
#include <limits>
#include <regex>
#include <set>
#include <sstream>

namespace supra {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; big-endian hosts unsupported");

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // same limit as the HF implementation
constexpr const char* kMetadataKey = "__metadata__";
constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";

struct DtypeInfo {
  const char* name;
  torch::ScalarType type;
  uint64_t size;
};

constexpr DtypeInfo kDtypes[] = {
    {"F64", torch::kFloat64, 8},   {"F32", torch::kFloat32, 4}, {"F16", torch::kFloat16, 2},
    {"BF16", torch::kBFloat16, 2}, {"I64", torch::kInt64, 8},   {"I32", torch::kInt32, 4},
    {"I16", torch::kInt16, 2},     {"I8", torch::kInt8, 1},     {"U8", torch::kUInt8, 1},
    {"BOOL", torch::kBool, 1},
};

const DtypeInfo* dtype_by_name(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

const DtypeInfo* dtype_by_type(torch::ScalarType type) {
  for (const auto& d : kDtypes)
    if (type == d.type) return &d;
  return nullptr;
}

// A JSON value as a non-negative integer; false for negatives, floats, booleans, strings, ...
bool as_non_negative(const nlohmann::json& v, uint64_t& out) {
  if (v.is_number_unsigned()) {
    out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer()) {
    const int64_t s = v.get<int64_t>();
    if (s < 0) return false;
    out = static_cast<uint64_t>(s);
    return true;
  }
  return false;
}

// One header entry, validated on its own (ranges are checked against each other afterwards).
TensorEntry parse_entry(const std::string& subject, const std::string& name, const nlohmann::json& j,
                        uint64_t data_size) {
  const std::string where = "tensor '" + name + "': ";
  if (!j.is_object()) throw Error(subject, where + "header entry is not an object");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!j.contains(key)) throw Error(subject, where + "header entry is missing \"" + key + "\"");

  TensorEntry e;
  e.name = name;

  const auto& jd = j.at("dtype");
  if (!jd.is_string()) throw Error(subject, where + "dtype is not a string");
  const DtypeInfo* info = dtype_by_name(jd.get<std::string>());
  if (!info) throw Error(subject, where + "unsupported dtype \"" + jd.get<std::string>() + "\"");
  e.dtype = info->type;

  const auto& js = j.at("shape");
  if (!js.is_array()) throw Error(subject, where + "shape is not an array");
  uint64_t numel = 1;
  bool overflow = false;
  for (const auto& d : js) {
    uint64_t dim = 0;
    if (!as_non_negative(d, dim) || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      throw Error(subject, where + "shape must contain only non-negative integers, got " + js.dump());
    e.shape.push_back(static_cast<int64_t>(dim));
    overflow = overflow || __builtin_mul_overflow(numel, dim, &numel);
  }
  // A zero dimension makes the tensor empty whatever the other dimensions are.
  if (std::find(e.shape.begin(), e.shape.end(), 0) != e.shape.end()) {
    numel = 0;
    overflow = false;
  }
  uint64_t nbytes = 0;
  overflow = overflow || __builtin_mul_overflow(numel, info->size, &nbytes);
  if (overflow) throw Error(subject, where + "shape " + js.dump() + " byte size overflows 64 bits");

  const auto& jo = j.at("data_offsets");
  if (!jo.is_array() || jo.size() != 2 || !as_non_negative(jo[0], e.begin) || !as_non_negative(jo[1], e.end))
    throw Error(subject, where + "data_offsets must be [begin, end] non-negative integers, got " + jo.dump());
  if (e.begin > e.end) throw Error(subject, where + "data_offsets begin > end in " + jo.dump());
  if (e.end > data_size)
    throw Error(subject, where + "data_offsets end " + std::to_string(e.end) + " is beyond the data section (" +
                             std::to_string(data_size) + " bytes)");
  if (e.end - e.begin != nbytes)
    throw Error(subject, where + "byte size " + std::to_string(e.end - e.begin) + " from data_offsets does not match " +
                             std::to_string(nbytes) + " from shape " + js.dump() + " and dtype " + info->name);
  return e;
}

// ------------------------------------------------------------------------------------------------ writing helpers

// Checks names and dtypes of tensors to be written, before any file is created. Returns each tensor's byte size.
std::vector<uint64_t> check_for_save(const std::string& subject,
                                     const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  std::set<std::string> seen;
  std::vector<uint64_t> sizes;
  for (const auto& [name, t] : tensors) {
    if (name == kMetadataKey) throw Error(subject, "tensor name \"__metadata__\" is reserved");
    if (!seen.insert(name).second) throw Error(subject, "duplicate tensor name '" + name + "'");
    if (!t.defined()) throw Error(subject, "tensor '" + name + "' is undefined");
    const DtypeInfo* info = dtype_by_type(t.scalar_type());
    if (!info)
      throw Error(subject,
                  "tensor '" + name + "' has unsupported dtype " + std::string(c10::toString(t.scalar_type())));
    sizes.push_back(static_cast<uint64_t>(t.numel()) * info->size);
  }
  return sizes;
}

// Shard file names follow the HF convention: model-00001-of-00003.safetensors.
std::string shard_name(size_t i, size_t n) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "model-%05zu-of-%05zu.safetensors", i, n);
  return buf;
}

// After a checkpoint folder was rewritten, files of the other layout (or a stale shard set) would make
// load_safetensors_dir read old data (the index wins over model.safetensors), so they are removed.
void remove_stale(const std::filesystem::path& dir, const std::set<std::string>& keep) {
  static const std::regex shard_re(R"(model-\d{5}-of-\d{5}\.safetensors)");
  std::error_code ec;
  for (const auto& path : list_directory(dir)) {
    const std::string name = path.filename().string();
    const bool ours = name == kSingleName || name == kIndexName || std::regex_match(name, shard_re);
    if (ours && !keep.count(name)) std::filesystem::remove(path, ec);
  }
}

}  // namespace

// ================================================================================================ SafetensorsFile

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : path_(path) {
  const std::string subject = path.string();
  map_ = std::make_unique<MappedFile>(path, "safetensors file");
  const uint64_t file_size = map_->size();
  if (file_size < 8)
    throw Error(subject, "file too short (" + std::to_string(file_size) + " bytes) to hold the 8-byte header length");
  const uint8_t* map = map_->data();

  uint64_t n = 0;
  std::memcpy(&n, map, 8);  // little-endian host (static_assert above)
  if (n == 0) throw Error(subject, "header length is 0");
  if (n > kMaxHeaderBytes) throw Error(subject, "header length " + std::to_string(n) + " exceeds the 100 MB limit");
  if (n > file_size - 8)
    throw Error(subject, "header length " + std::to_string(n) + " extends beyond the end of the file (" +
                             std::to_string(file_size) + " bytes)");
  data_start_ = 8 + n;
  const uint64_t data_size = file_size - data_start_;

  const char* hb = reinterpret_cast<const char*>(map + 8);
  // nlohmann stops at a NUL byte as if the input ended there, which would hide whatever follows it.
  if (const void* nul = std::memchr(hb, 0, n))
    throw Error(subject, "header is not valid JSON: NUL byte at header offset " +
                             std::to_string(static_cast<const char*>(nul) - hb));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(hb, hb + n);
  } catch (const nlohmann::json::exception& ex) {
    throw Error(subject, std::string("header is not valid JSON: ") + ex.what());
  }
  if (!header.is_object()) throw Error(subject, "header JSON is not an object");

  for (const auto& [name, value] : header.items()) {
    if (name == kMetadataKey) {
      if (!value.is_object()) throw Error(subject, "__metadata__ is not an object");
      for (const auto& [k, v] : value.items()) {
        if (!v.is_string()) throw Error(subject, "__metadata__ value for '" + k + "' is not a string");
        metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    entries_.push_back(parse_entry(subject, name, value, data_size));
  }

  // Byte ranges must tile the data section exactly: sorted by offset, each begins where the previous ended.
  std::sort(entries_.begin(), entries_.end(), [](const TensorEntry& a, const TensorEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expected = 0;
  const TensorEntry* prev = nullptr;
  for (const auto& e : entries_) {
    if (e.begin < expected)
      throw Error(subject, "tensor '" + e.name + "' data_offsets overlap those of '" + prev->name + "'");
    if (e.begin > expected)
      throw Error(subject, "gap of " + std::to_string(e.begin - expected) + " bytes before tensor '" + e.name +
                               "' (data must be contiguous)");
    expected = e.end;
    prev = &e;
  }
  if (expected != data_size)
    throw Error(subject, "data section has " + std::to_string(data_size - expected) +
                             " trailing bytes not covered by any tensor");

  for (size_t i = 0; i < entries_.size(); ++i) index_[entries_[i].name] = i;
}

SafetensorsFile::~SafetensorsFile() = default;

bool SafetensorsFile::contains(const std::string& name) const { return index_.count(name) != 0; }

const TensorEntry& SafetensorsFile::entry(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw Error(path_.string(), "no tensor named '" + name + "'");
  return entries_[it->second];
}

torch::Tensor SafetensorsFile::get(const std::string& name) const {
  const TensorEntry& e = entry(name);
  // BOOL bytes other than 0/1 would be invalid torch bools: read them as bytes and normalise.
  const auto read_type = e.dtype == torch::kBool ? torch::kUInt8 : e.dtype;
  torch::Tensor t = torch::empty(e.shape, torch::TensorOptions().dtype(read_type));
  if (e.end > e.begin) std::memcpy(t.data_ptr(), map_->data() + data_start_ + e.begin, e.end - e.begin);
  if (e.dtype == torch::kBool) t = t.ne(0);
  return t;
}

// ================================================================================================ writing

void save_safetensors(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  const std::string subject = path.string();
  const std::vector<uint64_t> sizes = check_for_save(subject, tensors);

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    auto& m = header[kMetadataKey] = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
  }
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i].second;
    header[tensors[i].first] = {{"dtype", dtype_by_type(t.scalar_type())->name},
                                {"shape", t.sizes().vec()},
                                {"data_offsets", {offset, offset + sizes[i]}}};
    offset += sizes[i];
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& ex) {  // e.g. a name or metadata string that is not valid UTF-8
    throw Error(subject, std::string("cannot encode header: ") + ex.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // data section starts 8-byte aligned
  const uint64_t n = text.size();

  AtomicFile file(path);
  file.write(&n, 8);
  file.write(text.data(), text.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (sizes[i] == 0) continue;
    // One tensor at a time so device tensors are not all copied to host at once.
    const torch::Tensor c = tensors[i].second.detach().to(torch::kCPU).contiguous();
    file.write(c.data_ptr(), sizes[i]);
  }
  file.commit();
}

void save_safetensors_dir(const std::filesystem::path& dir,
                          const std::vector<std::pair<std::string, torch::Tensor>>& tensors, uint64_t max_shard_bytes,
                          const std::map<std::string, std::string>& metadata) {
  const std::string subject = dir.string();
  const std::vector<uint64_t> sizes = check_for_save(subject, tensors);  // fail before writing anything
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(subject, "cannot create directory: " + ec.message());

  uint64_t total = 0;
  for (uint64_t s : sizes) total += s;
  if (total <= max_shard_bytes) {
    save_safetensors(dir / kSingleName, tensors, metadata);
    remove_stale(dir, {kSingleName});
    return;
  }

  // Greedy packing in the given order; a tensor larger than the limit gets a shard of its own.
  std::vector<std::vector<std::pair<std::string, torch::Tensor>>> shards;
  uint64_t current = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (shards.empty() || (!shards.back().empty() && current + sizes[i] > max_shard_bytes)) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().push_back(tensors[i]);
    current += sizes[i];
  }

  nlohmann::json weight_map = nlohmann::json::object();
  std::set<std::string> keep{kIndexName};
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string name = shard_name(s + 1, shards.size());
    save_safetensors(dir / name, shards[s], metadata);
    for (const auto& [tname, t] : shards[s]) weight_map[tname] = name;
    keep.insert(name);
  }
  const nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  const std::string text = index.dump(2) + "\n";
  write_file_atomic(dir / kIndexName, text);
  remove_stale(dir, keep);
}

// ================================================================================================ loading folders

std::map<std::string, torch::Tensor> load_safetensors_dir(const std::filesystem::path& dir) {
  std::map<std::string, torch::Tensor> out;
  const auto load_all = [&](const std::filesystem::path& file) {
    SafetensorsFile f(file);
    for (const auto& e : f.entries()) out[e.name] = f.get(e.name);
  };

  std::filesystem::path index_path = dir / kIndexName;
  std::filesystem::path base = dir;
  std::error_code ec;
  if (std::filesystem::is_regular_file(dir, ec)) {
    // A file was given: an index (…index.json) or a single safetensors file.
    const std::string fname = dir.filename().string();
    if (fname.size() < 11 || fname.compare(fname.size() - 11, 11, ".index.json") != 0) {
      load_all(dir);
      return out;
    }
    index_path = dir;
    base = dir.parent_path();
  } else if (!std::filesystem::exists(index_path, ec)) {
    if (std::filesystem::exists(dir / kSingleName, ec)) {
      load_all(dir / kSingleName);
      return out;
    }
    throw Error(dir.string(), "no model.safetensors or model.safetensors.index.json");
  }

  const std::string isub = index_path.string();
  std::ifstream in(index_path, std::ios::binary);
  if (!in) throw Error(isub, "cannot open index file");
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& ex) {
    throw Error(isub, std::string("index is not valid JSON: ") + ex.what());
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    throw Error(isub, "index has no \"weight_map\" object");

  // Group tensor names by shard so each shard is opened once.
  std::map<std::string, std::vector<std::string>> by_shard;
  for (const auto& [tname, shard] : index["weight_map"].items()) {
    if (!shard.is_string()) throw Error(isub, "weight_map entry for '" + tname + "' is not a string");
    const std::string s = shard.get<std::string>();
    if (s.empty() || s == "." || s == ".." || s.find('/') != std::string::npos || s.find('\\') != std::string::npos ||
        s.find('\0') != std::string::npos)
      throw Error(isub,
                  "weight_map entry for '" + tname + "' names shard \"" + s + "\", which is not a plain file name");
    by_shard[s].push_back(tname);
  }
  // Tensors present in a shard but absent from the weight map are ignored.
  for (const auto& [shard, names] : by_shard) {
    const SafetensorsFile f(base / shard);
    for (const auto& tname : names) {
      if (!f.contains(tname))
        throw Error(f.path().string(),
                    "tensor '" + tname + "' listed in " + std::string(kIndexName) + " is missing from this shard");
      out[tname] = f.get(tname);
    }
  }
  return out;
}

}  // namespace supra
