#include "cli/toml_settings.h"

#include <toml++/toml.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>
#include <tuple>

#include "core/base/error.h"

namespace supra::cli {
namespace {

struct Item {
  CLI::ConfigItem item;
  toml::source_position at;  // where its value begins: the items are sorted back into file order
};

// One TOML value as the text an option parses: integers exactly, floats as the shortest text that reads back to
// the same double, strings verbatim.
std::string value_text(const toml::node& v, const std::string& name, const std::string& path) {
  if (const auto* s = v.as_string()) return s->get();
  if (const auto* i = v.as_integer()) return std::to_string(i->get());
  if (const auto* b = v.as_boolean()) return b->get() ? "true" : "false";
  if (const auto* f = v.as_floating_point()) {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof(buf), f->get());
    return std::string(buf, r.ptr);
  }
  const auto& p = v.source().begin;
  throw Error(path, "line " + std::to_string(p.line) + ", column " + std::to_string(p.column) + ": '" + name +
                        "' is not a string, number, boolean or array of them");
}

void flatten(const toml::table& table, const std::string& prefix, const std::string& path, std::vector<Item>& out) {
  for (const auto& [key, node] : table) {
    const std::string name = prefix + std::string(key.str());
    if (const auto* sub = node.as_table()) {
      flatten(*sub, name + ".", path, out);
      continue;
    }
    Item it;
    it.item.name = name;
    it.at = node.source().begin;
    if (const auto* arr = node.as_array()) {
      for (const auto& e : *arr) it.item.inputs.push_back(value_text(e, name, path));
    } else {
      it.item.inputs.push_back(value_text(node, name, path));
    }
    out.push_back(std::move(it));
  }
}

}  // namespace

std::vector<CLI::ConfigItem> read_toml_items(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw Error(path, "is a folder, not a TOML file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "cannot open the config file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw Error(path, "cannot read the config file");
  toml::table table;
  try {
    table = toml::parse(text.str(), path);
  } catch (const toml::parse_error& e) {
    const auto& p = e.source().begin;
    throw Error(path, "malformed TOML at line " + std::to_string(p.line) + ", column " + std::to_string(p.column) +
                          ": " + std::string(e.description()));
  }
  std::vector<Item> items;
  flatten(table, "", path, items);
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    return std::tie(a.at.line, a.at.column) < std::tie(b.at.line, b.at.column);
  });
  std::vector<CLI::ConfigItem> out;
  for (auto& it : items) out.push_back(std::move(it.item));
  return out;
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
