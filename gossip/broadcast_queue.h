// SWIM's transmit-limited queue of membership updates to piggyback: at most one update per peer (a
// newer one replaces it and starts over), handed out least-sent first and oldest first among equals,
// each dropped after a given number of sends.
//
// Layout, for the simulator's thousands of peers: the updates live in a flat table keyed by peer id,
// and each bucket (one per send count) is a deque of (slot, ticket) references. Replacing an update only
// issues a new ticket; the old reference goes stale and is skipped when it reaches the front. So taking
// updates reads a few contiguous references and prefetches their slots together, where a linked list
// would chase one pointer after another. Stale references are compacted away once they outnumber the
// live ones, which bounds the memory to a constant times the number of queued updates.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "gossip/id_table.h"
#include "gossip/messages.h"

namespace murmur::gossip {

class BroadcastQueue {
 public:
  explicit BroadcastQueue(uint64_t seed) : updates_(seed) {}

  // Queues u as never sent, replacing what was queued about the same peer.
  void push(const MemberUpdate& u);
  // Appends to `out` up to `room` queued updates, skipping the one about `to` (the receiver knows best
  // about itself); each counts as sent once more and leaves the queue at its `limit`-th send.
  void take(const PeerId& to, size_t room, int limit, std::vector<MemberUpdate>& out);
  size_t size() const { return updates_.size(); }
  size_t references() const { return refs_; }  // queued references, stale ones included

 private:
  struct Update {
    MemberUpdate update;
    int sent = 0;
    uint64_t ticket = 0;  // of its one live reference, in buckets_[sent]
  };
  struct Ref {
    uint32_t slot = 0;
    uint64_t ticket = 0;
  };

  void enqueue(uint32_t slot);
  bool live(const Ref& r) const {
    return updates_.slots()[r.slot].used && updates_.at(r.slot).ticket == r.ticket;
  }
  void compact();

  IdTable<Update> updates_;
  std::vector<std::deque<Ref>> buckets_;  // by times sent, each oldest first
  uint64_t next_ticket_ = 1;
  size_t refs_ = 0;              // in all buckets, stale ones included
  std::vector<uint32_t> taken_;  // take()'s scratch
};

}  // namespace murmur::gossip
