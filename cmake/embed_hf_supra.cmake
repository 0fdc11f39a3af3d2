# Embeds the Hugging Face remote-code files of `supra export` (scripts/shipped/hf_supra/*.py) into supra_lib as
# supra::hf_modeling_files() (core/formats/hf_modeling_files.h). The generated source is rebuilt when a file changes.
file(GLOB SUPRA_HF_MODELING_FILES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/scripts/shipped/hf_supra/*.py)
set(SUPRA_HF_MODELING_CPP ${CMAKE_BINARY_DIR}/generated/hf_modeling_files.cpp)
add_custom_command(
  OUTPUT ${SUPRA_HF_MODELING_CPP}
  COMMAND ${CMAKE_COMMAND} "-DOUT=${SUPRA_HF_MODELING_CPP}" "-DFILES=${SUPRA_HF_MODELING_FILES}"
          -P ${CMAKE_SOURCE_DIR}/cmake/embed_files.cmake
  DEPENDS ${SUPRA_HF_MODELING_FILES} ${CMAKE_SOURCE_DIR}/cmake/embed_files.cmake
  COMMENT "Embedding scripts/shipped/hf_supra/*.py for supra export"
  VERBATIM)
target_sources(supra_lib PRIVATE ${SUPRA_HF_MODELING_CPP})
