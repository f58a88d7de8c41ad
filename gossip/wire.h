// The wire codec for gossip/messages.h: msgpack, one message per ZeroMQ frame.
// docs/protocol.md documents every field.
//
// Envelope: a msgpack array [protocol version, message type, fields...], the
// fields flattened in the order of the struct. Decoding treats its input as
// hostile: explicit msgpack size limits, every field's type and bound checked,
// trailing bytes rejected; it never throws and never crashes, and a rejection
// carries a short reason for counters and logs.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "gossip/messages.h"

namespace murmur::gossip::wire {

// Message type = the index of the alternative in gossip::Message (Hello = 0 ...
// Refusal = 14); the training layer's messages, carried inside Payloads, are Delta
// (type 100), RingSegment (type 101) and ResyncRequest (type 102).
inline constexpr uint32_t kDeltaType = 100, kRingSegmentType = 101, kResyncType = 102;
// Envelope and fixed fields of a Payload or StateChunk frame beyond its bytes.
inline constexpr size_t kMaxFrameOverhead = 128;

template <class T>
struct Decoded {
  std::optional<T> value;
  std::string error;  // empty when value is set
  explicit operator bool() const { return value.has_value(); }
};
using DecodeResult = Decoded<gossip::Message>;

std::vector<uint8_t> encode(const gossip::Message& m);
size_t encoded_size(const gossip::Message& m);  // encode(m).size(), without building the bytes
DecodeResult decode(std::span<const uint8_t> frame);

// A Payload frame's fields with its bytes left in the frame.
struct PayloadChunk {
  uint64_t link_epoch = 0, seq = 0;
  uint32_t chunk = 0, chunk_count = 1;
  std::span<const uint8_t> bytes;
};
using Frame = std::variant<gossip::Message, PayloadChunk>;
gossip::Payload to_payload(const PayloadChunk& c);  // copies the bytes out of the frame
// decode() that leaves a Payload's bytes in `frame` (which must outlive the result), so the transport
// copies each received chunk once, straight into its reassembly buffer.
Decoded<Frame> decode_frame(std::span<const uint8_t> frame);
// The start of encode(Payload{link_epoch, seq, chunk, chunk_count, bytes}) for a chunk of `bytes` bytes:
// the frame is this header followed by the bytes, so the transport's bulk path copies each byte once,
// from the whole payload straight into the frame it sends.
std::vector<uint8_t> payload_chunk_header(uint64_t link_epoch, uint64_t seq, uint32_t chunk,
                                          uint32_t chunk_count, size_t bytes);

// A training message may be as large as the reassembled payload that carries it.
std::vector<uint8_t> encode_train(const gossip::TrainMessage& m);
size_t encoded_size(const gossip::TrainMessage& m);  // encode_train(m).size()
Decoded<gossip::TrainMessage> decode_train(std::span<const uint8_t> bytes);

// "Hello", "Payload", ...: for logs.
const char* message_name(const gossip::Message& m);

}  // namespace murmur::gossip::wire
