#include "node/net/keys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "gossip/peer_id.h"
#include "model/atomic_file.h"

namespace murmur::net {

namespace fs = std::filesystem;

namespace {

constexpr const char* kSecretFile = "peer.key";
constexpr const char* kPublicFile = "peer.pub";

std::string errno_text() { return std::strerror(errno); }

// Creates `path` with `mode`, never replacing an existing file: the bytes go to a
// temp file first (fsynced), which is then hard-linked into place (link fails if
// the target exists, unlike rename), so a crash never leaves a half-written key.
void write_new_file(const fs::path& path, std::string_view text, mode_t mode) {
  std::string tmp = (path.parent_path() / ("." + path.filename().string() + ".XXXXXX")).string();
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0)
    throw std::runtime_error("cannot create a temp file in " + path.parent_path().string() + ": " +
                             errno_text());
  bool ok = ::fchmod(fd, mode) == 0;
  for (size_t done = 0; ok && done < text.size();) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    ok = n > 0;
    done += ok ? size_t(n) : 0;
  }
  ok = ok && ::fsync(fd) == 0;
  const std::string why = errno_text();
  ::close(fd);
  if (!ok) {
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot write " + path.string() + ": " + why);
  }
  const int rc = ::link(tmp.c_str(), path.c_str());
  const std::string link_why = errno_text();
  ::unlink(tmp.c_str());
  if (rc != 0) throw std::runtime_error("cannot create " + path.string() + ": " + link_why);
}

std::string trim(std::string_view s) {
  const char* ws = " \t\r\n";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  return std::string(s.substr(b, s.find_last_not_of(ws) - b + 1));
}

// One Z85 key file: a single line of 40 characters.
std::string read_key_file(const fs::path& path) {
  if (!fs::exists(path))
    throw std::runtime_error("key file " + path.string() + " does not exist (run murmur keygen)");
  const std::string key = trim(read_text_file(path, 1024));
  if (!gossip::peer_id_from_z85(key)) {
    throw std::runtime_error("key file " + path.string() + " does not hold one 40-character Z85 key");
  }
  return key;
}

}  // namespace

Keys generate_keys() {
  char pub[41], sec[41];
  if (zmq_curve_keypair(pub, sec) != 0) {
    throw std::runtime_error(std::string("zmq_curve_keypair failed: ") + zmq_strerror(zmq_errno()));
  }
  return Keys{pub, sec, *gossip::peer_id_from_z85(pub)};
}

void write_keys(const fs::path& dir, const Keys& keys) {
  const fs::path sec = dir / kSecretFile, pub = dir / kPublicFile;
  for (const fs::path& p : {sec, pub}) {
    if (fs::exists(p)) throw std::runtime_error(p.string() + " already exists; not overwriting a key");
  }
  fs::create_directories(dir);
  write_new_file(sec, keys.secret_z85 + "\n", 0600);
  write_new_file(pub, keys.public_z85 + "\n", 0644);
  fsync_dir(dir);
}

Keys load_keys(const fs::path& dir) {
  Keys k;
  k.secret_z85 = read_key_file(dir / kSecretFile);
  k.public_z85 = read_key_file(dir / kPublicFile);
  char derived[41];
  if (zmq_curve_public(derived, k.secret_z85.c_str()) != 0 || k.public_z85 != derived) {
    throw std::runtime_error("keys in " + dir.string() + " do not match: " + kPublicFile +
                             " is not the public key of " + kSecretFile);
  }
  k.id = *gossip::peer_id_from_z85(k.public_z85);
  return k;
}

std::set<gossip::PeerId> parse_allow_list(std::string_view text, const std::string& source) {
  std::set<gossip::PeerId> keys;
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
    // Z85 keys may contain '#' but never start with it (a group's first digit is at
    // most '%'), so a comment after a key needs whitespace before it.
    const std::string content = trim(line);
    if (content.empty() || content[0] == '#') continue;
    const std::string token = content.substr(0, content.find_first_of(" \t"));
    const std::string rest = trim(std::string_view(content).substr(token.size()));
    const auto id = gossip::peer_id_from_z85(token);
    if (!id || (!rest.empty() && rest[0] != '#')) {
      throw std::runtime_error(source + ":" + std::to_string(line_no) +
                               ": not a 40-character Z85 public key: '" + content.substr(0, 60) + "'");
    }
    keys.insert(*id);
  }
  return keys;
}

std::set<gossip::PeerId> load_allow_list(const fs::path& file) {
  if (!fs::exists(file)) throw std::runtime_error("allow-list " + file.string() + " does not exist");
  return parse_allow_list(read_text_file(file, 16u << 20), file.string());
}

}  // namespace murmur::net
