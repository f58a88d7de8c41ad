#include "node/net/zap.h"

#include <cstring>
#include <string>
#include <vector>
#include <zmq_addon.hpp>

#include "gossip/peer_id.h"

namespace murmur::net {

namespace {
constexpr int kZapEnforceDomain = 93;  // ZMQ_ZAP_ENFORCE_DOMAIN: DRAFT in zmq.h, honoured by libzmq >= 4.3
}

void configure_curve_server(zmq::socket_t& s, const Keys& keys) {
  s.set(zmq::sockopt::curve_server, 1);
  s.set(zmq::sockopt::curve_secretkey, keys.secret_z85);
  s.set(zmq::sockopt::zap_domain, kZapDomain);
  const int on = 1;
  if (zmq_setsockopt(s.handle(), kZapEnforceDomain, &on, sizeof on) != 0) throw zmq::error_t();
}

void configure_curve_client(zmq::socket_t& s, const Keys& keys, const gossip::PeerId& server) {
  s.set(zmq::sockopt::curve_serverkey, gossip::to_z85(server));
  s.set(zmq::sockopt::curve_publickey, keys.public_z85);
  s.set(zmq::sockopt::curve_secretkey, keys.secret_z85);
}

ZapHandler::ZapHandler(zmq::context_t& ctx, AdmissionPolicy policy)
    : sock_(ctx, zmq::socket_type::rep), policy_(std::move(policy)) {
  sock_.set(zmq::sockopt::linger, 0);
  sock_.bind("inproc://zeromq.zap.01");
}

void ZapHandler::handle_pending() {
  for (;;) {
    std::vector<zmq::message_t> req;
    if (!zmq::recv_multipart(sock_, std::back_inserter(req), zmq::recv_flags::dontwait)) return;
    // RFC 27 request: version, request id, domain, address, identity, mechanism, credentials...
    const auto text = [&](size_t i) { return i < req.size() ? req[i].to_string() : std::string(); };
    std::string user_id;
    bool ok = req.size() == 7 && text(0) == "1.0" && text(2) == kZapDomain && text(5) == "CURVE" &&
              req[6].size() == 32;
    if (ok) {
      gossip::PeerId key;
      std::memcpy(key.data(), req[6].data(), 32);
      ok = policy_.admits(key);
      user_id = gossip::to_z85(key);
    }
    (ok ? admitted_ : denied_) += 1;
    const std::string reply[] = {
        "1.0", text(1), ok ? "200" : "400", ok ? "OK" : "key not admitted", ok ? user_id : "", ""};
    for (size_t i = 0; i < 6; ++i) {
      sock_.send(zmq::buffer(reply[i]), i + 1 < 6 ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  }
}

}  // namespace murmur::net
