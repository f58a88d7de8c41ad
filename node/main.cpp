// murmur: one binary, subcommands for every job (see --help).
#include <cstdio>
#include <exception>
#include <new>

#include "node/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"murmur: decentralized training of GPT-style language models over gossip"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "murmur 0.1.0");
  murmur::cli::add_data_command(app);
  murmur::cli::add_train_command(app);
  murmur::cli::add_eval_command(app);
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks printing machine-readable JSON");
  bench->require_subcommand(1);
  murmur::cli::add_bench_model(*bench);
  murmur::cli::add_bench_compress(*bench);
  try {
    app.parse(argc, argv);
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
