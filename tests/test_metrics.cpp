// /metrics: labelled counter families, peers' labels bounded to the allow-list, the transport's
// counters as operators see them, and the endpoint serving them over HTTP.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "gossip/peer_id.h"
#include "node/net/keys.h"
#include "node/net/metrics.h"
#include "node/net/metrics_http.h"
#include "node/net/transport.h"
#include "tests/test_util.h"

namespace murmur::net {
namespace {

namespace g = murmur::gossip;
using test::http_get;

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

TEST(Metrics, CounterFamilyRendersOneSamplePerLabelSet) {
  CounterFamily f("murmur_x_total", "What x counts", {"peer", "reason"});
  f.add({"a", "nan"});
  f.add({"a", "nan"}, 2);
  f.set({"b", "say \"hi\"\\\n"}, 7);
  EXPECT_EQ(f.value({"a", "nan"}), 3u);
  EXPECT_EQ(f.value({"c", "nan"}), 0u);
  EXPECT_THROW(f.add({"a"}), std::invalid_argument);
  std::string out;
  f.render(out);
  EXPECT_EQ(out,
            "# HELP murmur_x_total What x counts\n# TYPE murmur_x_total counter\n"
            "murmur_x_total{peer=\"a\",reason=\"nan\"} 3\n"
            "murmur_x_total{peer=\"b\",reason=\"say \\\"hi\\\"\\\\\\n\"} 7\n");
  CounterFamily plain("murmur_y_total", "y", {});
  out.clear();
  plain.render(out);
  EXPECT_TRUE(has_line(out, "murmur_y_total 0")) << out;
}

TEST(Metrics, RegistryKeepsOneFamilyPerNameAndLabelsOnlyNamedPeers) {
  const Keys named = generate_keys(), stranger = generate_keys();
  MetricsRegistry m({named.id});
  EXPECT_EQ(m.peer_label(named.id), g::short_name(named.id));
  EXPECT_EQ(m.peer_label(stranger.id), kUnknownPeer);
  CounterFamily& f = m.counters("murmur_training_rejected_total", "help", {"peer", "reason"});
  EXPECT_EQ(&m.counters("murmur_training_rejected_total", "help", {"peer", "reason"}), &f);
  EXPECT_THROW(m.counters("murmur_training_rejected_total", "help", {"peer"}), std::logic_error);
  f.add({m.peer_label(stranger.id), "norm_outlier"});
  EXPECT_TRUE(
      has_line(m.render(), "murmur_training_rejected_total{peer=\"unknown\",reason=\"norm_outlier\"} 1"));
}

// Strangers are summed as "unknown", however many keys they use: the label set stays bounded.
TEST(Metrics, TransportCountersByNamedPeerAndReason) {
  const Keys named = generate_keys();
  TransportCounters c;
  c.peers[named.id].rejected = {{"oversize", 2}};
  for (int i = 0; i < 100; ++i) c.peers[generate_keys().id].rejected = {{"no_link", 1}};
  c.total.rejected = {{"oversize", 3}, {"no_link", 100}};  // one oversize frame without a key
  c.disconnects = 4;
  c.zap_admitted = 6;
  c.zap_denied = 5;
  MetricsRegistry m({named.id});
  export_counters(c, m);
  const std::string text = m.render();
  const std::string peer = g::short_name(named.id);
  for (const std::string& line :
       {"murmur_transport_dropped_total{peer=\"" + peer + "\",reason=\"oversize\"} 2",
        std::string("murmur_transport_dropped_total{peer=\"unknown\",reason=\"oversize\"} 1"),
        std::string("murmur_transport_dropped_total{peer=\"unknown\",reason=\"no_link\"} 100"),
        std::string("murmur_transport_disconnects_total 4"), std::string("murmur_zap_admitted_total 6"),
        std::string("murmur_zap_denied_total 5")})
    EXPECT_TRUE(has_line(text, line)) << line << "\n" << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2 * 4 + 3 + 3) << text;  // headers + samples
  c.total.rejected["oversize"] = 5;  // mirrored again: the counters grow
  export_counters(c, m);
  EXPECT_TRUE(has_line(m.render(), "murmur_transport_dropped_total{peer=\"unknown\",reason=\"oversize\"} 3"));
}

TEST(Metrics, ServerAnswersMetricsAndNothingElse) {
  MetricsRegistry m;
  m.counters("murmur_zap_denied_total", "help", {}).set({}, 2);
  MetricsServer server(0, [&] { return m.render(); });
  const std::string ok = http_get(server.port(), "/metrics");
  EXPECT_EQ(ok.rfind("HTTP/1.1 200", 0), 0u) << ok;
  EXPECT_NE(ok.find("\r\n\r\n# HELP murmur_zap_denied_total help\n"), std::string::npos) << ok;
  EXPECT_TRUE(has_line(ok, "murmur_zap_denied_total 2")) << ok;
  EXPECT_EQ(http_get(server.port(), "/").rfind("HTTP/1.1 404", 0), 0u);
}

}  // namespace
}  // namespace murmur::net
