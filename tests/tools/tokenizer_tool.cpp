// tokenizer_tool MODEL_DIR REQUEST.json — runs supra's tokenizer of a model folder on a batch of requests and prints
// the answers as JSON, for tests/python/test_tokenizer.py to compare with the Python libraries.
// Request: {"encode": [text...], "encode_bytes": [[byte...]...], "decode": [[id...]...], "stream": [[id...]...]}
// Answer:  {"name", "vocab_size", "bos_id", "eos_id", "encode": [[id...]...], "encode_bytes": [[id...]...],
//           "decode": [text...], "stream": [[chunk...]...]} (a stream's last chunk is finish()'s).
// Errors (supra::Error): "error: ..." on stderr, exit code 2.
#include <fstream>
#include <iostream>
#include <sstream>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "core/base/error.h"
#include "core/tokenizer/tokenizer.h"

using json = nlohmann::json;

namespace {

json opt(const std::optional<int64_t>& v) { return v ? json(*v) : json(); }

int run(const std::string& model_dir, const std::string& request_path) {
  std::ifstream in(request_path, std::ios::binary);
  if (!in) throw supra::Error(request_path, "cannot open");
  std::stringstream buf;
  buf << in.rdbuf();
  const json req = json::parse(buf.str());

  const auto tok = supra::load_tokenizer(model_dir);
  json out = {{"name", tok->name()},
              {"vocab_size", tok->vocab_size()},
              {"bos_id", opt(tok->bos_id())},
              {"eos_id", opt(tok->eos_id())}};
  out["encode"] = json::array();
  for (const auto& text : req.value("encode", json::array()))
    out["encode"].push_back(tok->encode(text.get<std::string>()));
  out["encode_bytes"] = json::array();
  for (const auto& bytes : req.value("encode_bytes", json::array())) {
    std::string text;
    for (const auto& b : bytes) text += static_cast<char>(b.get<int>());
    out["encode_bytes"].push_back(tok->encode(text));
  }
  out["decode"] = json::array();
  for (const auto& ids : req.value("decode", json::array()))
    out["decode"].push_back(tok->decode(ids.get<std::vector<int64_t>>()));
  out["stream"] = json::array();
  for (const auto& ids : req.value("stream", json::array())) {
    supra::TokenStreamer streamer(*tok);
    json chunks = json::array();
    for (const auto& id : ids) chunks.push_back(streamer.push(id.get<int64_t>()));
    chunks.push_back(streamer.finish());
    out["stream"].push_back(chunks);
  }
  std::cout << out.dump() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: tokenizer_tool MODEL_DIR REQUEST.json\n";
    return 2;
  }
  spdlog::set_default_logger(spdlog::stderr_color_mt("tokenizer_tool"));  // stdout carries the answer
  try {
    return run(argv[1], argv[2]);
  } catch (const supra::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
}
