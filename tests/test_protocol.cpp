// The msgpack wire codec: every message round-trips (fixed and random field
// values), and hostile frames (truncated, wrong types, oversize counts, the
// `dd ff ff ff ff` allocation bomb, random and mutated bytes) are rejected with a
// reason, never a crash or an exception.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <msgpack.hpp>
#include <random>
#include <set>

#include "gossip/wire.h"
#include "tests/protocol_fuzz_one.h"

namespace murmur::gossip::wire {
namespace {

namespace g = murmur::gossip;

struct Rand {
  std::mt19937_64 rng{7};
  uint64_t u64() { return rng() >> (rng() % 64); }
  size_t below(size_t n) { return size_t(rng() % n); }
  g::PeerId key() {
    g::PeerId k;
    for (auto& b : k) b = uint8_t(rng());
    return k;
  }
  std::vector<uint8_t> bytes(size_t max) {
    std::vector<uint8_t> b(below(max + 1));
    for (auto& x : b) x = uint8_t(rng());
    return b;
  }
  g::PeerInfo peer() {
    return {key(), "tcp://10.0." + std::to_string(below(256)) + ".1:" + std::to_string(below(65536)), u64()};
  }
  std::vector<g::PeerInfo> peers() {
    std::vector<g::PeerInfo> v(below(g::kMaxPeersPerMessage + 1));
    for (auto& p : v) p = peer();
    return v;
  }
  std::vector<g::MemberUpdate> updates() {
    std::vector<g::MemberUpdate> v(below(g::kMaxPeersPerMessage + 1));
    for (auto& u : v) u = {peer(), g::PeerState(below(4))};
    return v;
  }
  double real() { return std::ldexp(double(int64_t(rng()) >> 11), -int(below(80))); }  // within 2^53
  g::RunIdentity run() {
    const char* algos[] = {"gossip", "diloco", "allreduce", "local", ""};
    return {uint32_t(rng()), uint32_t(rng()), uint32_t(rng()), uint32_t(rng()), uint32_t(rng()),
            u64(),           algos[below(5)], u64(),           u64(),           u64(),
            real(),          real(),          bool(rng() & 1)};
  }
  // A random instance of every message type, in variant order.
  std::vector<g::Message> all() {
    const uint64_t total = 1 + u64();
    const uint64_t offset = total - 1 - std::min<uint64_t>(u64(), total - 1);
    auto state = bytes(std::min<uint64_t>(64, total - offset));
    return {g::Hello{peer(), run(), peer().addr},
            g::Welcome{peer(), peers(), run(), peer().addr},
            g::Shuffle{peers(), bool(rng() & 1), u64()},
            g::Ping{u64(), updates(), u64()},
            g::Ack{u64(), key(), updates(), u64()},
            g::PingReq{u64(), peer()},
            g::LinkRequest{u64(), uint32_t(rng()), u64()},
            g::LinkAccept{u64(), uint32_t(rng())},
            g::LinkReject{u64()},
            g::LinkClose{u64()},
            g::Payload{u64(), u64(), 2, 3, bytes(3000)},
            g::StateRequest{u64(), u64()},
            g::StateChunk{u64(), total, offset, key(), state},
            g::Bye{u64()},
            g::Refusal{run()},
            g::Reachable{peer().addr},
            g::RelayRequest{key()},
            g::RelayOffer{key(), peer().addr, bool(rng() & 1)},
            g::RunQuery{},
            g::RunInfo{run()}};
  }
};

void expect_round_trip(const g::Message& m) {
  const std::vector<uint8_t> wire = encode(m);
  EXPECT_EQ(encoded_size(m), wire.size()) << message_name(m);  // the simulator's sizes
  const DecodeResult r = decode(wire);
  ASSERT_TRUE(r) << message_name(m) << ": " << r.error;
  EXPECT_EQ(*r.value, m) << message_name(m);
}

TEST(Protocol, EveryMessageRoundTrips) {
  const g::PeerInfo p{g::PeerId{1, 2, 3}, "tcp://127.0.0.1:7000", 5};
  const g::RunIdentity run{4, 4, 128, 64, 256, 1337, "gossip", 50, 125, 16, 0.7, 0.9, true};
  const std::vector<g::Message> fixed = {g::Hello{p, run, "tcp://10.0.0.2:7000"},
                                         g::Welcome{p, {p, p}, run, "192.0.2.7"},
                                         g::Shuffle{{}, true, 7},
                                         g::Ping{9, {{p, g::PeerState::suspect}}, 7},
                                         g::Ack{9, p.id, {}, 7},
                                         g::PingReq{3, p},
                                         g::LinkRequest{1, 4, 7},
                                         g::LinkAccept{1, 4},
                                         g::LinkReject{2},
                                         g::LinkClose{2},
                                         g::Payload{1, 0, 0, 1, {}},
                                         g::StateRequest{7, 0},
                                         g::StateChunk{7, 10, 0, {}, std::vector<uint8_t>(10, 1)},
                                         g::Bye{1},
                                         g::Refusal{run},
                                         g::Reachable{"tcp://10.0.0.2:7000"},
                                         g::RelayRequest{p.id},
                                         g::RelayOffer{p.id, "tcp://198.51.100.1:40001", true},
                                         g::RunQuery{},
                                         g::RunInfo{run}};
  ASSERT_EQ(fixed.size(), std::variant_size_v<g::Message>);
  for (size_t i = 0; i < fixed.size(); ++i) {
    EXPECT_EQ(fixed[i].index(), i);
    expect_round_trip(fixed[i]);
  }
}

TEST(Protocol, RandomFieldValuesRoundTrip) {
  Rand r;
  for (int it = 0; it < 200; ++it) {
    for (const g::Message& m : r.all()) expect_round_trip(m);
  }
  // The extremes: a full-size chunk, the longest address, the largest counts.
  g::PeerInfo longest{r.key(), std::string(g::kMaxAddrLen, 'a'), UINT64_MAX};
  g::RunIdentity widest = r.run();
  widest.algo = std::string(g::kMaxAlgoLen, 'g');
  widest.outer_lr = -0.0;
  widest.outer_momentum = -0x1p53;  // the widest real a RunIdentity carries
  expect_round_trip(g::Welcome{longest, std::vector<g::PeerInfo>(g::kMaxPeersPerMessage, longest), widest});
  expect_round_trip(g::Payload{UINT64_MAX, UINT64_MAX, UINT32_MAX - 1, UINT32_MAX, r.bytes(0)});
  expect_round_trip(g::Payload{0, 0, 0, 1, std::vector<uint8_t>(g::kMaxChunkBytes, 7)});
}

TEST(Protocol, TrainingMessagesRoundTrip) {
  Rand r;
  for (int it = 0; it < 50; ++it) {
    const g::TrainMessage m =
        it % 7 == 6 ? g::TrainMessage{g::ResyncRequest{r.u64()}}
        : it % 3 == 2
            ? g::TrainMessage{g::RingSegment{r.u64(), uint32_t(r.rng()), r.bytes(it == 2 ? 0 : 5000)}}
            : g::TrainMessage{
                  g::Delta{r.u64(), uint32_t(r.rng()), bool(it & 1), r.bytes(it == 0 ? 0 : 5000), {}}};
    const std::vector<uint8_t> wire = encode_train(m);
    EXPECT_EQ(encoded_size(m), wire.size());
    const auto got = decode_train(wire);
    ASSERT_TRUE(got) << got.error;
    EXPECT_EQ(*got.value, m);
  }
  // The transport's bulk path writes the same frame as encode(Payload).
  std::vector<uint8_t> whole(5000);
  for (auto& x : whole) x = uint8_t(r.rng());
  const auto slice = std::span<const uint8_t>(whole).subspan(1000, 3000);
  std::vector<uint8_t> frame = payload_chunk_header(4, 5, 1, 3, slice.size());
  frame.insert(frame.end(), slice.begin(), slice.end());
  EXPECT_EQ(frame, encode(g::Payload{4, 5, 1, 3, std::vector<uint8_t>(slice.begin(), slice.end())}));
  const g::TrainMessage by_digest{g::Delta{0, 3, true, {}, std::vector<uint8_t>(g::kStateDigestBytes, 7)}};
  EXPECT_EQ(*decode_train(encode_train(by_digest)).value, by_digest);
  const g::TrainMessage long_digest{
      g::Delta{0, 3, true, {}, std::vector<uint8_t>(g::kStateDigestBytes + 1, 7)}};
  EXPECT_FALSE(decode_train(encode_train(long_digest)));
  const g::TrainMessage big{
      g::Delta{1, 2, false, std::vector<uint8_t>(3u << 20, 9), {}}};  // larger than a chunk
  EXPECT_EQ(*decode_train(encode_train(big)).value, big);
  // A training message is not a control message and vice versa.
  EXPECT_FALSE(decode(encode_train(big)));
  EXPECT_FALSE(decode_train(encode(g::Bye{1})));
  // A RingSegment with a Delta's field count (or the reverse) is refused.
  auto seg = encode_train(g::TrainMessage{g::RingSegment{1, 2, r.bytes(10)}});
  seg[0] = 0x96;  // fixarray of 6 instead of 5
  EXPECT_FALSE(decode_train(seg));
}

TEST(RunIdentity, DigestIsPinnedAndChangesWithEveryField) {
  const g::RunIdentity base{4, 4, 128, 64, 256, 1, "gossip", 50, 125, 16, 0.7, 0.9, true};
  // The same on every machine: also what Python's hashlib.blake2b(digest_size=16) gives for the encoding
  // of gossip/run_identity.cpp (its first 8 bytes, little-endian).
  EXPECT_EQ(g::run_digest(base), 0x9a3de498bc96a256u);
  const std::vector<std::function<void(g::RunIdentity&)>> changes = {
      [](g::RunIdentity& r) { r.n_layer = 2; },
      [](g::RunIdentity& r) { r.n_head = 2; },
      [](g::RunIdentity& r) { r.n_embd = 64; },
      [](g::RunIdentity& r) { r.n_ctx = 128; },
      [](g::RunIdentity& r) { r.vocab_size = 50257; },
      [](g::RunIdentity& r) { r.seed = 2; },
      [](g::RunIdentity& r) { r.algo = "diloco"; },
      [](g::RunIdentity& r) { r.inner_steps = 51; },
      [](g::RunIdentity& r) { r.warmup_steps = 0; },
      [](g::RunIdentity& r) { r.warmup_inner_steps = 8; },
      [](g::RunIdentity& r) { r.outer_lr = 0.7000000000000001; },
      [](g::RunIdentity& r) { r.outer_momentum = 0.0; },
      [](g::RunIdentity& r) { r.outer_after_mix = false; }};
  std::set<uint64_t> seen = {g::run_digest(base)};
  for (const auto& change : changes) {
    g::RunIdentity r = base;
    change(r);
    ASSERT_NE(r, base);
    EXPECT_TRUE(seen.insert(g::run_digest(r)).second) << g::run_differences(base, r);
    EXPECT_FALSE(g::run_differences(base, r).empty());
  }
  // Equal identities have equal digests, -0.0 == 0.0 included.
  g::RunIdentity a = base, b = base;
  a.outer_momentum = 0.0;
  b.outer_momentum = -0.0;
  EXPECT_EQ(a, b);
  EXPECT_EQ(g::run_digest(a), g::run_digest(b));
}

// Frames built field by field, to say things the encoder never would.
struct Frame {
  std::vector<uint8_t> out;
  struct Buf {
    std::vector<uint8_t>& v;
    void write(const char* p, size_t n) { v.insert(v.end(), p, p + n); }
  } buf{out};
  msgpack::packer<Buf> p{buf};
  Frame& array(uint32_t n) { return p.pack_array(n), *this; }
  Frame& u(uint64_t v) { return p.pack_uint64(v), *this; }
  Frame& i(int64_t v) { return p.pack_int64(v), *this; }
  Frame& s(const std::string& x) {
    return p.pack_str(uint32_t(x.size())), p.pack_str_body(x.data(), uint32_t(x.size())), *this;
  }
  Frame& bin(size_t n) {
    std::vector<char> b(n, 1);
    return p.pack_bin(uint32_t(n)), p.pack_bin_body(b.data(), uint32_t(n)), *this;
  }
  Frame& peer(size_t key = 32, size_t addr = 10) { return array(3).bin(key).s(std::string(addr, 'x')).u(1); }
  Frame& f64(double v) { return p.pack_double(v), *this; }
  Frame& yes() { return p.pack_true(), *this; }
  // A run identity whose outer lr is packed by `lr` (a valid one by default), its algo `algo`.
  Frame& run(
      const std::function<void(Frame&)>& lr = [](Frame& f) { f.f64(0.7); },
      const std::string& algo = "gossip") {
    array(13).u(4).u(4).u(128).u(64).u(256).u(1).s(algo).u(50).u(0).u(0);
    lr(*this);
    return f64(0.9).yes();
  }
};

std::string rejection(const std::vector<uint8_t>& frame) {
  const DecodeResult r = decode(frame);
  EXPECT_FALSE(r);
  EXPECT_FALSE(r.error.empty());
  return r.error;
}

TEST(Protocol, HostileFramesAreRejectedWithAReason) {
  const auto has = [](const std::string& s, const char* part) { return s.find(part) != std::string::npos; };
  EXPECT_TRUE(has(rejection({0xdd, 0xff, 0xff, 0xff, 0xff}), "array size overflow"));  // 96 GiB if unlimited
  EXPECT_TRUE(has(rejection({0xdf, 0xff, 0xff, 0xff, 0xff}), "map size overflow"));
  EXPECT_EQ(rejection({0xc6, 0xff, 0xff, 0xff, 0xff}), "truncated");  // a 4 GiB bin is never allocated
  EXPECT_EQ(rejection({}), "truncated");
  EXPECT_TRUE(has(rejection(Frame().u(1).out), "not an envelope"));
  EXPECT_TRUE(
      has(rejection(Frame().array(4).u(3).u(0).peer().run().out), "version 3"));  // before run identities
  EXPECT_TRUE(has(rejection(Frame().array(5).u(5).u(0).peer().run().s("").out), "version 5"));
  EXPECT_TRUE(has(rejection(Frame().array(3).u(4).u(20).u(0).out), "unknown message type 20"));
  EXPECT_TRUE(has(rejection(Frame().array(3).u(4).u(100).u(0).out), "unknown message type 100"));
  EXPECT_TRUE(has(rejection(Frame().array(4).i(-1).u(0).peer().run().out), "version: not an unsigned"));
  EXPECT_TRUE(has(rejection(Frame().array(3).u(4).u(0).peer().out), "Hello: 1 fields, expected 3"));
  EXPECT_TRUE(has(rejection(Frame().array(5).u(4).u(0).peer(31).run().s("").out), "must be 32 bytes"));
  EXPECT_TRUE(has(rejection(Frame().array(5).u(4).u(0).peer(33).run().s("").out), "must be 32 bytes"));
  EXPECT_TRUE(has(rejection(Frame().array(5).u(4).u(0).peer(32, g::kMaxAddrLen + 1).run().s("").out),
                  "str size overflow"));
  EXPECT_TRUE(has(rejection(Frame().array(3).u(4).u(13).s("x").out), "incarnation: not an unsigned"));
  EXPECT_TRUE(has(rejection(Frame().array(5).u(4).u(6).u(1).u(uint64_t(1) << 32).u(0).out), "degree"));
  EXPECT_TRUE(has(rejection(Frame().array(5).u(4).u(6).u(1).u(2).s("x").out), "run_digest: not an unsigned"));
  EXPECT_TRUE(has(rejection(Frame().array(5).u(4).u(2).array(0).u(1).u(0).out), "reply: not a boolean"));
  // The run identity: its length, each field's type and bound, a finite float64 for the outer lr.
  Frame short_run;
  short_run.array(3).u(4).u(14).array(12);
  for (int i = 0; i < 12; ++i) short_run.u(0);
  EXPECT_TRUE(has(rejection(short_run.out), "run: 12 elements, expected 13"));
  EXPECT_TRUE(has(rejection(Frame().array(3).u(4).u(14).u(1).out), "run: not an array"));
  EXPECT_TRUE(has(rejection(Frame().array(3).u(4).u(14).run([](Frame& f) { f.s("0.7"); }).out),
                  "run.outer_lr: not a number"));
  for (double bad : {std::nan(""), HUGE_VAL, -HUGE_VAL, 0x1p54})
    EXPECT_TRUE(has(rejection(Frame().array(3).u(4).u(14).run([&](Frame& f) { f.f64(bad); }).out),
                    "run.outer_lr: not a finite number"));
  // msgpack-c writes an integral double as an integer, another packer may write a float32: both are
  // numbers.
  for (const auto& lr : std::vector<std::function<void(Frame&)>>{
           [](Frame& f) { f.u(1); }, [](Frame& f) { f.i(-2); }, [](Frame& f) { f.p.pack_float(0.5f); }}) {
    const DecodeResult r = decode(Frame().array(3).u(4).u(14).run(lr).out);
    ASSERT_TRUE(r) << r.error;
    const double got = std::get<g::Refusal>(*r.value).run.outer_lr;
    EXPECT_TRUE(got == 1.0 || got == -2.0 || got == 0.5) << got;
  }
  EXPECT_TRUE(has(rejection(Frame()
                                .array(3)
                                .u(4)
                                .u(14)
                                .run([](Frame& f) { f.f64(0.7); }, std::string(g::kMaxAlgoLen + 1, 'a'))
                                .out),
                  "run.algo: longer than 16"));
  Frame wide;
  wide.array(3).u(4).u(14).array(13).u(uint64_t(1) << 32).u(4).u(128).u(64).u(256).u(1).s("gossip").u(50);
  wide.u(0).u(0).f64(0.7).f64(0.9).yes();
  EXPECT_TRUE(has(rejection(wide.out), "run.n_layer: 4294967296 exceeds"));
  // One peer too many in a sample.
  Frame many;
  many.array(5).u(4).u(2).array(g::kMaxPeersPerMessage + 1);
  for (size_t i = 0; i <= g::kMaxPeersPerMessage; ++i) many.peer();
  many.yes().u(0);
  EXPECT_TRUE(has(rejection(many.out), "array size overflow"));
  // A member update with an unknown state, a sample element that is not a peer.
  EXPECT_TRUE(
      has(rejection(Frame().array(5).u(4).u(3).u(1).array(1).array(4).bin(32).s("a").u(1).u(4).u(0).out),
          "update.state"));
  Frame not_peer;
  not_peer.array(5).u(4).u(2).array(1).u(5).yes().u(0);
  EXPECT_TRUE(has(rejection(not_peer.out), "sample: element 0"));
  // Payload bounds: chunk index, chunk_count 0, a chunk over kMaxChunkBytes.
  EXPECT_TRUE(
      has(rejection(Frame().array(7).u(4).u(10).u(0).u(0).u(3).u(3).bin(1).out), "chunk 3 not below"));
  EXPECT_TRUE(has(rejection(Frame().array(7).u(4).u(10).u(0).u(0).u(0).u(0).bin(1).out), "chunk_count 0"));
  EXPECT_TRUE(has(rejection(Frame().array(7).u(4).u(10).u(0).u(0).u(0).u(1).bin(g::kMaxChunkBytes + 1).out),
                  "bin size overflow"));
  // A state chunk reaching past total_size.
  EXPECT_TRUE(
      has(rejection(Frame().array(7).u(4).u(12).u(1).u(10).u(8).bin(32).bin(3).out), "exceeds total_size"));
  // Nesting deeper than any message needs.
  EXPECT_TRUE(
      has(rejection(Frame().array(3).u(4).u(0).array(1).array(1).array(1).u(0).out), "depth size overflow"));
  // Trailing bytes after a valid message.
  std::vector<uint8_t> trailing = encode(g::Bye{1});
  trailing.push_back(0xc0);
  EXPECT_TRUE(has(rejection(trailing), "trailing bytes"));
}

TEST(Protocol, EveryTruncationIsRejected) {
  Rand r;
  for (const g::Message& m : r.all()) {
    const std::vector<uint8_t> wire = encode(m);
    for (size_t n = 0; n < wire.size(); n += 1 + n / 64) {
      const std::vector<uint8_t> cut(wire.begin(), wire.begin() + long(n));
      EXPECT_FALSE(decode(cut)) << message_name(m) << " cut at " << n;
    }
  }
}

// Random bytes and mutated valid frames, the same check as tests/fuzz/fuzz_protocol.cpp.
TEST(Protocol, FuzzStyleRun) {
  Rand r;
  std::vector<std::vector<uint8_t>> seeds;
  for (const g::Message& m : r.all()) seeds.push_back(encode(m));
  seeds.push_back(encode_train(g::Delta{3, 2, true, r.bytes(100), {}}));
  seeds.push_back(encode_train(g::Delta{0, 3, true, {}, std::vector<uint8_t>(g::kStateDigestBytes, 5)}));
  seeds.push_back(encode_train(g::RingSegment{4, 1, r.bytes(100)}));
  const auto t0 = std::chrono::steady_clock::now();
  const int iterations = 60000;
  int accepted = 0;
  for (int it = 0; it < iterations; ++it) {
    std::vector<uint8_t> q;
    if (it % 8 == 0) {
      q = r.bytes(64);
    } else {
      q = seeds[r.below(seeds.size())];
      for (int e = 1 + int(r.below(4)); e > 0 && !q.empty(); --e) {
        switch (r.below(5)) {
          case 0:
            q[r.below(q.size())] ^= uint8_t(1u << r.below(8));
            break;
          case 1:
            q[r.below(q.size())] = uint8_t(r.rng());
            break;
          case 2:
            q.resize(r.below(q.size() + 1));
            break;
          case 3:
            q.push_back(uint8_t(r.rng()));
            break;
          default: {  // a msgpack marker likely to confuse: big array/map/bin/str headers
            const uint8_t markers[] = {0xdc, 0xdd, 0xde, 0xdf, 0xc4, 0xc5,
                                       0xc6, 0xd9, 0xda, 0xdb, 0xc1, 0xff};
            q[r.below(q.size())] = markers[r.below(sizeof markers)];
          }
        }
      }
    }
    accepted += testing::decode_one(q) ? 1 : 0;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("  %d frames in %.2f s, %d accepted (and re-encoded identically), the rest rejected\n",
              iterations, secs, accepted);
  EXPECT_GT(accepted, 1000);
}

}  // namespace
}  // namespace murmur::gossip::wire
