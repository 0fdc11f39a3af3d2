#include "cli/toml_settings.h"

#include <cctype>
#include <cstdint>
#include <map>

#include "core/base/error.h"
#include "core/base/files.h"
#include "core/tokenizer/text.h"

namespace supra::cli {
namespace {

// A cursor over the text that knows its line and column (columns count bytes, from 1).
class Parser {
 public:
  Parser(const std::string& text, const std::string& source) : s_(text), source_(source) {}

  std::vector<CLI::ConfigItem> parse() {
    check_utf8();
    if (s_.compare(0, 3, "\xEF\xBB\xBF") == 0) i_ = 3;  // a byte-order mark
    std::string table;                                 // "stages.a.train." after [stages.a.train]
    std::map<std::string, int> defined, tables;        // name -> line
    std::vector<CLI::ConfigItem> out;
    while (i_ < s_.size()) {
      skip_blank();
      if (at_line_end()) {
        end_line();
        continue;
      }
      if (peek() == '[') {
        const int line = line_;
        ++i_;
        if (peek() == '[') fail("arrays of tables ([[…]]) are not supported in supra configs");
        skip_blank();
        const std::string name = dotted_key();
        skip_blank();
        expect(']', "']' to close the table header");
        if (auto [it, fresh] = tables.emplace(name, line); !fresh)
          fail_at(line, "table [" + name + "] is defined twice (first on line " + std::to_string(it->second) + ")");
        table = name + ".";
      } else {
        const int line = line_;
        const std::string name = table + dotted_key();
        skip_blank();
        expect('=', "'=' after the key");
        skip_blank();
        CLI::ConfigItem item;
        item.name = name;
        item.inputs = {value()};
        if (auto [it, fresh] = defined.emplace(name, line); !fresh)
          fail_at(line, "'" + name + "' is set twice (first on line " + std::to_string(it->second) + ")");
        out.push_back(std::move(item));
      }
      skip_blank();
      if (!at_line_end()) fail("expected the end of the line or a # comment");
      end_line();
    }
    return out;
  }

 private:
  char peek(size_t k = 0) const { return i_ + k < s_.size() ? s_[i_ + k] : '\0'; }
  bool at_end() const { return i_ >= s_.size(); }
  bool at_line_end() const { return at_end() || peek() == '\n' || peek() == '#' || (peek() == '\r' && peek(1) == '\n'); }

  [[noreturn]] void fail_at(int line, size_t column, const std::string& what) const {
    throw Error(source_, "malformed TOML at line " + std::to_string(line) + ", column " + std::to_string(column) + ": " +
                             what);
  }
  [[noreturn]] void fail_at(int line, const std::string& what) const {
    throw Error(source_, "line " + std::to_string(line) + ": " + what);
  }
  [[noreturn]] void fail(const std::string& what) const { fail_at(line_, i_ - line_start_ + 1, what); }

  // Every byte sequence is checked to be UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
  void check_utf8() {
    for (size_t k = 0; k < s_.size();) {
      const auto b = static_cast<unsigned char>(s_[k]);
      if (b == '\n') {
        ++line_;
        line_start_ = k + 1;
      }
      size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
      uint32_t cp = n == 1 ? b : n == 2 ? b & 0x1F : n == 3 ? b & 0x0F : b & 0x07;
      for (size_t j = 1; n && j < n; ++j) {
        const auto c = k + j < s_.size() ? static_cast<unsigned char>(s_[k + j]) : 0;
        if ((c >> 6) != 0x2) n = 0;
        cp = (cp << 6) | (c & 0x3F);
      }
      static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
      if (n == 0 || cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        i_ = k;
        fail("the file is not UTF-8 text");
      }
      k += n;
    }
    i_ = 0, line_ = 1, line_start_ = 0;
  }

  void skip_blank() {
    while (peek() == ' ' || peek() == '\t') ++i_;
  }

  // A comment (any text but control characters) and the line break.
  void end_line() {
    if (peek() == '#')
      for (++i_; !at_end() && peek() != '\n' && !(peek() == '\r' && peek(1) == '\n'); ++i_)
        if (control(peek())) fail("control character in a comment");
    if (peek() == '\r') ++i_;
    if (peek() == '\n') {
      ++i_;
      ++line_;
      line_start_ = i_;
    }
  }

  static bool control(char c) {
    const auto b = static_cast<unsigned char>(c);
    return (b < 0x20 && b != '\t') || b == 0x7F;
  }

  void expect(char c, const std::string& what) {
    if (peek() != c) fail("expected " + what);
    ++i_;
  }

  // key ( '.' key )*, keys bare (A-Z a-z 0-9 _ -) or quoted.
  std::string dotted_key() {
    std::string name;
    for (;;) {
      std::string part;
      if (peek() == '"' || peek() == '\'') {
        part = string_value();
      } else {
        while (std::isalnum(static_cast<unsigned char>(peek())) || peek() == '_' || peek() == '-') part += s_[i_++];
        if (part.empty()) fail("expected a key (letters, digits, _ or -)");
      }
      name += part;
      skip_blank();
      if (peek() != '.') return name;
      ++i_;
      skip_blank();
      name += '.';
    }
  }

  std::string value() {
    const char c = peek();
    if (c == '"' || c == '\'') return string_value();
    if (c == '[') fail("arrays are not supported in supra configs (no setting takes a list)");
    if (c == '{') fail("inline tables are not supported in supra configs (write a [table] instead)");
    const size_t begin = i_;
    while (!at_end() && peek() != ' ' && peek() != '\t' && !at_line_end()) ++i_;
    const std::string token = s_.substr(begin, i_ - begin);
    if (token == "true" || token == "false") return token;
    if (!is_number(token)) {
      i_ = begin;
      fail(token.empty() ? "expected a value" : "'" + token + "' is not a string, decimal number or boolean");
    }
    std::string text;  // as written, without '_' and a leading '+' (which TOML allows and means nothing)
    for (char d : token.substr(token[0] == '+' ? 1 : 0))
      if (d != '_') text += d;
    return text;
  }

  // A TOML decimal integer or float: [+-] (0 | [1-9] digits) [. digits] [e [+-] digits], '_' only between digits;
  // or [+-] inf / nan.
  static bool is_number(const std::string& t) {
    size_t i = (!t.empty() && (t[0] == '+' || t[0] == '-')) ? 1 : 0;
    if (t.compare(i, std::string::npos, "inf") == 0 || t.compare(i, std::string::npos, "nan") == 0) return true;
    auto digit = [&](size_t k) { return k < t.size() && std::isdigit(static_cast<unsigned char>(t[k])); };
    auto digits = [&] {
      if (!digit(i)) return false;
      for (++i; digit(i) || (i < t.size() && t[i] == '_' && digit(i + 1)); ++i) {
      }
      return true;
    };
    if (t.compare(i, 1, "0") == 0) {
      if (digit(++i) || (i < t.size() && t[i] == '_')) return false;  // no leading zeros
    } else if (!digits()) {
      return false;
    }
    if (i < t.size() && t[i] == '.' && (++i, !digits())) return false;
    if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
      if (++i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
      if (!digits()) return false;
    }
    return i == t.size();
  }

  // "basic" (escapes) or 'literal' string on one line.
  std::string string_value() {
    const char quote = s_[i_++];
    if (peek() == quote && peek(1) == quote) fail("multi-line strings are not supported in supra configs");
    std::string out;
    for (;;) {
      if (at_end() || peek() == '\n' || peek() == '\r') fail("unterminated string");
      const char c = s_[i_];
      if (c == quote) {
        ++i_;
        return out;
      }
      if (control(c)) fail("control character in a string (escape it)");
      ++i_;
      if (c != '\\' || quote == '\'') {
        out += c;
        continue;
      }
      if (at_end()) fail("unterminated string");
      switch (const char e = s_[i_++]) {
        case 'b': out += '\b'; break;
        case 't': out += '\t'; break;
        case 'n': out += '\n'; break;
        case 'f': out += '\f'; break;
        case 'r': out += '\r'; break;
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case 'u':
        case 'U': tokenizer_detail::utf8_append(out, hex(e == 'u' ? 4 : 8)); break;
        default: --i_, fail(std::string("unknown escape \\") + e);
      }
    }
  }

  uint32_t hex(int digits) {
    uint32_t v = 0;
    for (int k = 0; k < digits; ++k) {
      const char c = peek();
      if (!std::isxdigit(static_cast<unsigned char>(c))) fail("expected " + std::to_string(digits) + " hex digits");
      v = v * 16 + static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : (c | 0x20) - 'a' + 10);
      ++i_;
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) fail("the escape is not a Unicode scalar value");
    return v;
  }

  const std::string& s_;
  const std::string& source_;
  size_t i_ = 0, line_start_ = 0;
  int line_ = 1;
};

}  // namespace

std::vector<CLI::ConfigItem> parse_toml_items(const std::string& text, const std::string& source) {
  return Parser(text, source).parse();
}

std::vector<CLI::ConfigItem> read_toml_items(const std::string& path) {
  return parse_toml_items(read_file(path), path);  // read_file refuses folders and unreadable files
}

void apply_config_items(CLI::App& cmd, const std::vector<CLI::ConfigItem>& items, const std::string& source) {
  for (const auto& item : items) {
    CLI::Option* op = cmd.get_option_no_throw("--" + item.name);
    if (op == nullptr)
      throw Error(source, "unknown setting '" + item.name + "' (see `supra " + cmd.get_name() + " --help`)");
    if (op->count() > 0) continue;  // given on the command line (or by an earlier source): it wins
    try {
      op->add_result(item.inputs);
      op->run_callback();
    } catch (const CLI::Error& e) {
      throw Error(source, "bad value for '" + item.name + "': " + e.what());
    }
  }
}

}  // namespace supra::cli
