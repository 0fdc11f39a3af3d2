// libFuzzer harness: the safetensors reader (core/formats/safetensors). Any bytes as model.safetensors must give
// either a validated file whose every tensor can be read, or supra::Error; anything else (a crash, a sanitizer
// report, another exception) is a finding. Seeds: tests/fuzz/corpus/safetensors.
#include "core/base/error.h"
#include "core/formats/safetensors.h"
#include "tests/fuzz/fuzz_files.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = supra::fuzz::folder().write("model.safetensors", data, size);
  try {
    supra::SafetensorsFile file(path);
    for (const auto& e : file.entries()) {
      const torch::Tensor t = file.get(e.name);
      if (t.numel() * t.element_size() != static_cast<int64_t>(e.end - e.begin))
        supra::fuzz::broken_promise("tensor " + e.name + " has another size than its byte range");
    }
    (void)supra::load_safetensors_dir(path.parent_path());
  } catch (const supra::Error&) {
  }
  return 0;
}
