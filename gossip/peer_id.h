// Printing and parsing peer identities (CurveZMQ public keys) as Z85, the
// encoding ZeroMQ uses for CURVE keys (40 characters for 32 bytes).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "gossip/messages.h"

namespace murmur::gossip {

std::string to_z85(const PeerId& id);
// nullopt unless `text` is exactly 40 valid Z85 characters.
std::optional<PeerId> peer_id_from_z85(std::string_view text);
// The first 8 characters of the Z85 form: enough to tell peers apart in logs.
std::string short_name(const PeerId& id);

}  // namespace murmur::gossip
