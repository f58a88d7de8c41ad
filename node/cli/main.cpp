// murmur: one binary, subcommands for every job (see --help).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <new>

#include "node/cli/commands.h"
#include "node/cli/config_args.h"

int main(int argc, char** argv) {
  // OpenMP threads that spin while waiting steal the cores of the other peers
  // and processes a Murmur machine typically runs (a swarm on one host, the
  // netem harness): a tiny model trained 20x slower with one busy neighbour.
  // libgomp reads the policy before main(), so set it and start again once.
  if (!std::getenv("OMP_WAIT_POLICY")) {
    ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    ::execv("/proc/self/exe", argv);  // on failure, carry on with the default policy
  }
  CLI::App app{"murmur: decentralized training of GPT-style language models over gossip"};
  // A flag given twice keeps the last value: --config files are spliced in
  // before the command line's own flags, which must win.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.require_subcommand(1);
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return std::string("murmur: error: ") + e.what() + " (see --help)\n";
  });
  app.set_version_flag("--version", "murmur 0.1.0");
  murmur::cli::add_data_command(app);
  murmur::cli::add_train_command(app);
  murmur::cli::add_eval_command(app);
  murmur::cli::add_netem_command(app);
  murmur::cli::add_netem_run(*app.get_subcommand("netem"));
  murmur::cli::add_netem_simulate(*app.get_subcommand("netem"));
  murmur::cli::add_netem_lab(*app.get_subcommand("netem"));
  murmur::cli::add_keygen_command(app);
  murmur::cli::add_node_command(app);
  murmur::cli::add_swarm_command(app);
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks printing machine-readable JSON");
  bench->require_subcommand(1);
  murmur::cli::add_bench_model(*bench);
  murmur::cli::add_bench_compress(*bench);
  murmur::cli::add_bench_netem(*bench);
  murmur::cli::add_bench_transport(*bench);
  try {
    std::vector<std::string> args = murmur::cli::expand_config_args(argc, argv);
    std::reverse(args.begin(), args.end());
    args.pop_back();  // CLI11 takes the arguments reversed, without the program name
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "murmur: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "murmur: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
