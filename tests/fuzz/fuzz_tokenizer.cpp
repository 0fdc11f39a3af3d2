// libFuzzer harness: the tokenizer.json loader (core/tokenizer). Any bytes as tokenizer.json must give a tokenizer
// or supra::Error; an accepted tokenizer must encode and decode text (a fixed sample and the input's own bytes) and
// stream ids without crashing. Seeds: tests/fuzz/corpus/tokenizer (tests/fuzz/make_seeds.py).
#include "core/base/error.h"
#include "core/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_files.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& dir = supra::fuzz::folder();
  dir.write("tokenizer.json", data, size);
  std::unique_ptr<supra::Tokenizer> tok;
  try {
    tok = supra::load_tokenizer(dir.path().string());
  } catch (const supra::Error&) {
    return 0;
  }
  const std::string tail(reinterpret_cast<const char*>(data) + size - std::min<size_t>(size, 64), std::min<size_t>(size, 64));
  for (const std::string& text : {std::string("Once upon a time, 12 üñí 日本 \n\t  x"), tail}) {
    const std::vector<int64_t> ids = tok->encode(text);
    for (int64_t id : ids)
      if (id < 0 || id >= tok->vocab_size()) supra::fuzz::broken_promise("encode gave an id outside the vocabulary");
    (void)tok->decode(ids);
    supra::TokenStreamer streamer(*tok);
    for (int64_t id : ids) (void)streamer.push(id);
    (void)streamer.finish();
  }
  return 0;
}
