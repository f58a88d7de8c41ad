// CurveZMQ key pairs on disk and the allow-list of admitted peers.
//
// A key directory holds peer.key (the secret key, mode 0600) and peer.pub (the
// public key), each one line of Z85 text as zmq_curve_keypair produces it. The
// public key is the peer's identity (gossip::PeerId).
#pragma once

#include <filesystem>
#include <set>
#include <string>
#include <string_view>

#include "gossip/messages.h"

namespace murmur::net {

struct Keys {
  std::string public_z85;  // 40 Z85 characters
  std::string secret_z85;  // 40 Z85 characters
  gossip::PeerId id{};     // public_z85 decoded
};

// A fresh key pair from libzmq (libsodium underneath).
Keys generate_keys();

// Writes DIR/peer.key (0600, written to a temp file, fsynced, then linked into
// place) and DIR/peer.pub; creates DIR. Throws if either file already exists.
void write_keys(const std::filesystem::path& dir, const Keys& keys);

// Reads and validates DIR/peer.key and DIR/peer.pub: both 40 Z85 characters, and
// the public key must be the one the secret key derives. Throws with the file named.
Keys load_keys(const std::filesystem::path& dir);

// Allow-list text: one Z85 public key per line, optionally followed by whitespace
// and a '#' comment; lines starting with '#' are comments (a Z85 key may contain
// '#' but never starts with it); blank lines are skipped. Throws "<source>:<line>: ..." on
// anything else. `source` names the text in error messages.
std::set<gossip::PeerId> parse_allow_list(std::string_view text, const std::string& source);
std::set<gossip::PeerId> load_allow_list(const std::filesystem::path& file);

}  // namespace murmur::net
