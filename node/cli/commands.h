// Subcommands of the `murmur` executable. Each add_* function registers one
// subcommand (its flags, --help text and callback) on a CLI11 parent.
// Callbacks throw on errors; main() turns them into one line and exit code 1.
#pragma once

#include <CLI/CLI.hpp>

namespace murmur::cli {

void add_data_command(CLI::App& app);       // murmur data prepare
void add_train_command(CLI::App& app);      // murmur train
void add_eval_command(CLI::App& app);       // murmur eval
void add_bench_model(CLI::App& bench);      // murmur bench model
void add_bench_compress(CLI::App& bench);   // murmur bench compress
void add_netem_command(CLI::App& app);      // murmur netem relay
void add_netem_run(CLI::App& netem);        // murmur netem run
void add_netem_simulate(CLI::App& netem);   // murmur netem simulate
void add_netem_lab(CLI::App& netem);        // murmur netem lab
void add_bench_netem(CLI::App& bench);      // murmur bench netem
void add_keygen_command(CLI::App& app);     // murmur keygen
void add_bench_transport(CLI::App& bench);  // murmur bench transport
void add_node_command(CLI::App& app);       // murmur node
void add_swarm_command(CLI::App& app);      // murmur swarm

}  // namespace murmur::cli
