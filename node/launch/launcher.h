// What the launchers (`murmur swarm`, `murmur netem run`) share: the identities of a run's peers and
// each peer's `murmur node` command line.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace murmur::launch {

struct LaunchedPeer {
  std::string name;
  std::filesystem::path dir;  // OUT/peer-NAME: keys/, node.log, the peer's run directory
  std::string pubkey;         // Z85
};

// A key pair per peer, made in this process once and kept across runs into the same OUT (restarts and
// re-runs keep their identities), and OUT/allow.txt naming every public key. Throws std::runtime_error.
std::vector<LaunchedPeer> provision_peers(const std::filesystem::path& out,
                                          const std::vector<std::string>& names);

// KEY@HOST:PORT, the form --join takes.
std::string join_address(const LaunchedPeer& p, const std::string& host, int port);

struct NodeCommand {
  std::filesystem::path exe, config, allow;  // the murmur binary, the run's TOML and allow-list
  const LaunchedPeer* peer = nullptr;
  std::string listen;  // tcp://HOST:PORT
  uint32_t peer_index = 0;
  std::string algo;                // empty: the config's
  int expect_peers = 0;            // the ring of allreduce/diloco; 0 = none
  std::vector<std::string> join;   // join_address() of peers already running
  std::vector<std::string> flags;  // the launcher's own per-peer flags
  std::vector<std::string> extra;  // the user's flags for every peer, last so that they win
};
std::vector<std::string> node_argv(const NodeCommand& c);

}  // namespace murmur::launch
