#include <gtest/gtest.h>

#include <deque>
#include <memory>
#include <vector>

#include "gossip/ring_allreduce.h"
#include "model/rng.h"

using murmur::gossip::RingAllReduce;

namespace {

// Runs one all-reduce among `p` members over in-memory FIFO links, delivering
// in an order scrambled by `seed` (per-link order is kept, as ZeroMQ does).
std::vector<std::vector<float>> run_ring(std::vector<std::vector<float>> bufs, uint64_t seed,
                                         const char* codec = "fp32") {
  const int p = static_cast<int>(bufs.size());
  std::vector<std::unique_ptr<RingAllReduce>> ring;
  std::vector<std::deque<RingAllReduce::Send>> inbox(p);  // messages in flight to each rank
  for (int r = 0; r < p; ++r) {
    ring.push_back(std::make_unique<RingAllReduce>(r, p, bufs[r], codec));
  }
  for (int r = 0; r < p; ++r)
    for (auto& s : ring[r]->start()) inbox[s.to_rank].push_back(std::move(s));
  murmur::SplitMix64 rng(seed);
  for (int guard = 0; guard < 100000; ++guard) {
    std::vector<int> ready;
    for (int r = 0; r < p; ++r)
      if (!inbox[r].empty()) ready.push_back(r);
    if (ready.empty()) break;
    const int r = ready[rng.below(ready.size())];
    RingAllReduce::Send msg = std::move(inbox[r].front());
    inbox[r].pop_front();
    for (auto& s : ring[r]->on_segment(msg.step, msg.payload)) inbox[s.to_rank].push_back(std::move(s));
  }
  for (int r = 0; r < p; ++r) EXPECT_TRUE(ring[r]->done()) << "rank " << r;
  return bufs;
}

}  // namespace

TEST(RingAllReduce, EveryMemberEndsWithTheSum) {
  for (int p : {1, 2, 3, 5, 8}) {
    for (size_t n : {size_t{1}, size_t{7}, size_t{1000}}) {
      std::vector<std::vector<float>> bufs(p, std::vector<float>(n));
      std::vector<double> sum(n, 0.0);
      murmur::SplitMix64 rng(p * 1000 + n);
      for (auto& b : bufs)
        for (size_t i = 0; i < n; ++i) {
          b[i] = static_cast<float>(rng.normal());
          sum[i] += b[i];
        }
      const auto out = run_ring(bufs, 42 + p);
      for (int r = 0; r < p; ++r)
        for (size_t i = 0; i < n; ++i) ASSERT_NEAR(out[r][i], sum[i], 1e-5) << "p=" << p << " n=" << n;
      // Every member holds bit-identical results (the all-gather copies, it does not re-add).
      for (int r = 1; r < p; ++r) EXPECT_EQ(out[r], out[0]);
    }
  }
}

TEST(RingAllReduce, FewerElementsThanMembersStillWorks) {
  const auto out = run_ring({{1.f, 2.f}, {3.f, 4.f}, {5.f, 6.f}, {7.f, 8.f}}, 7);
  for (const auto& b : out) EXPECT_EQ(b, (std::vector<float>{16.f, 20.f}));
}

TEST(RingAllReduce, RejectsOutOfOrderAndMalformedSegments) {
  std::vector<float> a(10, 1.0f), b(10, 2.0f);
  RingAllReduce r0(0, 2, a), r1(1, 2, b);
  auto s0 = r0.start();
  ASSERT_EQ(s0.size(), 1u);
  EXPECT_THROW(r1.on_segment(1, s0[0].payload), std::runtime_error);  // step 1 before step 0
  std::vector<uint8_t> junk(s0[0].payload.begin(), s0[0].payload.begin() + 5);
  EXPECT_ANY_THROW(r1.on_segment(0, junk));
  EXPECT_EQ(b, std::vector<float>(10, 2.0f));  // untouched by the bad input
  EXPECT_NO_THROW(r1.on_segment(0, s0[0].payload));
  EXPECT_THROW(RingAllReduce(2, 2, a), std::invalid_argument);
}
