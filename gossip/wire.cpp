#include "gossip/wire.h"

#include <array>
#include <cmath>
#include <cstring>
#include <msgpack.hpp>
#include <new>
#include <stdexcept>
#include <utility>
#include <variant>

namespace murmur::gossip::wire {

namespace g = murmur::gossip;

namespace {

constexpr size_t kTypes = std::variant_size_v<g::Message>;
static_assert(kTypes == 20, "a new message needs its wire layout below and in docs/protocol.md");

constexpr std::array<const char*, kTypes> kNames = {
    "Hello",      "Welcome",    "Shuffle",      "Ping",       "Ack",          "PingReq",    "LinkRequest",
    "LinkAccept", "LinkReject", "LinkClose",    "Payload",    "StateRequest", "StateChunk", "Bye",
    "Refusal",    "Reachable",  "RelayRequest", "RelayOffer", "RunQuery",     "RunInfo"};
// Envelope array length per type: version, type, then the fields.
constexpr std::array<uint32_t, kTypes> kArrayLen = {5, 6, 5, 5, 6, 4, 5, 4, 3, 3,
                                                    7, 4, 7, 3, 3, 3, 3, 5, 2, 3};
constexpr uint32_t kDeltaArrayLen = 7, kRingSegmentArrayLen = 5, kResyncArrayLen = 3;

// A PeerInfo is [id, addr, incarnation]; a MemberUpdate flattens its PeerInfo and
// appends the state, [id, addr, incarnation, state], so the deepest nesting is 3
// (envelope > sample list > peer) and the depth limit bounds the allocation a
// frame of nested array headers can request.
constexpr uint32_t kPeerLen = 3, kUpdateLen = 4;
constexpr uint32_t kMaxDepth = 3;
// A RunIdentity is one array of its fields in declaration order (depth 2 in its message).
constexpr uint32_t kRunLen = 13;

// ------------------------------------------------------------------ encoding

// Appends to `out`; without one it only counts (encoded_size: the simulator's message sizes).
struct Sink {
  std::vector<uint8_t>* out = nullptr;
  size_t size = 0;
  void write(const char* p, size_t n) {
    size += n;
    if (out == nullptr || n == 0) return;
    const size_t at = out->size();  // resize + memcpy: GCC 12 misreads insert() at -O3
    out->resize(at + n);
    std::memcpy(out->data() + at, p, n);
  }
};
using Packer = msgpack::packer<Sink>;

void put_bin(Packer& p, std::span<const uint8_t> b) {
  p.pack_bin(uint32_t(b.size()));
  p.pack_bin_body(reinterpret_cast<const char*>(b.data()), uint32_t(b.size()));
}
void put(Packer& p, const std::string& s) {
  p.pack_str(uint32_t(s.size()));
  p.pack_str_body(s.data(), uint32_t(s.size()));
}
void put_peer_fields(Packer& p, const g::PeerInfo& x) {
  put_bin(p, x.id);
  put(p, x.addr);
  p.pack_uint64(x.incarnation);
}
void put(Packer& p, const g::PeerInfo& x) {
  p.pack_array(kPeerLen);
  put_peer_fields(p, x);
}
void put(Packer& p, const g::MemberUpdate& x) {
  p.pack_array(kUpdateLen);
  put_peer_fields(p, x.peer);
  p.pack_uint8(uint8_t(x.state));
}
template <class T>
void put(Packer& p, const std::vector<T>& xs) {
  p.pack_array(uint32_t(xs.size()));
  for (const T& x : xs) put(p, x);
}
void put(Packer& p, const g::RunIdentity& r) {
  p.pack_array(kRunLen);
  for (uint32_t v : {r.n_layer, r.n_head, r.n_embd, r.n_ctx, r.vocab_size}) p.pack_uint32(v);
  p.pack_uint64(r.seed);
  put(p, r.algo);
  for (uint64_t v : {r.inner_steps, r.warmup_steps, r.warmup_inner_steps}) p.pack_uint64(v);
  p.pack_double(r.outer_lr);
  p.pack_double(r.outer_momentum);
  r.outer_after_mix ? p.pack_true() : p.pack_false();
}
void put(Packer& p, bool b) { b ? p.pack_true() : p.pack_false(); }
void put(Packer& p, uint64_t v) { p.pack_uint64(v); }
void put(Packer& p, uint32_t v) { p.pack_uint32(v); }
void put(Packer& p, const std::vector<uint8_t>& b) { put_bin(p, b); }
void put(Packer& p, const std::array<uint8_t, 32>& b) { put_bin(p, b); }

template <class... F>
void put_all(Packer& p, const F&... f) {
  (put(p, f), ...);
}

void body(Packer& p, const g::Hello& m) { put_all(p, m.self, m.run, m.dial_back); }
void body(Packer& p, const g::Welcome& m) { put_all(p, m.self, m.sample, m.run, m.observed); }
void body(Packer& p, const g::Shuffle& m) { put_all(p, m.sample, m.reply, m.run_digest); }
void body(Packer& p, const g::Ping& m) { put_all(p, m.seq, m.updates, m.run_digest); }
void body(Packer& p, const g::Ack& m) { put_all(p, m.seq, m.target, m.updates, m.run_digest); }
void body(Packer& p, const g::PingReq& m) { put_all(p, m.seq, m.target); }
void body(Packer& p, const g::LinkRequest& m) { put_all(p, m.link_epoch, m.degree, m.run_digest); }
void body(Packer& p, const g::LinkAccept& m) { put_all(p, m.link_epoch, m.degree); }
void body(Packer& p, const g::LinkReject& m) { put_all(p, m.link_epoch); }
void body(Packer& p, const g::LinkClose& m) { put_all(p, m.link_epoch); }
void body(Packer& p, const g::Payload& m) {
  put_all(p, m.link_epoch, m.seq, m.chunk, m.chunk_count, m.bytes);
}
void body(Packer& p, const g::StateRequest& m) { put_all(p, m.transfer_id, m.offset); }
void body(Packer& p, const g::StateChunk& m) {
  put_all(p, m.transfer_id, m.total_size, m.offset, m.sha256, m.bytes);
}
void body(Packer& p, const g::Bye& m) { put_all(p, m.incarnation); }
void body(Packer& p, const g::Refusal& m) { put_all(p, m.run); }
void body(Packer& p, const g::Reachable& m) { put_all(p, m.addr); }
void body(Packer& p, const g::RelayRequest& m) { put_all(p, m.target); }
void body(Packer& p, const g::RelayOffer& m) { put_all(p, m.peer, m.addr, m.callee); }
void body(Packer&, const g::RunQuery&) {}
void body(Packer& p, const g::RunInfo& m) { put_all(p, m.run); }

// ------------------------------------------------------------------ decoding

struct Reject {
  std::string why;
};

// Reads the fields of one msgpack array in order, checking each one's type and bound.
class Fields {
 public:
  Fields(const msgpack::object_array& array, uint32_t first) : o_(array), i_(first) {}

  const msgpack::object& next(const char* field) {
    if (i_ >= o_.size) throw Reject{std::string("missing field ") + field};
    return o_.ptr[i_++];
  }
  uint64_t u64(const char* field) {
    const msgpack::object& x = next(field);
    if (x.type != msgpack::type::POSITIVE_INTEGER)
      throw Reject{std::string(field) + ": not an unsigned integer"};
    return x.via.u64;
  }
  uint32_t u32(const char* field, uint64_t max = UINT32_MAX) {
    const uint64_t v = u64(field);
    if (v > max)
      throw Reject{std::string(field) + ": " + std::to_string(v) + " exceeds " + std::to_string(max)};
    return uint32_t(v);
  }
  // A real number. msgpack-c packs a double without a fraction as an integer, so integers count too;
  // within ±2^53, where every integer is exactly a double, and finite (NaN would differ from itself).
  double real(const char* field) {
    const msgpack::object& x = next(field);
    double v = 0;
    if (x.type == msgpack::type::POSITIVE_INTEGER) {
      v = double(x.via.u64);
    } else if (x.type == msgpack::type::NEGATIVE_INTEGER) {
      v = double(x.via.i64);
    } else if (x.type == msgpack::type::FLOAT32 || x.type == msgpack::type::FLOAT64) {
      v = x.via.f64;
    } else {
      throw Reject{std::string(field) + ": not a number"};
    }
    if (!(std::abs(v) <= 0x1p53)) throw Reject{std::string(field) + ": not a finite number within 2^53"};
    return v;
  }
  bool boolean(const char* field) {
    const msgpack::object& x = next(field);
    if (x.type != msgpack::type::BOOLEAN) throw Reject{std::string(field) + ": not a boolean"};
    return x.via.boolean;
  }
  std::span<const uint8_t> bin(const char* field, size_t max) {
    const msgpack::object& x = next(field);
    if (x.type != msgpack::type::BIN) throw Reject{std::string(field) + ": not binary"};
    if (x.via.bin.size > max) {
      throw Reject{std::string(field) + ": " + std::to_string(x.via.bin.size) + " bytes exceed " +
                   std::to_string(max)};
    }
    return {reinterpret_cast<const uint8_t*>(x.via.bin.ptr), x.via.bin.size};
  }
  std::array<uint8_t, 32> key(const char* field) {
    const auto b = bin(field, SIZE_MAX);
    if (b.size() != 32)
      throw Reject{std::string(field) + ": must be 32 bytes, got " + std::to_string(b.size())};
    std::array<uint8_t, 32> k;
    std::copy(b.begin(), b.end(), k.begin());
    return k;
  }
  std::string str(const char* field, size_t max) {
    const msgpack::object& x = next(field);
    if (x.type != msgpack::type::STR) throw Reject{std::string(field) + ": not a string"};
    if (x.via.str.size > max) throw Reject{std::string(field) + ": longer than " + std::to_string(max)};
    return std::string(x.via.str.ptr, x.via.str.size);
  }
  // A nested array of exactly `len` (or, with len == 0, at most `max`) elements.
  const msgpack::object_array& array(const char* field, uint32_t len, uint32_t max) {
    const msgpack::object& x = next(field);
    if (x.type != msgpack::type::ARRAY) throw Reject{std::string(field) + ": not an array"};
    const uint32_t n = x.via.array.size;
    if (len != 0 ? n != len : n > max) {
      throw Reject{std::string(field) + ": " + std::to_string(n) + " elements, expected " +
                   (len != 0 ? std::to_string(len) : "at most " + std::to_string(max))};
    }
    return x.via.array;
  }

 private:
  const msgpack::object_array& o_;
  uint32_t i_;
};

void read_peer_fields(Fields& f, g::PeerInfo& x) {
  x.id = f.key("peer.id");
  x.addr = f.str("peer.addr", g::kMaxAddrLen);
  x.incarnation = f.u64("peer.incarnation");
}
g::PeerInfo read_peer(Fields& f) {
  Fields pf(f.array("peer", kPeerLen, kPeerLen), 0);
  g::PeerInfo x;
  read_peer_fields(pf, x);
  return x;
}
g::RunIdentity read_run(Fields& f) {
  Fields rf(f.array("run", kRunLen, kRunLen), 0);
  g::RunIdentity r;
  const std::pair<const char*, uint32_t*> shape[] = {{"run.n_layer", &r.n_layer},
                                                     {"run.n_head", &r.n_head},
                                                     {"run.n_embd", &r.n_embd},
                                                     {"run.n_ctx", &r.n_ctx},
                                                     {"run.vocab_size", &r.vocab_size}};
  for (const auto& [name, v] : shape) *v = rf.u32(name);
  r.seed = rf.u64("run.seed");
  r.algo = rf.str("run.algo", g::kMaxAlgoLen);
  const std::pair<const char*, uint64_t*> schedule[] = {{"run.inner_steps", &r.inner_steps},
                                                        {"run.warmup_steps", &r.warmup_steps},
                                                        {"run.warmup_inner_steps", &r.warmup_inner_steps}};
  for (const auto& [name, v] : schedule) *v = rf.u64(name);
  r.outer_lr = rf.real("run.outer_lr");
  r.outer_momentum = rf.real("run.outer_momentum");
  r.outer_after_mix = rf.boolean("run.outer_after_mix");
  return r;
}
std::vector<g::PeerInfo> read_peers(Fields& f) {
  const msgpack::object_array& a = f.array("sample", 0, g::kMaxPeersPerMessage);
  std::vector<g::PeerInfo> out(a.size);
  for (uint32_t i = 0; i < a.size; ++i) {
    if (a.ptr[i].type != msgpack::type::ARRAY || a.ptr[i].via.array.size != kPeerLen) {
      throw Reject{"sample: element " + std::to_string(i) + " is not a [id, addr, incarnation] array"};
    }
    Fields pf(a.ptr[i].via.array, 0);
    read_peer_fields(pf, out[i]);
  }
  return out;
}
std::vector<g::MemberUpdate> read_updates(Fields& f) {
  const msgpack::object_array& a = f.array("updates", 0, g::kMaxPeersPerMessage);
  std::vector<g::MemberUpdate> out(a.size);
  for (uint32_t i = 0; i < a.size; ++i) {
    if (a.ptr[i].type != msgpack::type::ARRAY || a.ptr[i].via.array.size != kUpdateLen) {
      throw Reject{"updates: element " + std::to_string(i) +
                   " is not an [id, addr, incarnation, state] array"};
    }
    Fields uf(a.ptr[i].via.array, 0);
    read_peer_fields(uf, out[i].peer);
    out[i].state = g::PeerState(uf.u32("update.state", uint32_t(g::PeerState::left)));
  }
  return out;
}
PayloadChunk read_chunk(Fields& f) {
  PayloadChunk c;
  c.link_epoch = f.u64("link_epoch");
  c.seq = f.u64("seq");
  c.chunk = f.u32("chunk");
  c.chunk_count = f.u32("chunk_count");
  if (c.chunk_count == 0 || c.chunk >= c.chunk_count) {
    throw Reject{"chunk " + std::to_string(c.chunk) + " not below chunk_count " +
                 std::to_string(c.chunk_count)};
  }
  c.bytes = f.bin("bytes", g::kMaxChunkBytes);
  return c;
}
std::vector<uint8_t> read_bytes(Fields& f, size_t max) {
  const auto b = f.bin("bytes", max);
  return {b.begin(), b.end()};
}

void read(Fields& f, g::Hello& m) {
  m.self = read_peer(f);
  m.run = read_run(f);
  m.dial_back = f.str("dial_back", g::kMaxAddrLen);
}
void read(Fields& f, g::Welcome& m) {
  m.self = read_peer(f);
  m.sample = read_peers(f);
  m.run = read_run(f);
  m.observed = f.str("observed", g::kMaxAddrLen);
}
void read(Fields& f, g::Shuffle& m) {
  m.sample = read_peers(f);
  m.reply = f.boolean("reply");
  m.run_digest = f.u64("run_digest");
}
void read(Fields& f, g::Ping& m) {
  m.seq = f.u64("seq");
  m.updates = read_updates(f);
  m.run_digest = f.u64("run_digest");
}
void read(Fields& f, g::Ack& m) {
  m.seq = f.u64("seq");
  m.target = f.key("target");
  m.updates = read_updates(f);
  m.run_digest = f.u64("run_digest");
}
void read(Fields& f, g::PingReq& m) {
  m.seq = f.u64("seq");
  m.target = read_peer(f);
}
template <class Link>
void read_link(Fields& f, Link& m) {
  m.link_epoch = f.u64("link_epoch");
  if constexpr (requires { m.degree; }) m.degree = f.u32("degree");
  if constexpr (requires { m.run_digest; }) m.run_digest = f.u64("run_digest");
}
void read(Fields& f, g::LinkRequest& m) { read_link(f, m); }
void read(Fields& f, g::LinkAccept& m) { read_link(f, m); }
void read(Fields& f, g::LinkReject& m) { read_link(f, m); }
void read(Fields& f, g::LinkClose& m) { read_link(f, m); }
void read(Fields& f, g::Payload& m) { m = to_payload(read_chunk(f)); }
void read(Fields& f, g::StateRequest& m) {
  m.transfer_id = f.u64("transfer_id");
  m.offset = f.u64("offset");
}
void read(Fields& f, g::StateChunk& m) {
  m.transfer_id = f.u64("transfer_id");
  m.total_size = f.u64("total_size");
  m.offset = f.u64("offset");
  m.sha256 = f.key("sha256");
  m.bytes = read_bytes(f, g::kMaxChunkBytes);
  if (m.offset > m.total_size || m.bytes.size() > m.total_size - m.offset) {
    throw Reject{"state chunk [offset, offset + bytes) exceeds total_size"};
  }
}
void read(Fields& f, g::Bye& m) { m.incarnation = f.u64("incarnation"); }
void read(Fields& f, g::Refusal& m) { m.run = read_run(f); }
void read(Fields& f, g::Reachable& m) { m.addr = f.str("addr", g::kMaxAddrLen); }
void read(Fields& f, g::RelayRequest& m) { m.target = f.key("target"); }
void read(Fields&, g::RunQuery&) {}
void read(Fields& f, g::RunInfo& m) { m.run = read_run(f); }
void read(Fields& f, g::RelayOffer& m) {
  m.peer = f.key("peer");
  m.addr = f.str("addr", g::kMaxAddrLen);
  m.callee = f.boolean("callee");
}

template <size_t I = 0>
g::Message read_message(uint64_t type, Fields& f) {
  if constexpr (I < kTypes) {
    if (type != I) return read_message<I + 1>(type, f);
    std::variant_alternative_t<I, g::Message> m;
    read(f, m);
    return m;
  } else {
    throw Reject{"unknown message type " + std::to_string(type)};
  }
}

// Bins are referenced in place (not copied into the msgpack zone): each reader
// checks its bin's size itself, then copies it out before `frame` goes away.
bool reference_bins(msgpack::type::object_type t, size_t, void*) { return t == msgpack::type::BIN; }

// Unpacks one envelope under `limit`, checks version, type and array length, and
// runs `body` on its fields; any failure becomes the error string.
template <class T, class Body>
Decoded<T> decode_envelope(std::span<const uint8_t> frame, const msgpack::unpack_limit& limit, Body&& body) {
  Decoded<T> r;
  try {
    size_t off = 0;
    const msgpack::object_handle oh = msgpack::unpack(reinterpret_cast<const char*>(frame.data()),
                                                      frame.size(), off, reference_bins, nullptr, limit);
    if (off != frame.size()) throw Reject{"trailing bytes after the message"};
    const msgpack::object& o = oh.get();
    if (o.type != msgpack::type::ARRAY || o.via.array.size < 2) throw Reject{"not an envelope array"};
    Fields f(o.via.array, 0);
    const uint64_t version = f.u64("version");
    if (version != g::kProtocolVersion) throw Reject{"unknown protocol version " + std::to_string(version)};
    const uint64_t type = f.u64("type");
    r.value = body(type, o.via.array.size, f);
  } catch (const Reject& e) {
    r.error = e.why;
  } catch (const msgpack::insufficient_bytes&) {
    r.error = "truncated";
  } catch (const msgpack::unpack_error& e) {
    r.error = std::string("malformed msgpack: ") + e.what();
  } catch (const msgpack::type_error&) {
    r.error = "msgpack type error";
  } catch (const std::bad_alloc&) {
    r.error = "out of memory while decoding";
  }
  return r;
}

void check_length(uint32_t got, uint32_t want, const char* name) {
  if (got != want) {
    throw Reject{std::string(name) + ": " + std::to_string(got - 2) + " fields, expected " +
                 std::to_string(want - 2)};
  }
}

void pack_message(Packer& p, const g::Message& m) {
  p.pack_array(kArrayLen[m.index()]);
  p.pack_uint32(g::kProtocolVersion);
  p.pack_uint32(uint32_t(m.index()));
  std::visit([&](const auto& x) { body(p, x); }, m);
}

void pack_train(Packer& p, const g::TrainMessage& m) {
  if (const auto* d = std::get_if<g::Delta>(&m)) {
    p.pack_array(kDeltaArrayLen);
    p.pack_uint32(g::kProtocolVersion);
    p.pack_uint32(kDeltaType);
    put_all(p, d->round, d->degree, d->snapshot, d->codec_payload, d->state_digest);
  } else if (const auto* q = std::get_if<g::ResyncRequest>(&m)) {
    p.pack_array(kResyncArrayLen);
    p.pack_uint32(g::kProtocolVersion);
    p.pack_uint32(kResyncType);
    put_all(p, q->round);
  } else {
    const auto& r = std::get<g::RingSegment>(m);
    p.pack_array(kRingSegmentArrayLen);
    p.pack_uint32(g::kProtocolVersion);
    p.pack_uint32(kRingSegmentType);
    put_all(p, r.op, r.step, r.codec_payload);
  }
}

// Packs m into `out`, or without it only counts; returns the size.
template <class M>
size_t pack_into(std::vector<uint8_t>* out, void (*pack)(Packer&, const M&), const M& m) {
  Sink sink{out};
  Packer p(sink);
  pack(p, m);
  return sink.size;
}

}  // namespace

std::vector<uint8_t> encode(const g::Message& m) {
  std::vector<uint8_t> out;
  pack_into(&out, pack_message, m);
  return out;
}

size_t encoded_size(const g::Message& m) { return pack_into(nullptr, pack_message, m); }

std::vector<uint8_t> payload_chunk_header(uint64_t link_epoch, uint64_t seq, uint32_t chunk,
                                          uint32_t chunk_count, size_t bytes) {
  static const size_t type = g::Message(g::Payload{}).index();
  std::vector<uint8_t> out;
  Sink sink{&out};
  Packer p(sink);
  p.pack_array(kArrayLen[type]);
  p.pack_uint32(g::kProtocolVersion);
  p.pack_uint32(uint32_t(type));
  put_all(p, link_epoch, seq, chunk, chunk_count);
  p.pack_bin(uint32_t(bytes));  // the bin's body, the chunk's bytes, follows
  return out;
}

g::Payload to_payload(const PayloadChunk& c) {
  return {c.link_epoch, c.seq, c.chunk, c.chunk_count, {c.bytes.begin(), c.bytes.end()}};
}

Decoded<Frame> decode_frame(std::span<const uint8_t> frame) {
  // Sized to the protocol: no maps or exts, the longest array a peer list, the
  // largest bin one chunk (see docs/stack.md: the defaults allow 96 GiB from 5 bytes).
  static const msgpack::unpack_limit limit(/*array=*/g::kMaxPeersPerMessage, /*map=*/0,
                                           /*str=*/g::kMaxAddrLen,
                                           /*bin=*/g::kMaxChunkBytes, /*ext=*/0, /*depth=*/kMaxDepth);
  static const size_t payload_type = g::Message(g::Payload{}).index();
  return decode_envelope<Frame>(frame, limit, [](uint64_t type, uint32_t len, Fields& f) -> Frame {
    if (type >= kTypes) throw Reject{"unknown message type " + std::to_string(type)};
    check_length(len, kArrayLen[type], kNames[type]);
    if (type == payload_type) return read_chunk(f);
    return read_message(type, f);
  });
}

DecodeResult decode(std::span<const uint8_t> frame) {
  Decoded<Frame> d = decode_frame(frame);
  DecodeResult r;
  r.error = std::move(d.error);
  if (d.value) {
    if (auto* c = std::get_if<PayloadChunk>(&*d.value)) {
      r.value = to_payload(*c);
    } else {
      r.value = std::move(std::get<g::Message>(*d.value));
    }
  }
  return r;
}

std::vector<uint8_t> encode_train(const g::TrainMessage& m) {
  std::vector<uint8_t> out;
  if (const auto* d = std::get_if<g::Delta>(&m)) out.reserve(d->codec_payload.size() + 64);
  if (const auto* r = std::get_if<g::RingSegment>(&m)) out.reserve(r->codec_payload.size() + 64);
  pack_into(&out, pack_train, m);
  return out;
}

size_t encoded_size(const g::TrainMessage& m) { return pack_into(nullptr, pack_train, m); }

Decoded<g::TrainMessage> decode_train(std::span<const uint8_t> bytes) {
  static const msgpack::unpack_limit limit(kDeltaArrayLen, 0, 0, UINT32_MAX, 0, 1);
  return decode_envelope<g::TrainMessage>(bytes, limit, [&](uint64_t type, uint32_t len, Fields& f) {
    if (type == kDeltaType) {
      check_length(len, kDeltaArrayLen, "Delta");
      g::Delta d;
      d.round = f.u64("round");
      d.degree = f.u32("degree");
      d.snapshot = f.boolean("snapshot");
      d.codec_payload = read_bytes(f, bytes.size());
      const auto digest = f.bin("state_digest", g::kStateDigestBytes);
      d.state_digest.assign(digest.begin(), digest.end());
      return g::TrainMessage{std::move(d)};
    }
    if (type == kRingSegmentType) {
      check_length(len, kRingSegmentArrayLen, "RingSegment");
      g::RingSegment r;
      r.op = f.u64("op");
      r.step = f.u32("step");
      r.codec_payload = read_bytes(f, bytes.size());
      return g::TrainMessage{std::move(r)};
    }
    if (type == kResyncType) {
      check_length(len, kResyncArrayLen, "ResyncRequest");
      return g::TrainMessage{g::ResyncRequest{f.u64("round")}};
    }
    throw Reject{"not a training message (type " + std::to_string(type) + ")"};
  });
}

const char* message_name(const g::Message& m) { return kNames[m.index()]; }

}  // namespace murmur::gossip::wire
