#include "node/cli/config_args.h"

#include <toml++/toml.h>

#include <stdexcept>

namespace murmur::cli {

namespace {

std::string scalar_text(const toml::node& v, const std::string& where) {
  if (v.is_string()) return *v.value<std::string>();
  if (v.is_integer()) return std::to_string(*v.value<int64_t>());
  if (v.is_floating_point()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", *v.value<double>());
    return buf;
  }
  throw std::runtime_error(where + ": expected a string, number or boolean");
}

std::vector<std::string> toml_to_flags(const std::string& file) {
  toml::table tbl;
  try {
    tbl = toml::parse_file(file);
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    throw std::runtime_error("config '" + file + "' line " + std::to_string(b.line) + ", column " +
                             std::to_string(b.column) + ": " + std::string(e.description()));
  }
  std::vector<std::string> flags;
  for (const auto& [key, node] : tbl) {
    const std::string k(key.str());
    const std::string where =
        "config '" + file + "' line " + std::to_string(node.source().begin.line) + ", key '" + k + "'";
    if (node.is_boolean()) {
      if (*node.value<bool>()) flags.push_back("--" + k);
    } else if (const toml::array* arr = node.as_array()) {
      for (const auto& item : *arr) flags.push_back("--" + k + "=" + scalar_text(item, where));
    } else if (node.is_table()) {
      throw std::runtime_error(where + ": tables are not supported; use flat keys named like the flags");
    } else {
      flags.push_back("--" + k + "=" + scalar_text(node, where));
    }
  }
  return flags;
}

}  // namespace

std::vector<std::string> expand_config_args(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc), rest, from_files;
  // The launchers hand their run file to the peers they start, untouched.
  if (args.size() > 1 && args[1] == "swarm") return args;
  rest.push_back(args[0]);
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--config") {
      if (i + 1 >= args.size()) throw std::runtime_error("--config needs a file name");
      const auto f = toml_to_flags(args[++i]);
      from_files.insert(from_files.end(), f.begin(), f.end());
    } else if (a.starts_with("--config=")) {
      const auto f = toml_to_flags(a.substr(9));
      from_files.insert(from_files.end(), f.begin(), f.end());
    } else {
      rest.push_back(a);
    }
  }
  // Subcommand words come before the first flag; the file's flags go right after them.
  size_t pos = 1;
  while (pos < rest.size() && !rest[pos].starts_with("-")) ++pos;
  rest.insert(rest.begin() + static_cast<std::ptrdiff_t>(pos), from_files.begin(), from_files.end());
  return rest;
}

}  // namespace murmur::cli
