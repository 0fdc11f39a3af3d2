// The Hugging Face remote-code files that `supra export` writes next to the weights (scripts/shipped/hf_supra/*.py),
// embedded into the library at build time by cmake/embed_hf_supra.cmake, so an installed `supra` needs no
// source tree.
#pragma once
#include <string>
#include <vector>

namespace supra {

struct EmbeddedFile {
  const char* name;     // file name, e.g. "modeling_supra.py"
  const char* content;  // the file's text
};

const std::vector<EmbeddedFile>& hf_modeling_files();

}  // namespace supra
