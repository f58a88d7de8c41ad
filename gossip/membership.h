// Swarm membership as a sans-IO state machine: joining, peer sampling (Cyclon-style
// shuffles), failure detection (SWIM: probes, indirect probes, suspicion,
// incarnations, piggybacked updates) and symmetric neighbour links re-sampled at
// random over time. It does no I/O and reads no clock: the driver passes every
// message and the current time in, and carries out the actions it takes out.
// The protocol, message by message, is in docs/membership.md.
//
// Threading: none. One owner thread calls every method.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "gossip/broadcast_queue.h"
#include "gossip/id_table.h"
#include "gossip/messages.h"
#include "model/rng.h"

namespace murmur::gossip {

using Millis = int64_t;  // the driver's monotonic clock; only differences matter

struct MembershipConfig {
  // This peer's run. A Hello of another run is refused (Refusal), and Shuffle, Ping, Ack and LinkRequest
  // of another run are dropped, so no peer of another run enters the member table or links.
  RunIdentity run;

  // Failure detection (SWIM). A crashed peer is suspected about one probe period
  // after someone probes it and declared dead suspicion_timeout later.
  Millis probe_interval = 500;  // one probe per period, round-robin over a shuffled member list
  Millis probe_timeout = 250;   // no Ack by then: ask indirect_probes others to probe (PingReq)
  int indirect_probes = 3;
  Millis suspicion_timeout = 2000;  // suspect -> dead unless refuted (incarnation bump) by then
  int max_piggyback = 8;            // updates per Ping/Ack, in [3, kMaxPeersPerMessage]
  int retransmit_mult = 3;          // each update is piggybacked mult * ceil(log2(n + 1)) times

  // Joining and peer sampling.
  Millis join_retry = 1000;        // Hello to every join address until a Welcome arrives
  Millis shuffle_interval = 2000;  // exchange random samples with a random member
  int shuffle_size = 8;
  int welcome_size = 32;          // sample sent to a newcomer
  size_t max_members = 1024;      // bound of the member table (live members and tombstones)
  Millis dead_retention = 60000;  // tombstones refuse stale news and are retried to heal partitions
  Millis rejoin_interval = 3000;  // Hello to a random dead peer's address (partition healing)
  size_t max_relays = 64;         // pending indirect probes run for others

  // Reachability (docs/membership.md, "Reachability"): can others dial this peer's address?
  //   assumed:  yes (a peer on a public host, the first seed, tests);
  //   check:    the address is only a candidate: this peer advertises none (outbound-only) until a peer
  //             it joins through dials it there (Hello.dial_back, answered with Reachable);
  //   outbound: never advertise one (behind NAT, by the user's word).
  // Outbound-only peers are reached only over the connections they opened: others do not open links to
  // them or probe them unless they have heard from them directly.
  enum class Reach : uint8_t { assumed, check, outbound };
  Reach reach = Reach::assumed;
  Millis dial_check_timeout = 5000;   // after a Welcome: no Reachable by then, this peer is outbound-only
  Millis dial_back_interval = 10000;  // the most often one joiner is dialled back (its Hellos repeat)
  // Relays (docs/relay.md): `relay`: this peer, if dialable, relays between two outbound-only peers that
  // ask. An outbound-only peer below target_degree with no dialable peer left to link asks a random
  // dialable member to relay a link to a random outbound-only one, at most once per relay_retry.
  bool relay = false;
  Millis relay_retry = 3000;

  // Neighbour links.
  int target_degree = 3;
  int max_degree = 6;
  Millis link_lifetime = 30000;        // mean; each link lives uniform [0.5, 1.5) of it
  Millis link_request_timeout = 1000;  // a LinkRequest unanswered by then is cancelled
};

// Throws std::invalid_argument naming the first bad field.
void validate(const MembershipConfig& cfg);

// -- actions ------------------------------------------------------------------
struct SendTo {  // to a known peer (its id authenticates the connection)
  PeerInfo to;
  Message msg;
};
struct SendToAddr {  // to a join address whose peer id is not known yet
  std::string addr;
  Message msg;
};
// `msg` on a connection of its own, dialled to `to.addr`, never over the peer's usual path: the dial-back
// of a joiner (a Reachable), which proves the address only if that connection is what carries it.
struct DialBack {
  PeerInfo to;
  Message msg;
};
// What this peer learned of its own reachability: `dialable` at `addr` (peer `by` dialled it there), or
// not (`addr` the candidate that nobody dialled within dial_check_timeout of a Welcome, or empty when
// outbound-only by configuration). `observed`: this peer's address as the welcomer saw it.
struct Reachability {
  bool dialable = false;
  std::string addr, observed;
  PeerId by{};
};
// A neighbour link both sides agreed on. `their_degree` is the peer's link count
// with this link included, as it announced in the handshake.
struct LinkUp {
  PeerInfo peer;
  uint64_t epoch = 0;
  uint32_t their_degree = 0;
};
struct LinkDown {
  PeerId peer{};
  uint64_t epoch = 0;
};
// A peer entered `state` (new members arrive as alive), for logs and metrics.
struct MemberEvent {
  PeerInfo peer;
  PeerState state = PeerState::alive;
};
// A peer of another run: we refused its Hello, or (`refused_us`) it refused ours or welcomed us with
// another identity. `differences` names every setting that differs, ours as "here" (run_differences).
struct OtherRun {
  PeerId peer{};
  std::string differences;
  bool refused_us = false;
};
// Joining failed: peers of another run refused this one and none admitted it, either every join
// address refused or kRefusalGrace passed after the first refusal without a Welcome. Emitted once; the
// driver should stop with an error naming `differences` (the first refusal's, as in OtherRun).
struct JoinRefused {
  PeerId by{};
  std::string differences;
};
// At a relay: open a session between `caller` and `callee` (both outbound-only) and send each its
// RelayOffer (the driver owns the relay service and its ports).
struct OpenRelay {
  PeerInfo caller, callee;
};
// Use a relay's port: the callee connects its ROUTER to `addr`; the caller dials `addr` as `peer` (over
// one connection: the relay pairs one per side).
struct UseRelay {
  PeerId peer{};
  std::string addr;
  bool callee = false;
};
using Action = std::variant<SendTo, SendToAddr, DialBack, LinkUp, LinkDown, MemberEvent, OtherRun,
                            JoinRefused, Reachability, OpenRelay, UseRelay>;

struct Neighbour {
  PeerInfo peer;
  uint64_t epoch = 0;
  uint32_t their_degree = 0;
};

struct MembershipCounters {
  uint64_t messages_in = 0, messages_ignored = 0, messages_out = 0;
  uint64_t probes = 0, indirect_probes = 0, suspicions = 0, deaths = 0, refutations = 0;
  uint64_t links_opened = 0, links_closed = 0, link_rejects = 0;
  uint64_t other_run = 0;   // Hellos refused and messages dropped for another run's identity or digest
  uint64_t dial_backs = 0;  // joiners dialled back
  uint64_t relays_asked = 0, relays_opened = 0;  // relayed links asked for (as caller), relayed (as relay)
};

class Membership {
 public:
  // `self.addr` is where this peer listens (empty: nowhere others can dial, with Reach::outbound);
  // cfg.reach says whether it is advertised at once, after a dial-back, or never.
  // `self.incarnation` must exceed any this peer used before, refutations included
  // (a restart passes a higher one, e.g. from the wall clock), so the swarm
  // re-admits it; it must not exceed kMaxIncarnation. `seed` drives every random
  // choice: equal inputs give equal outputs.
  Membership(PeerInfo self, MembershipConfig cfg, uint64_t seed);

  // Sends Hello to `addr` now and every join_retry until some Welcome arrives;
  // the addresses are kept (at most kMaxJoinAddrs) and retried whenever this
  // peer finds itself without live members.
  void join(const std::string& addr, Millis now);
  // `from` is the sender as authenticated by the transport; `observed`, the address its connection came
  // from as the transport saw it (answered in Welcome.observed), if known. Payload traffic may
  // be passed too: a Payload on a link epoch that is not up is answered with
  // LinkClose, so the other side drops a link this peer forgot (restart).
  void on_message(const PeerId& from, const Message& m, Millis now, const std::string& observed = {});
  // Runs the timers; call it at least every probe_interval / 5.
  void tick(Millis now);
  // The training layer cut `id` for misbehaving (RoundDriver's Distrusted): close our link to it and
  // never link with it again (it stays a member: probes and relays do not trust its data).
  void distrust(const PeerId& id);
  // Graceful exit: Bye to every live member, LinkClose to every neighbour. After
  // this the object ignores all input.
  void leave(Millis now);
  std::vector<Action> take_actions();

  const PeerInfo& self() const { return self_; }
  bool joined() const { return joined_; }
  // Live members (alive or suspect), without self, ordered by id.
  std::vector<PeerInfo> members() const;
  // nullopt for unknown peers (never heard of, or tombstone expired); self is alive.
  std::optional<PeerState> state_of(const PeerId& id) const;
  std::optional<PeerInfo> info_of(const PeerId& id) const;
  std::vector<Neighbour> links() const;
  size_t degree() const { return links_.size(); }
  const MembershipCounters& counters() const { return counters_; }

  static constexpr size_t kMaxJoinAddrs = 16;
  // Facts with a higher incarnation are dropped, and a peer stops refuting there. Far above
  // any wall-clock start (2^62 ms is 146 million years), far below what 64 bits hold.
  static constexpr uint64_t kMaxIncarnation = uint64_t{1} << 62;
  // After a first refusal, how many join_retry periods a joiner waits for a Welcome before it gives up
  // (JoinRefused): by then every join address had two more Hellos, and one of our run would have answered.
  static constexpr int kRefusalGrace = 2;

 private:
  struct Member {
    PeerInfo info;
    PeerState state = PeerState::left;  // set_state() moves it
    Millis since = 0;                   // when it entered `state`: suspicion deadline, tombstone age
    size_t listed_at = 0;               // index in alive_ or dead_, per its state
    // `info` came from the peer itself (a message it sent), not from a third party's hearsay.
    bool heard_directly = false;
    uint64_t vouched = 0;  // the highest incarnation it told us itself (or hearsay introduced it with)
    Millis asked = std::numeric_limits<Millis>::min();  // last Ping sent to check hearsay about it
  };
  using MemberTable = IdTable<Member>;
  struct Probe {
    PeerId target{};
    uint64_t seq = 0;
    Millis started = 0;
    bool indirect = false;
    bool acked = false;
  };
  struct Relay {  // an indirect probe run on behalf of `requester`
    uint64_t seq = 0, their_seq = 0;
    PeerId requester{}, target{};
    Millis deadline = 0;
  };
  struct Link {
    PeerInfo peer;
    uint64_t epoch = 0;
    uint32_t their_degree = 0;
    bool ours = false;  // we sent the LinkRequest
    Millis opened = 0, expires = 0;
  };
  struct PendingLink {
    uint64_t epoch = 0;
    Millis deadline = 0;
  };

  void handle(const PeerId& from, const Hello& m, Millis now, const std::string& observed);
  void handle(const PeerId& from, const Welcome& m, Millis now);
  void handle(const PeerId& from, const Shuffle& m, Millis now);
  void handle(const PeerId& from, const Ping& m, Millis now);
  void handle(const PeerId& from, const Ack& m, Millis now);
  void handle(const PeerId& from, const PingReq& m, Millis now);
  void handle(const PeerId& from, const LinkRequest& m, Millis now);
  void handle(const PeerId& from, const LinkAccept& m, Millis now);
  void handle(const PeerId& from, const LinkReject& m, Millis now);
  void handle(const PeerId& from, const LinkClose& m, Millis now);
  void handle(const PeerId& from, const Payload& m, Millis now);
  void handle(const PeerId& from, const Bye& m, Millis now);
  void handle(const PeerId& from, const StateRequest& m, Millis now);
  void handle(const PeerId& from, const StateChunk& m, Millis now);
  void handle(const PeerId& from, const Refusal& m, Millis now);
  void handle(const PeerId& from, const Reachable& m, Millis now);
  void handle(const PeerId& from, const RelayRequest& m, Millis now);
  void handle(const PeerId& from, const RelayOffer& m, Millis now);
  void handle(const PeerId& from, const RunQuery& m, Millis now);
  void handle(const PeerId& from, const RunInfo& m, Millis now);
  void ask_relay(Millis now);  // an outbound-only peer out of dialable candidates

  Hello hello() const;  // names the candidate address to dial back while none is advertised
  // At most once per dial_back_interval per joiner, and for at most max_members joiners at a time.
  bool may_dial_back(const PeerId& id, Millis now);
  void run_reachability(Millis now);
  // Others can dial it (it advertises an address), it opened a connection to us that reaches it, or a
  // link joins us to it (through a relay, perhaps): we can probe it, so we notice when that path dies.
  bool reachable(const Member& m) const {
    return !m.info.addr.empty() || m.heard_directly || links_.count(m.info.id) || relayed_.count(m.info.id);
  }

  // Drops a message whose run digest is not ours (counted); true if it did.
  bool other_run(uint64_t digest);
  // `from`, of run `theirs`, refused us (or welcomed us with it): reported, and joining gives up once
  // every join address refused or the grace after the first refusal ran out.
  void refused_by(const PeerId& from, const RunIdentity& theirs, Millis now);
  void check_join_refused(Millis now);

  // Who vouches for a fact: our own detector, the peer the fact is about (the
  // authenticated sender of the message), or a third party (hearsay).
  enum class Origin { local, own, hearsay };
  static Origin origin_of(const PeerId& from, const PeerId& about) {
    return from == about ? Origin::own : Origin::hearsay;
  }
  // Applies a membership fact by the rules of docs/membership.md ("Who may say
  // what"): SWIM order (higher incarnation wins, then alive < suspect < dead <
  // left), except that a peer's own word replaces hearsay about it, and hearsay
  // never changes a known peer's address or declares it dead, and raises its
  // incarnation at most one above what the peer itself said; beyond that it
  // starts our own suspicion or makes us ask the peer. `spread` queues the fact
  // we end up holding for piggybacking. Facts about self are refuted.
  void apply(const MemberUpdate& u, Millis now, bool spread, Origin origin);
  void merge_sample(const PeerId& from, const std::vector<PeerInfo>& sample, Millis now);
  void apply_all(const PeerId& from, const std::vector<MemberUpdate>& updates,
                 Millis now);  // piggybacked: spread too
  void refute(uint64_t incarnation);
  // Pings m (seq 0, our view of it piggybacked) so that its Ack, its own word, settles what hearsay
  // claimed; at most once per probe_timeout per member.
  void ask(Member& m, Millis now);
  std::vector<MemberUpdate> piggyback(const PeerId& to);
  void tell_if_gone(const PeerId& id);  // a peer we hold dead contacted us: tell it so it refutes

  void run_join(Millis now);
  void run_probe(Millis now);
  void run_suspicions(Millis now);
  void run_links(Millis now);
  void run_sampling(Millis now);

  void open_link(const PeerInfo& peer, uint64_t epoch, uint32_t their_degree, bool ours, Millis now);
  void close_link(const PeerId& id, bool notify);
  void update_first_expiry();  // after any change to links_
  uint32_t degree_with(size_t extra) const { return static_cast<uint32_t>(links_.size() + extra); }

  void send(const PeerInfo& to, Message m);
  void ignore() { ++counters_.messages_ignored; }
  const Member* live(const PeerId& id) const;
  std::vector<PeerInfo> sample(size_t k, const PeerId* exclude);
  // Every state change goes through here: it keeps the counts and the alive_/dead_ lists that let
  // the timers and sampling run in time independent of the swarm's size (the simulator runs 10,000
  // peers). forget() is the one way out of members_.
  void set_state(uint32_t slot, PeerState state, Millis now);
  void forget(const PeerId& id);
  std::vector<uint32_t>* list_of(PeerState s);
  // Overlaps the cache misses of the n lookups apply() is about to make, of ids id_of(0 .. n-1).
  template <class IdOf>
  void prefetch_members(size_t n, IdOf id_of) const;
  Millis expiry(const Member& m) const;  // when run_suspicions acts on m (suspect, dead, left)
  Millis jittered(Millis mean);

  PeerInfo self_;
  MembershipConfig cfg_;
  uint64_t run_digest_;  // of cfg_.run
  SplitMix64 rng_;
  MemberTable members_;
  std::vector<uint32_t> alive_, dead_;  // slots of members in those states, in no order
  size_t live_count_ = 0;               // alive or suspect
  // (when, id): a suspicion or tombstone that ends then, unless the member changed state since.
  std::priority_queue<std::pair<Millis, PeerId>, std::vector<std::pair<Millis, PeerId>>, std::greater<>>
      expiries_;
  BroadcastQueue broadcasts_;
  std::vector<std::string> join_addrs_;
  bool joined_ = false;
  // Refusals before any Welcome: who refused (at most kMaxJoinAddrs), when first, and the first reason.
  std::set<PeerId, IdLess> refusers_;
  Millis first_refusal_ = 0;
  JoinRefused refusal_;
  bool join_failed_ = false;  // JoinRefused was emitted: no more Hellos to the join addresses
  bool leaving_ = false;
  std::string candidate_;  // the address to be dialled back (Reach::check), until it is advertised
  std::string observed_;   // this peer's address as the last welcomer saw it
  Millis reach_deadline_ = std::numeric_limits<Millis>::max();  // report "not dialable" then
  std::map<PeerId, Millis, IdLess> dialed_;                     // joiners dialled back, and when
  // Outbound-only peers reached through a relay: the relay port to dial them at (see send()).
  std::map<PeerId, std::string, IdLess> relayed_;
  std::map<PeerId, Millis, IdLess> relay_asked_;  // relayed links asked for, and when (at most max_members)
  Millis next_relay_ = 0;
  Millis next_join_ = 0, next_probe_ = 0, next_shuffle_ = 0, next_rejoin_ = 0;
  std::vector<PeerId> probe_order_;
  size_t probe_pos_ = 0;
  uint64_t next_seq_ = 1;  // 0 marks Pings whose Ack nobody waits for
  std::optional<Probe> probe_;
  std::vector<Relay> relays_;
  std::map<PeerId, Link, IdLess> links_;
  Millis first_expiry_ = std::numeric_limits<Millis>::max();  // of links_: run_links scans them only then
  std::map<PeerId, PendingLink, IdLess> pending_links_;
  std::set<PeerId, IdLess> distrusted_;  // never linked again (distrust)
  std::vector<Action> actions_;
  MembershipCounters counters_;
};

}  // namespace murmur::gossip
