// gossip/broadcast_queue.h: the order updates are handed out in, replacement, the send limit, and the
// receiver's own update held back, checked against a plain reference model of the same rules.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "gossip/broadcast_queue.h"

using namespace murmur;
using namespace murmur::gossip;

namespace {

PeerId pid(uint32_t n) {
  PeerId id{};
  id[0] = static_cast<uint8_t>(n);
  id[1] = static_cast<uint8_t>(n >> 8);
  id[31] = 1;
  return id;
}
MemberUpdate upd(uint32_t n, uint64_t incarnation) {
  return {PeerInfo{pid(n), "tcp://10.0.0.1:" + std::to_string(n), incarnation}, PeerState::suspect};
}

// The rules, written the slow way: (sent, when queued) order, one update per peer.
struct Reference {
  struct Entry {
    MemberUpdate u;
    int sent = 0;
    uint64_t order = 0;
  };
  std::map<PeerId, Entry> q;
  uint64_t clock = 0;
  void push(const MemberUpdate& u) { q[u.peer.id] = {u, 0, clock++}; }
  std::vector<MemberUpdate> take(const PeerId& to, size_t room, int limit) {
    std::vector<std::pair<std::pair<int, uint64_t>, PeerId>> order;
    for (const auto& [id, e] : q)
      if (id != to) order.push_back({{e.sent, e.order}, id});
    std::sort(order.begin(), order.end());
    std::vector<MemberUpdate> out;
    for (size_t i = 0; i < std::min(room, order.size()); ++i) {
      Entry& e = q[order[i].second];
      out.push_back(e.u);
      e.order = clock++;  // re-queued at the back of its new bucket
      if (++e.sent >= limit) q.erase(order[i].second);
    }
    return out;
  }
};

}  // namespace

TEST(BroadcastQueue, HandsOutLeastSentOldestFirstLikeTheReference) {
  BroadcastQueue bq(3);
  Reference ref;
  SplitMix64 r(11);
  for (int step = 0; step < 20000; ++step) {
    if (r.below(3) == 0) {
      const MemberUpdate u = upd(static_cast<uint32_t>(r.below(200)), r.below(1000));
      bq.push(u);
      ref.push(u);
    } else {
      const PeerId to = pid(static_cast<uint32_t>(r.below(220)));
      const size_t room = 1 + r.below(8);
      const int limit = 1 + static_cast<int>(r.below(12));
      std::vector<MemberUpdate> got;
      bq.take(to, room, limit, got);
      const std::vector<MemberUpdate> want = ref.take(to, room, limit);
      ASSERT_EQ(got.size(), want.size()) << "step " << step;
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_EQ(got[i].peer.id, want[i].peer.id) << "step " << step << " item " << i;
        ASSERT_EQ(got[i].peer.incarnation, want[i].peer.incarnation);
        ASSERT_EQ(got[i].peer.addr, want[i].peer.addr);
      }
    }
    ASSERT_EQ(bq.size(), ref.q.size());
  }
}

TEST(BroadcastQueue, ReplacingAnUpdateRestartsItsSends) {
  BroadcastQueue bq(1);
  bq.push(upd(1, 1));
  std::vector<MemberUpdate> out;
  bq.take(pid(9), 8, 3, out);
  bq.take(pid(9), 8, 3, out);
  bq.push(upd(1, 2));  // newer news about peer 1: three more sends
  for (int i = 0; i < 5; ++i) bq.take(pid(9), 8, 3, out);
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(out[1].peer.incarnation, 1u);
  EXPECT_EQ(out[2].peer.incarnation, 2u);
  EXPECT_EQ(out[4].peer.incarnation, 2u);
  EXPECT_EQ(bq.size(), 0u);
}

TEST(BroadcastQueue, TheReceiversOwnUpdateWaitsForAnotherReceiver) {
  BroadcastQueue bq(1);
  bq.push(upd(1, 1));
  bq.push(upd(2, 1));
  std::vector<MemberUpdate> out;
  bq.take(pid(1), 1, 5, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].peer.id, pid(2));
  out.clear();
  bq.take(pid(2), 1, 5, out);  // peer 1's update, never sent, comes first
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].peer.id, pid(1));
}

TEST(BroadcastQueue, ManyReplacementsKeepMemoryBounded) {
  BroadcastQueue bq(1);
  for (uint64_t k = 0; k < 100000; ++k) {
    bq.push(upd(static_cast<uint32_t>(k % 10), k));
    ASSERT_LE(bq.references(), 2 * bq.size() + 64) << k;  // stale references are compacted away
  }
  EXPECT_EQ(bq.size(), 10u);
  std::vector<MemberUpdate> out;
  bq.take(pid(99), 100, 1, out);
  ASSERT_EQ(out.size(), 10u);  // the stale references were compacted or skipped: ten live updates
  EXPECT_EQ(out[0].peer.incarnation, 99990u);
  EXPECT_EQ(bq.size(), 0u);
}
