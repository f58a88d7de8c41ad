// A user-space WAN link emulator: a TCP relay that listens on a port per link and, for each accepted
// connection, dials the link's target and forwards both directions, each through its own Shaper
// (netem/shaper.h). All links run on one io_context thread owned by the Relay.
//
// Threading contract: every public method may be called from any thread except the relay's own (it
// posts to the io_context and waits for the answer; from a handler it would deadlock, so it throws).
// The connections of one link share its two shapers, as flows share a real link. A shared link
// (add_shared) is one more shaper that the directions of several links cross, e.g. a site's uplink that
// all its peers' traffic to other sites shares.
//
// A TCP relay cannot drop packets: TCP turns loss into delay. Partitions and stalls are the faults it can
// emulate (docs/stack.md).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "netem/shaper.h"
#include "netem/units.h"

namespace murmur::netem {

// `up` shapes the bytes the dialer sends (client -> target), `down` the reply direction.
struct LinkShape {
  LinkProfile up, down;
};

enum class Direction { up, down };

enum class PartitionMode {
  blackhole,  // connections stay open; nothing is forwarded until heal (bytes wait, TCP back-pressure)
  drop,       // connections stay open; bytes read during the partition are discarded
  reset,      // every connection is closed and new ones are refused until heal
};

using SharedId = uint32_t;

struct LinkConfig {
  HostPort listen;  // port 0: any free port (see Relay::port)
  HostPort target;
  LinkShape shape;
  uint64_t seed = 1;  // jitter stream
  // Shared links each direction crosses before its own shape (e.g. the sender's site uplink, then the
  // receiver's site downlink).
  std::vector<SharedId> up_via = {}, down_via = {};
};

struct DirectionStats {
  uint64_t bytes = 0;   // forwarded so far
  uint64_t queued = 0;  // read but not yet released
  double rate_bps = 0;  // over the last completed ~1 s window
};

struct LinkStats {
  DirectionStats up, down;
  uint64_t accepted = 0;     // connections accepted so far
  uint64_t connections = 0;  // open now
  bool partitioned = false;
};

using LinkId = uint32_t;

class Relay {
 public:
  Relay();   // starts the io thread
  ~Relay();  // closes every link and joins the thread
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  // Binds the listening socket now (throws with the address on failure) and starts accepting.
  LinkId add_link(const LinkConfig& config);
  void remove_link(LinkId id);
  uint16_t port(LinkId id);  // the bound port

  // Runtime control; each change applies from now on to bytes not yet shaped.
  void set_profile(LinkId id, Direction dir, const LinkProfile& profile);
  void set_trace(LinkId id, Direction dir, std::vector<TracePoint> trace);  // times since the link's start
  void add_stall(LinkId id, Direction dir, Window window);                  // times since the link's start
  void partition(LinkId id, PartitionMode mode = PartitionMode::blackhole);
  void heal(LinkId id);
  LinkStats stats(LinkId id);

  // A link that link directions cross (LinkConfig::up_via, down_via) and share: a token bucket and a
  // delay (no jitter, stalls or traces). A chunk books its slot on each shared link when the relay reads
  // it, in read order; the connections crossing a full one wait their turn in arrival order, one chunk
  // each, so flows share it round-robin. Lives as long as the relay.
  SharedId add_shared(const LinkProfile& profile);
  void set_shared_profile(SharedId id, const LinkProfile& profile);
  DirectionStats shared_stats(SharedId id);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
};

}  // namespace murmur::netem
