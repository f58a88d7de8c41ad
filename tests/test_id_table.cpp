// gossip/id_table.h: the flat hash table against std::map under random inserts and erases (which
// exercise the backward-shift deletion across wrapped probe runs), stable slots, and the id compares.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "gossip/id_table.h"

using namespace murmur;
using namespace murmur::gossip;

namespace {

PeerId id_of(uint64_t n, bool shared_prefix) {
  PeerId id{};
  SplitMix64 r(n);
  for (auto& b : id) b = static_cast<uint8_t>(r.next());
  if (shared_prefix) std::fill(id.begin(), id.begin() + 24, uint8_t{7});  // ids that differ only at the end
  return id;
}

void check_same(const IdTable<int>& t, const std::map<PeerId, int>& ref, uint64_t universe, bool shared) {
  ASSERT_EQ(t.size(), ref.size());
  for (uint64_t n = 0; n < universe; ++n) {
    const PeerId id = id_of(n, shared);
    const auto it = ref.find(id);
    const int* v = t.get(id);
    if (it == ref.end()) {
      EXPECT_EQ(v, nullptr) << n;
    } else {
      ASSERT_NE(v, nullptr) << n;
      EXPECT_EQ(*v, it->second) << n;
    }
  }
  size_t used = 0;
  for (const auto& s : t.slots()) used += s.used;
  EXPECT_EQ(used, ref.size());
}

}  // namespace

TEST(IdTable, MatchesStdMapUnderRandomInsertsAndErases) {
  for (const bool shared : {false, true}) {
    IdTable<int> t(42);
    std::map<PeerId, int> ref;
    SplitMix64 r(shared ? 2 : 1);
    const uint64_t universe = 600;  // small: many erases hit present keys, runs wrap and shift
    for (int step = 0; step < 20000; ++step) {
      const uint64_t n = r.below(universe);
      const PeerId id = id_of(n, shared);
      if (r.below(3) == 0) {
        t.erase(id);
        ref.erase(id);
      } else {
        const auto [slot, added] = t.insert(id);
        EXPECT_EQ(added, ref.count(id) == 0);
        t.at(slot) = step;
        ref[id] = step;
        EXPECT_TRUE(same_id(t.key_at(slot), id));
      }
      if (step % 2500 == 0) check_same(t, ref, universe, shared);
    }
    check_same(t, ref, universe, shared);
    for (uint64_t n = 0; n < universe; ++n) t.erase(id_of(n, shared));
    EXPECT_EQ(t.size(), 0u);
    EXPECT_EQ(t.find(id_of(3, shared)), (IdTable<int>::npos));
  }
}

TEST(IdTable, SlotsStayPutWhileTheirKeyIsIn) {
  IdTable<int> t(1);
  const uint32_t kept = t.insert(id_of(0, false)).first;
  t.at(kept) = 99;
  for (uint64_t n = 1; n < 5000; ++n) t.insert(id_of(n, false));  // grows the entries and the slots
  for (uint64_t n = 1; n < 5000; n += 2) t.erase(id_of(n, false));
  EXPECT_EQ(t.find(id_of(0, false)), kept);
  EXPECT_EQ(t.at(kept), 99);
  // Freed slots are reused before the slot vector grows.
  const size_t slots = t.slots().size();
  for (uint64_t n = 1; n < 5000; n += 2) t.insert(id_of(n, false));
  EXPECT_EQ(t.slots().size(), slots);
}

TEST(IdTable, IntegerKeys) {
  FlatTable<uint64_t, double, U64Hasher> t;
  for (uint64_t k = 0; k < 3000; ++k) t[k << 32 | (k * 7)] = double(k);
  EXPECT_EQ(t.size(), 3000u);
  for (uint64_t k = 0; k < 3000; ++k) {
    const double* v = t.get(k << 32 | (k * 7));
    ASSERT_TRUE(v != nullptr);
    ASSERT_EQ(*v, double(k));
  }
  EXPECT_EQ(t.get(12345), nullptr);
}

TEST(IdTable, IdOrderIsStdLess) {
  SplitMix64 r(5);
  for (int i = 0; i < 1000; ++i) {
    PeerId a = id_of(r.next(), false), b = a;
    b[r.below(32)] ^= static_cast<uint8_t>(1 + r.below(255));
    EXPECT_EQ(IdLess{}(a, b), a < b);
    EXPECT_EQ(IdLess{}(b, a), b < a);
    EXPECT_FALSE(IdLess{}(a, a));
    EXPECT_TRUE(same_id(a, a));
    EXPECT_FALSE(same_id(a, b));
  }
}
