// murmur keygen: a CurveZMQ key pair for a peer (its identity).
#include <cstdio>
#include <memory>

#include "node/cli/commands.h"
#include "node/net/keys.h"

namespace murmur::cli {

void add_keygen_command(CLI::App& app) {
  auto out = std::make_shared<std::string>();
  CLI::App* sub = app.add_subcommand(
      "keygen",
      "Create a peer's CurveZMQ key pair: DIR/peer.key (secret, mode 0600) and DIR/peer.pub (its identity, "
      "to "
      "put on other peers' allow-lists and in join addresses KEY@HOST:PORT). Never overwrites a key");
  sub->add_option("--out", *out, "Directory for peer.key and peer.pub (created if missing)")->required();
  sub->callback([out] {
    const net::Keys k = net::generate_keys();
    net::write_keys(*out, k);
    std::printf("%s\n", k.public_z85.c_str());
  });
}

}  // namespace murmur::cli
