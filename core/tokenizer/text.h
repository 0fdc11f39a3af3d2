// Text helpers for the tokenizer.json implementation: UTF-8 (validation, Rust-style lossy conversion, code
// points), GPT-2's byte <-> unicode map, Unicode whitespace, and a PCRE2 regex (UTF + Unicode properties) with the
// find-all semantics of the `tokenizers` library's Oniguruma regexes.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace supra::tokenizer_detail {

// ---- UTF-8
bool utf8_valid(std::string_view s);
// Invalid sequences become U+FFFD, one per maximal invalid subpart (Rust's String::from_utf8_lossy, Python's
// bytes.decode("utf-8", "replace")).
std::string utf8_lossy(std::string_view bytes);
// Length of the (valid) UTF-8 character starting with byte `lead`.
inline size_t utf8_len(unsigned char lead) { return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4; }
uint32_t utf8_decode(std::string_view s, size_t i);  // code point of the valid character at byte i
void utf8_append(std::string& out, uint32_t cp);
std::vector<std::string_view> utf8_chars(std::string_view s);         // the characters of valid UTF-8 text
bool is_unicode_space(uint32_t cp);                                   // the White_Space property
inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// ---- GPT-2 byte-level alphabet: each byte is shown as a printable character.
const std::array<std::string, 256>& byte_to_unicode();  // byte -> UTF-8 of its character
int unicode_to_byte(uint32_t cp);                       // character -> byte, -1 if not in the alphabet

// ---- Regex (PCRE2, UTF mode with Unicode properties: \p{L}, \s and \w Unicode-aware).
class Regex {
 public:
  // Throws supra::Error(where, "invalid regex ...") when `pattern` does not compile.
  Regex(const std::string& pattern, const std::string& where);
  // Non-overlapping matches [start, end) in byte offsets, leftmost first; an empty match right after the previous
  // match is skipped (Oniguruma's find_iter as the tokenizers library uses it). `text` must be valid UTF-8.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;
  // Whether the pattern matches `text` anchored at byte `pos`.
  bool matches_at(std::string_view text, size_t pos) const;
  static std::string escape(std::string_view literal);  // a pattern matching `literal` exactly

 private:
  int match(std::string_view text, size_t pos, uint32_t options, void* match_data) const;
  std::shared_ptr<void> code_;  // pcre2_code_8
  std::string where_;
};

}  // namespace supra::tokenizer_detail
