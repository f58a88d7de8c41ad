#include "gossip/broadcast_queue.h"

#include <algorithm>
#include <optional>

namespace murmur::gossip {

void BroadcastQueue::push(const MemberUpdate& u) {
  const uint32_t slot = updates_.insert(u.peer.id).first;
  updates_.at(slot).update = u;
  updates_.at(slot).sent = 0;
  enqueue(slot);
}

void BroadcastQueue::take(const PeerId& to, size_t room, int limit, std::vector<MemberUpdate>& out) {
  taken_.clear();
  for (std::deque<Ref>& bucket : buckets_) {
    if (taken_.size() == room) break;
    // The slots these references point at are scattered over the table: load them together.
    const size_t ahead = std::min(bucket.size(), room - taken_.size() + 1);
    for (size_t i = 0; i < ahead; ++i) updates_.prefetch_slot(bucket[i].slot);
    std::optional<Ref> skipped;  // the receiver's own: it stays first in line
    while (!bucket.empty() && taken_.size() < room) {
      const Ref r = bucket.front();
      bucket.pop_front();
      --refs_;
      if (!live(r)) continue;
      if (same_id(updates_.key_at(r.slot), to))
        skipped = r;
      else
        taken_.push_back(r.slot);
    }
    if (skipped) {
      bucket.push_front(*skipped);
      ++refs_;
    }
  }
  for (uint32_t slot : taken_) {
    Update& u = updates_.at(slot);
    out.push_back(u.update);
    if (++u.sent >= limit)
      updates_.erase(PeerId(updates_.key_at(slot)));  // a copy: erase clears the slot
    else
      enqueue(slot);
  }
}

void BroadcastQueue::enqueue(uint32_t slot) {
  Update& u = updates_.at(slot);
  u.ticket = next_ticket_++;
  if (buckets_.size() <= size_t(u.sent)) buckets_.resize(size_t(u.sent) + 1);
  buckets_[size_t(u.sent)].push_back({slot, u.ticket});
  if (++refs_ > 2 * updates_.size() + 64) compact();
}

void BroadcastQueue::compact() {
  refs_ = 0;
  for (std::deque<Ref>& bucket : buckets_) {
    std::erase_if(bucket, [&](const Ref& r) { return !live(r); });
    refs_ += bucket.size();
  }
}

}  // namespace murmur::gossip
