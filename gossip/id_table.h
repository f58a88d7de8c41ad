// Containers keyed by peer id, for the tables that every message searches several times (a Ping
// carries eight member updates): inline id comparisons, and a flat hash table.
//
// FlatTable: std::unordered_map costs three dependent cache misses a lookup (bucket, the node before,
// the node); here an entry holds the key's 64-bit hash and the value's slot, so a lookup costs one miss
// for the entry and one for the value, and prefetch() lets a caller overlap the misses of a batch of
// lookups. In a simulated swarm of 1,000 peers the member tables hold a million members, far out of
// cache, and these misses were a fifth of the run time. Open addressing with linear probing over a
// power-of-two array at most half full; deletion shifts the probe run back (no tombstones). Values
// live in a vector of slots that never move while their key is in the table (freed slots are reused),
// so a slot number is a stable handle (a pointer is not: the vector grows).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "gossip/messages.h"
#include "model/rng.h"

namespace murmur::gossip {

// Starts loading p's cache line. GCC 12 drops some __builtin_prefetch calls at -O3 (those of the
// member tables' batched lookups vanished without a trace), so on x86-64 the instruction is written out.
inline void prefetch_line(const void* p) {
#if defined(__x86_64__) && defined(__GNUC__)
  asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p);
#endif
}

// Four word compares, inline (std::array's == and < call memcmp).
inline bool same_id(const PeerId& a, const PeerId& b) {
  uint64_t diff = 0;
  for (size_t i = 0; i < a.size(); i += 8) {
    uint64_t x, y;
    std::memcpy(&x, a.data() + i, 8);
    std::memcpy(&y, b.data() + i, 8);
    diff |= x ^ y;
  }
  return diff == 0;
}
// The order of std::less on ids (bytes, lexicographic), eight bytes at a time.
struct IdLess {
  bool operator()(const PeerId& a, const PeerId& b) const {
    for (size_t i = 0; i < a.size(); i += 8) {
      uint64_t x = 0, y = 0;
      for (size_t k = 0; k < 8; ++k) {
        x = x << 8 | a[i + k];
        y = y << 8 | b[i + k];
      }
      if (x != y) return x < y;
    }
    return false;
  }
};

// Hashes for FlatTable, keyed with a per-table seed: ids in piggybacked updates come from strangers,
// who could otherwise pick ids that all land in one probe run.
struct IdHasher {
  uint64_t operator()(const PeerId& id, uint64_t seed) const {
    uint64_t h = seed;
    for (size_t i = 0; i < id.size(); i += 8) {
      uint64_t w;
      std::memcpy(&w, id.data() + i, 8);
      h = mix64(h ^ w);
    }
    return h;
  }
  bool equal(const PeerId& a, const PeerId& b) const { return same_id(a, b); }
};
struct U64Hasher {
  uint64_t operator()(uint64_t key, uint64_t seed) const { return mix64(key ^ seed); }
  bool equal(uint64_t a, uint64_t b) const { return a == b; }
};

template <class Key, class T, class Hasher>
class FlatTable {
 public:
  static constexpr uint32_t npos = UINT32_MAX;
  struct Slot {
    Key key{};
    T value{};
    bool used = false;
  };

  explicit FlatTable(uint64_t seed = 0) : seed_(mix64(seed ^ 0x69647461626c6521ULL)) {}

  size_t size() const { return size_; }

  // The slot of key, or npos.
  uint32_t find(const Key& key) const {
    const size_t i = locate(key);
    return i == kNone ? npos : entries_[i].slot;
  }
  T* get(const Key& key) {
    const uint32_t s = find(key);
    return s == npos ? nullptr : &slots_[s].value;
  }
  const T* get(const Key& key) const {
    const uint32_t s = find(key);
    return s == npos ? nullptr : &slots_[s].value;
  }

  // The slot of key, added with a value-initialised T if absent; .second is true if it was added.
  std::pair<uint32_t, bool> insert(const Key& key) {
    if (const uint32_t s = find(key); s != npos) return {s, false};
    if (2 * (size_ + 1) > entries_.size()) grow();
    uint32_t s;
    if (free_.empty()) {
      s = static_cast<uint32_t>(slots_.size());
      slots_.emplace_back();
    } else {
      s = free_.back();
      free_.pop_back();
    }
    slots_[s].key = key;
    slots_[s].used = true;
    place(Hasher{}(key, seed_), s);
    ++size_;
    return {s, true};
  }
  T& operator[](const Key& key) { return slots_[insert(key).first].value; }

  void erase(const Key& key) {
    size_t i = locate(key);
    if (i == kNone) return;
    const uint32_t s = entries_[i].slot;
    slots_[s] = Slot{};
    free_.push_back(s);
    --size_;
    // Backward shift: each later entry of the run moves into the hole unless its home position lies
    // between the hole and itself.
    for (size_t j = (i + 1) & mask(); entries_[j].slot != npos; j = (j + 1) & mask()) {
      const size_t home = entries_[j].hash & mask();
      if (((j - home) & mask()) >= ((j - i) & mask())) {
        entries_[i] = entries_[j];
        i = j;
      }
    }
    entries_[i] = Entry{};
  }

  // Starts loading the entry key's lookup begins at.
  void prefetch(const Key& key) const {
    if (!entries_.empty()) prefetch_line(&entries_[Hasher{}(key, seed_) & mask()]);
  }
  // Starts loading key's slot; its entry should be in cache (prefetch() it first). The first entry
  // with key's hash will do: comparing keys would wait for the slot, the very miss this starts.
  void prefetch_value(const Key& key) const {
    if (entries_.empty()) return;
    const uint64_t h = Hasher{}(key, seed_);
    for (size_t i = h & mask(); entries_[i].slot != npos; i = (i + 1) & mask())
      if (entries_[i].hash == h) return prefetch_slot(entries_[i].slot);
  }
  // Starts loading every cache line of a slot.
  void prefetch_slot(uint32_t slot) const {
    const char* p = reinterpret_cast<const char*>(&slots_[slot]);
    for (size_t line = 0; line < sizeof(Slot); line += 64) prefetch_line(p + line);
    prefetch_line(p + sizeof(Slot) - 1);
  }

  T& at(uint32_t slot) { return slots_[slot].value; }
  const T& at(uint32_t slot) const { return slots_[slot].value; }
  const Key& key_at(uint32_t slot) const { return slots_[slot].key; }
  // Every slot, used or not: skip those with !used.
  const std::vector<Slot>& slots() const { return slots_; }

 private:
  struct Entry {
    uint64_t hash = 0;
    uint32_t slot = npos;  // npos: empty
  };

  static constexpr size_t kNone = SIZE_MAX;

  size_t mask() const { return entries_.size() - 1; }
  // The index of key's entry, or kNone.
  size_t locate(const Key& key) const {
    if (entries_.empty()) return kNone;
    const uint64_t h = Hasher{}(key, seed_);
    for (size_t i = h & mask(); entries_[i].slot != npos; i = (i + 1) & mask())
      if (entries_[i].hash == h && Hasher{}.equal(slots_[entries_[i].slot].key, key)) return i;
    return kNone;
  }
  void place(uint64_t h, uint32_t slot) {
    size_t i = h & mask();
    while (entries_[i].slot != npos) i = (i + 1) & mask();
    entries_[i] = Entry{h, slot};
  }
  void grow() {
    std::vector<Entry> old = std::move(entries_);
    entries_.assign(std::max<size_t>(16, 2 * old.size()), Entry{});
    for (const Entry& e : old)
      if (e.slot != npos) place(e.hash, e.slot);
  }

  uint64_t seed_;
  std::vector<Entry> entries_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
  size_t size_ = 0;
};

template <class T>
using IdTable = FlatTable<PeerId, T, IdHasher>;

}  // namespace murmur::gossip
