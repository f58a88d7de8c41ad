// The hand-over between a peer's two threads: the network thread (transport +
// membership, never blocks on training) and the training thread (model, the
// algorithm's state). Each side only pushes to and pops from this object.
//
// Threading: every method is safe to call from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "gossip/messages.h"

namespace murmur::peer {

// A neighbour link came up (both sides agreed) or went down.
struct LinkEvent {
  bool up = false;
  gossip::PeerInfo peer;
  uint64_t epoch = 0;
  uint32_t their_degree = 0;
};
// A reassembled training message (the bytes of a gossip::Payload).
struct InPayload {
  gossip::PeerId from{};
  uint64_t epoch = 0;
  uint64_t seq = 0;
  std::vector<uint8_t> bytes;
};
using TrainEvent = std::variant<LinkEvent, InPayload>;

struct OutPayload {
  gossip::PeerInfo to;
  uint64_t epoch = 0;
  uint64_t seq = 0;
  std::vector<uint8_t> bytes;
};

// What the network side knows, as last published (for logs and the ring).
struct NetView {
  gossip::PeerInfo self;
  std::vector<gossip::PeerInfo> members;  // live, without self, ordered by id
  size_t neighbours = 0;
  uint64_t bytes_sent = 0, bytes_received = 0, messages_rejected = 0;
  double uplink_bytes_per_s = 0;  // measured on payload sends; 0 until known
  size_t reassembly_bytes = 0;    // reserved for partial payloads
};

class PeerMailbox {
 public:
  void push_event(TrainEvent e) {
    {
      std::lock_guard lock(mu_);
      events_.push_back(std::move(e));
    }
    cv_.notify_all();
  }
  // The next event, waiting until `deadline` at most.
  std::optional<TrainEvent> pop_event(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mu_);
    cv_.wait_until(lock, deadline, [&] { return !events_.empty() || stopping_; });
    if (events_.empty()) return std::nullopt;
    TrainEvent e = std::move(events_.front());
    events_.pop_front();
    return e;
  }
  void push_send(OutPayload p) {
    std::lock_guard lock(mu_);
    out_bytes_ += p.bytes.size();
    sends_.push_back(std::move(p));
  }
  std::deque<OutPayload> take_sends() {
    std::lock_guard lock(mu_);
    out_bytes_ = 0;
    return std::exchange(sends_, {});
  }
  // The training side cut a neighbour for misbehaving: membership closes the link and keeps it off.
  void push_distrust(const gossip::PeerId& peer) {
    std::lock_guard lock(mu_);
    distrusted_.push_back(peer);
  }
  std::vector<gossip::PeerId> take_distrusted() {
    std::lock_guard lock(mu_);
    return std::exchange(distrusted_, {});
  }
  size_t queued_send_bytes() const {
    std::lock_guard lock(mu_);
    return out_bytes_;
  }
  void publish(NetView v) {
    {
      std::lock_guard lock(mu_);
      view_ = std::move(v);
    }
    cv_.notify_all();
  }
  NetView view() const {
    std::lock_guard lock(mu_);
    return view_;
  }
  // Training asks the network thread to wind down (Bye, close links).
  void stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
  }
  bool stopping() const {
    std::lock_guard lock(mu_);
    return stopping_;
  }
  // The network side cannot go on (no peer admitted this one): training stops with this error.
  void fail(std::string why) {
    {
      std::lock_guard lock(mu_);
      failure_ = std::move(why);
    }
    cv_.notify_all();
  }
  std::optional<std::string> failure() const {
    std::lock_guard lock(mu_);
    return failure_;
  }
  // Waits until `pred(view)` holds, the deadline passes or the network side fails; returns whether it holds.
  template <class Pred>
  bool wait_view(Pred pred, std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mu_);
    return cv_.wait_until(lock, deadline, [&] { return stopping_ || failure_ || pred(view_); }) &&
           !stopping_ && !failure_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<TrainEvent> events_;
  std::deque<OutPayload> sends_;
  std::vector<gossip::PeerId> distrusted_;
  size_t out_bytes_ = 0;
  NetView view_;
  bool stopping_ = false;
  std::optional<std::string> failure_;
};

}  // namespace murmur::peer
