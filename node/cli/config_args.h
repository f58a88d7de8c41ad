// `--config FILE.toml` for any subcommand: the file's keys are the long flag
// names (without "--"), e.g. `steps = 2000`, `preset = "small"`,
// `join = ["a:1", "b:2"]`, `open = true`. They are spliced into the command
// line before the first flag, so flags given explicitly take precedence and
// the file is validated exactly like flags are.
#pragma once

#include <string>
#include <vector>

namespace murmur::cli {

// Returns argv with every `--config FILE` / `--config=FILE` expanded. Throws
// std::runtime_error naming the file, line and key on a parse error or a value
// of an unsupported type (tables, dates).
std::vector<std::string> expand_config_args(int argc, char** argv);

}  // namespace murmur::cli
