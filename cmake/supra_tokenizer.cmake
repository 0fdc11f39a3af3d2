# supra_tokenizer: the text tokenizers (core/tokenizer/*.cpp), a library of its own without LibTorch (supra_lib links
# it; tests/tools/tokenizer_tool uses it alone). Needs the SentencePiece C++ library (tokenizer.model) and PCRE2
# (tokenizer.json's pre-tokenizer regexes), taken from ${SUPRA_DEPS_DIR} when scripts/ops/gather_deps.sh put them there
# (air-gapped nodes: the binaries find them through their RPATH), else from the system (Debian: libsentencepiece-dev,
# libpcre2-dev, installed by scripts/install_deps.sh).
file(GLOB SUPRA_TOKENIZER_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/core/tokenizer/*.cpp)

foreach(_dep "SENTENCEPIECE;sentencepiece_processor.h;sentencepiece;libsentencepiece-dev"
             "PCRE2;pcre2.h;pcre2-8;libpcre2-dev")
  list(GET _dep 0 _name)
  list(GET _dep 1 _header)
  list(GET _dep 2 _lib)
  list(GET _dep 3 _pkg)
  find_path(SUPRA_${_name}_INCLUDE_DIR ${_header} PATHS "${SUPRA_DEPS_DIR}/include" NO_DEFAULT_PATH)
  find_path(SUPRA_${_name}_INCLUDE_DIR ${_header})
  find_library(SUPRA_${_name}_LIBRARY ${_lib} PATHS "${SUPRA_DEPS_DIR}/lib" NO_DEFAULT_PATH)
  find_library(SUPRA_${_name}_LIBRARY ${_lib})
  if(NOT SUPRA_${_name}_INCLUDE_DIR OR NOT SUPRA_${_name}_LIBRARY)
    message(FATAL_ERROR "missing ${_header} / lib${_lib}.so: install ${_pkg} (scripts/install_deps.sh does) or run "
                        "scripts/ops/gather_deps.sh on a machine with apt and copy deps/ here")
  endif()
endforeach()
message(STATUS "supra: tokenizers with ${SUPRA_SENTENCEPIECE_LIBRARY} and ${SUPRA_PCRE2_LIBRARY}")

add_library(supra_tokenizer STATIC ${SUPRA_TOKENIZER_SOURCES})
target_include_directories(supra_tokenizer PUBLIC ${CMAKE_SOURCE_DIR})
# System headers for this target (spdlog's own SPDLOG_HEADER_ONLY define would warn against supra_deps' otherwise).
target_include_directories(supra_tokenizer SYSTEM BEFORE PRIVATE "${SUPRA_DEP_INCLUDE}")
target_include_directories(supra_tokenizer SYSTEM PRIVATE ${SUPRA_SENTENCEPIECE_INCLUDE_DIR} ${SUPRA_PCRE2_INCLUDE_DIR})
target_link_libraries(supra_tokenizer PUBLIC supra_deps ${SUPRA_SENTENCEPIECE_LIBRARY} ${SUPRA_PCRE2_LIBRARY})
target_compile_options(supra_tokenizer PRIVATE -Wall -Wextra -Wno-unused-parameter)
