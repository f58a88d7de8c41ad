// Round drivers (gossip/round_driver.h) of P peers on an ideal network: every message waits on one
// in-memory wire, in send order, until deliver() hands it over (a hook may change or drop any of them
// on the way); each message counts its wire size (gossip/wire.h) against its sender. Each peer's model
// is a vector that its local steps change and that takes the driver's θ after every mix and adoption, as
// the peer process writes it into its model. Time is a plain counter the caller moves.
//
// The algorithm lab (netem/lab.h) and the tests run the round protocol on it: the same code as real
// peers, without sockets, clocks or membership. Threading: one thread.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gossip/byzantine.h"
#include "gossip/round_driver.h"
#include "model/rng.h"

namespace murmur::netem {

using Edge = std::pair<int, int>;  // first < second

// Peer i's id on the lockstep network (up to 65,535 peers).
gossip::PeerId lockstep_id(int i);
int lockstep_index(const gossip::PeerId& id);

// The peers' average model (summed in double), and the spread max_i ‖θ_i − θ̄‖ / ‖θ̄‖ around it.
std::vector<float> mean_of(const std::vector<std::vector<float>>& models);
double spread(const std::vector<std::vector<float>>& models);

// A random graph on p peers with degree at most `degree`: the union of `degree` random perfect
// matchings (one peer left out of each when p is odd); every pair when degree >= p - 1.
std::set<Edge> random_graph(int p, int degree, SplitMix64& rng);

class LockstepSwarm {
 public:
  struct Msg {
    int from = 0, to = 0;
    uint64_t epoch = 0, seq = 0;
    std::shared_ptr<const gossip::TrainMessage> msg;
  };

  // Peer i starts from start[i] (RoundDriver::start: a new run) with seed `seed + i`.
  LockstepSwarm(const std::vector<std::vector<float>>& start, const gossip::RoundConfig& cfg, uint64_t seed);

  int size() const { return static_cast<int>(peers.size()); }

  void collect(int i);  // carries out peer i's actions
  void deliver();       // hands over everything on the wire, and what the receivers send in turn
  void connect(int i, int j);
  void disconnect(int i, int j);               // a no-op for a pair without a link
  void set_graph(const std::set<Edge>& next);  // links and unlinks, then delivers
  void done(int i);                            // peer i's local steps are done: its model goes to the driver
  // Every peer's local steps (`local` changes its model; none by default), then every message delivered.
  // Returns false if a peer did not mix (its round still waits: a message was dropped or tampered with).
  bool round(const std::function<void(int, std::vector<float>&)>& local = {});
  // Moves the clock to the last deadline of the peers still waiting, so they mix without the deltas
  // that never came (dropped or refused), then delivers what follows.
  void expire();

  std::vector<float> average() const { return mean_of(model); }
  double distance() const { return spread(model); }
  // Messages a receiver dropped as malformed, norm outliers, after gaps or while unsynced.
  uint64_t rejected() const;

  std::vector<gossip::RoundDriver> peers;
  std::vector<std::vector<float>> model;
  std::vector<uint64_t> bytes_sent;  // per peer, on the wire
  std::deque<Msg> wire;
  std::set<Edge> edges;
  std::map<Edge, uint64_t> epochs;  // the current epoch of each edge
  gossip::Millis now = 0;
  std::vector<std::pair<int, gossip::Mixed>> mixes;  // by peer, in order
  std::vector<std::pair<int, gossip::Adopted>> adoptions;
  std::vector<std::string> rejections;
  std::vector<std::pair<int, gossip::Distrusted>> cuts;  // links cut for strikes, by the peer that cut
  std::function<bool(Msg&)> on_wire;                     // sees each message before delivery; false drops it
  // Byzantine peers: what their drivers send goes through their Adversary first (and is counted as sent).
  std::map<int, gossip::Adversary> adversaries;

 private:
  uint64_t next_epoch_ = 0;
};

}  // namespace murmur::netem
