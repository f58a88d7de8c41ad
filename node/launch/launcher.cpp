#include "node/launch/launcher.h"

#include <stdexcept>

#include "model/atomic_file.h"
#include "node/net/keys.h"

namespace murmur::launch {

namespace fs = std::filesystem;

std::vector<LaunchedPeer> provision_peers(const fs::path& out, const std::vector<std::string>& names) {
  std::vector<LaunchedPeer> peers;
  std::string allow;
  for (const std::string& name : names) {
    LaunchedPeer p{name, out / ("peer-" + name), {}};
    const fs::path keys = p.dir / "keys";
    if (!fs::exists(keys / "peer.pub")) net::write_keys(keys, net::generate_keys());
    p.pubkey = net::load_keys(keys).public_z85;
    allow += p.pubkey + "   # " + name + "\n";
    peers.push_back(std::move(p));
  }
  write_text_atomic(out / "allow.txt", allow);
  return peers;
}

std::string join_address(const LaunchedPeer& p, const std::string& host, int port) {
  return p.pubkey + "@" + host + ":" + std::to_string(port);
}

std::vector<std::string> node_argv(const NodeCommand& c) {
  if (c.peer == nullptr) throw std::invalid_argument("node_argv: no peer");
  std::vector<std::string> argv = {c.exe,          "node",
                                   "--config",     c.config,
                                   "--keys",       c.peer->dir / "keys",
                                   "--listen",     c.listen,
                                   "--allow",      c.allow,
                                   "--out",        c.peer->dir,
                                   "--peer-index", std::to_string(c.peer_index)};
  if (!c.algo.empty()) argv.insert(argv.end(), {"--algo", c.algo});
  if (c.expect_peers > 0) argv.insert(argv.end(), {"--expect-peers", std::to_string(c.expect_peers)});
  for (const std::string& j : c.join) argv.insert(argv.end(), {"--join", j});
  argv.insert(argv.end(), c.flags.begin(), c.flags.end());
  argv.insert(argv.end(), c.extra.begin(), c.extra.end());
  return argv;
}

}  // namespace murmur::launch
