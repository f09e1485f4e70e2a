// Tests for the metrics registry and its Prometheus text exposition (format 0.0.4), the domain
// cap, and the S2S/C2S metric structs (checked with promtool when it is installed).
#include "metrics/metrics.h"

#include <gtest/gtest.h>

#include <unistd.h>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

namespace waddle::metrics {
namespace {

using namespace std::chrono_literals;

class MetricsTest : public ::testing::Test {
 protected:
  Registry registry_;
};

TEST_F(MetricsTest, Render_SmallRegistryMatchesGolden) {
  auto& requests = registry_.counter_family(
      {.name = "test_requests_total", .help = "Requests.", .labels = {"method", "code"}});
  auto& temp = registry_.gauge_family({.name = "test_temperature", .help = "Degrees."});
  const double bounds[] = {0.5, 1, 2.5};
  auto& rtt = registry_.histogram_family(
      {.name = "test_rtt_seconds", .help = "Round trips.", .labels = {"peer"}}, bounds);
  registry_.gauge_family({.name = "test_unused", .help = "No series yet.", .labels = {"x"}});

  requests.get({"GET", "200"}).inc(3);
  requests.get({"GET", "404"}).inc();
  requests.get({"DELETE", "200"}).inc();
  temp.get({}).set(-1.5);
  auto& a = rtt.get({"a.example"});
  a.observe(0.25);
  a.observe(1.0);  // on a bound: counted in le="1"
  a.observe(7.0);

  EXPECT_EQ(registry_.render(),
            "# HELP test_requests_total Requests.\n"
            "# TYPE test_requests_total counter\n"
            "test_requests_total{method=\"DELETE\",code=\"200\"} 1\n"
            "test_requests_total{method=\"GET\",code=\"200\"} 3\n"
            "test_requests_total{method=\"GET\",code=\"404\"} 1\n"
            "# HELP test_temperature Degrees.\n"
            "# TYPE test_temperature gauge\n"
            "test_temperature -1.5\n"
            "# HELP test_rtt_seconds Round trips.\n"
            "# TYPE test_rtt_seconds histogram\n"
            "test_rtt_seconds_bucket{peer=\"a.example\",le=\"0.5\"} 1\n"
            "test_rtt_seconds_bucket{peer=\"a.example\",le=\"1\"} 2\n"
            "test_rtt_seconds_bucket{peer=\"a.example\",le=\"2.5\"} 2\n"
            "test_rtt_seconds_bucket{peer=\"a.example\",le=\"+Inf\"} 3\n"
            "test_rtt_seconds_sum{peer=\"a.example\"} 8.25\n"
            "test_rtt_seconds_count{peer=\"a.example\"} 3\n"
            "# HELP test_unused No series yet.\n"
            "# TYPE test_unused gauge\n");
}

TEST_F(MetricsTest, Render_UnlabelledMetricsStartAtZero) {
  registry_.counter_family({.name = "test_events_total", .help = "Events."});
  EXPECT_EQ(registry_.render(),
            "# HELP test_events_total Events.\n"
            "# TYPE test_events_total counter\n"
            "test_events_total 0\n");
}

TEST_F(MetricsTest, Escaping_LabelValuesAndHelp) {
  auto& f = registry_.counter_family(
      {.name = "test_total", .help = "Back\\slash and\nnewline \"kept\".", .labels = {"v"}});
  f.get({"a\"b\\c\nd"}).inc();
  EXPECT_EQ(registry_.render(),
            "# HELP test_total Back\\\\slash and\\nnewline \"kept\".\n"
            "# TYPE test_total counter\n"
            "test_total{v=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST_F(MetricsTest, Escaping_InvalidUtf8BecomesReplacementCharacter) {
  std::string out;
  append_label_value(out, "caf\xC3\xA9");  // valid: kept
  EXPECT_EQ(out, "caf\xC3\xA9");
  out.clear();
  append_label_value(out,
                     "a\xFF"
                     "b\xC0\xAF"
                     "c\xED\xA0\x80");  // bad byte, overlong, surrogate
  EXPECT_EQ(out,
            "a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD\xEF\xBF\xBD"
            "c\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  out.clear();
  append_label_value(out, "truncated\xE2\x82");
  EXPECT_EQ(out, "truncated\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST_F(MetricsTest, Values_Formatting) {
  auto fmt = [](double v) {
    std::string s;
    append_value(s, v);
    return s;
  };
  EXPECT_EQ(fmt(0), "0");
  EXPECT_EQ(fmt(-0.0), "0");
  EXPECT_EQ(fmt(42), "42");
  EXPECT_EQ(fmt(0.001), "0.001");
  EXPECT_EQ(fmt(0.0025), "0.0025");
  EXPECT_EQ(fmt(1e300), "1e+300");
  EXPECT_EQ(fmt(1.0 / 0.0), "+Inf");
  EXPECT_EQ(fmt(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(fmt(std::nan("")), "NaN");
}

TEST_F(MetricsTest, DomainCap_NewDomainsBeyondCapAggregateIntoOther) {
  auto& f = registry_.counter_family({.name = "test_stanzas_total",
                                      .help = "Stanzas.",
                                      .labels = {"domain", "kind"},
                                      .capped_label = "domain",
                                      .max_values = 2});
  f.get({"a.example", "x"}).inc();
  f.get({"b.example", "x"}).inc();
  EXPECT_FALSE(f.cap_reached());
  f.get({"b.example", "y"}).inc();  // a known domain with another kind is not a new domain
  f.get({"spam1.example", "x"}).inc();
  f.get({"spam2.example", "x"}).inc(2);
  f.get({"spam3.example", "y"}).inc();
  EXPECT_TRUE(f.cap_reached());
  f.get({"a.example", "x"}).inc();  // admitted domains keep their series

  EXPECT_EQ(f.size(), 5u);
  EXPECT_EQ(registry_.render(),
            "# HELP test_stanzas_total Stanzas.\n"
            "# TYPE test_stanzas_total counter\n"
            "test_stanzas_total{domain=\"a.example\",kind=\"x\"} 2\n"
            "test_stanzas_total{domain=\"b.example\",kind=\"x\"} 1\n"
            "test_stanzas_total{domain=\"b.example\",kind=\"y\"} 1\n"
            "test_stanzas_total{domain=\"other\",kind=\"x\"} 3\n"
            "test_stanzas_total{domain=\"other\",kind=\"y\"} 1\n");
}

TEST_F(MetricsTest, DomainCap_SpamWaveKeepsSeriesBounded) {
  S2sMetrics s2s(registry_, 10);
  for (int i = 0; i < 100000; ++i) {
    std::string domain = "spam" + std::to_string(i) + ".example";
    s2s.received(domain).inc();
    s2s.error(domain, S2sError::kPolicy);
    s2s.connection_opened(domain, Direction::kIn);
    s2s.connection_closed(domain, Direction::kIn);
  }
  EXPECT_EQ(s2s.stanzas_received.size(), 11u);  // 10 domains + "other"
  EXPECT_EQ(s2s.errors.size(), 11u);
  EXPECT_EQ(s2s.stanzas_received.get({"other"}).value(), 100000u - 10u);
  EXPECT_EQ(s2s.connections_active.get({"other", "in"}).value(), 0);
}

TEST_F(MetricsTest, DomainCap_GaugeIncDecStaysBalancedUnderOther) {
  S2sMetrics s2s(registry_, 1);
  s2s.queued("a.example", 2);
  s2s.queued("b.example", 3);  // beyond the cap
  s2s.queued("c.example", 4);  // beyond the cap
  EXPECT_EQ(s2s.queue.get({"other"}).value(), 7);
  s2s.dequeued("b.example", 3);
  EXPECT_EQ(s2s.queue.get({"other"}).value(), 4);
  s2s.dequeued("c.example", 4);
  s2s.dequeued("a.example", 2);
  EXPECT_EQ(s2s.queue.get({"a.example"}).value(), 0);
  EXPECT_EQ(s2s.queue.get({"other"}).value(), 0);
}

TEST_F(MetricsTest, DomainCap_ZeroPutsEverythingUnderOther) {
  S2sMetrics s2s(registry_, 0);
  s2s.sent("a.example").inc();
  s2s.sent("b.example").inc();
  EXPECT_EQ(s2s.stanzas_sent.size(), 1u);
  EXPECT_EQ(s2s.stanzas_sent.get({"other"}).value(), 2u);
}

TEST_F(MetricsTest, Histogram_BucketsAreCumulative) {
  auto& f = registry_.histogram_family({.name = "test_latency_seconds", .help = "Latency."},
                                       kLatencyBuckets);
  Histogram& h = f.get({});
  for (double v : {0.0005, 0.003, 0.003, 0.2, 0.9, 3.0, 11.0, 100.0}) h.observe(v);
  h.observe(std::nan(""));  // ignored
  h.observe(40ms);
  ASSERT_EQ(h.bounds().size(), std::size(kLatencyBuckets));
  std::uint64_t previous = 0;
  for (std::size_t i = 0; i <= h.bounds().size(); ++i) {
    EXPECT_GE(h.cumulative(i), previous) << "bucket " << i;
    previous = h.cumulative(i);
  }
  EXPECT_EQ(h.cumulative(0), 1u);   // le 0.001
  EXPECT_EQ(h.cumulative(2), 3u);   // le 0.005
  EXPECT_EQ(h.cumulative(5), 4u);   // le 0.05 (40 ms)
  EXPECT_EQ(h.cumulative(7), 5u);   // le 0.25
  EXPECT_EQ(h.cumulative(12), 7u);  // le 10
  EXPECT_EQ(h.cumulative(13), h.count());
  EXPECT_EQ(h.count(), 9u);
  EXPECT_DOUBLE_EQ(h.sum(), 0.0005 + 0.003 + 0.003 + 0.2 + 0.9 + 3.0 + 11.0 + 100.0 + 0.04);

  std::string text = registry_.render();
  EXPECT_NE(text.find("test_latency_seconds_bucket{le=\"0.001\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("test_latency_seconds_bucket{le=\"10\"} 7\n"), std::string::npos);
  EXPECT_NE(text.find("test_latency_seconds_bucket{le=\"+Inf\"} 9\n"), std::string::npos);
  EXPECT_NE(text.find("test_latency_seconds_count 9\n"), std::string::npos);
}

TEST_F(MetricsTest, Counter_NeverDecreases) {
  Counter c;
  std::uint64_t last = 0;
  for (std::uint64_t n : {0u, 1u, 5u, 0u, 1000u}) {
    c.inc(n);
    EXPECT_GE(c.value(), last);
    last = c.value();
  }
  EXPECT_EQ(c.value(), 1006u);
  // The API has no way down: inc() takes an unsigned amount, and there is no set() or dec().
  static_assert(std::is_unsigned_v<decltype(c.value())>);
}

TEST_F(MetricsTest, Lookup_ReturnsTheSameSeries) {
  auto& f = registry_.counter_family({.name = "test_total", .help = "h", .labels = {"a", "b"}});
  Counter& c = f.get({"x", "y"});
  // Values are length-prefixed in the key: ("xy","") and ("x","y") are different series.
  EXPECT_NE(&c, &f.get({"xy", ""}));
  EXPECT_EQ(&c, &f.get({"x", "y"}));
  for (int i = 0; i < 1000; ++i) f.get({std::to_string(i), "z"});  // rehashes
  EXPECT_EQ(&c, &f.get({"x", "y"}));                               // references stay valid
}

TEST_F(MetricsTest, Declaration_RejectsInvalidFamilies) {
  EXPECT_THROW(registry_.counter_family({.name = "bad name_total", .help = "h"}),
               std::invalid_argument);
  EXPECT_THROW(registry_.counter_family({.name = "no_suffix", .help = "h"}), std::invalid_argument);
  EXPECT_THROW(registry_.gauge_family({.name = "g", .help = "h", .labels = {"__reserved"}}),
               std::invalid_argument);
  EXPECT_THROW(registry_.gauge_family({.name = "g", .help = "h", .labels = {"a", "a"}}),
               std::invalid_argument);
  EXPECT_THROW(
      registry_.gauge_family({.name = "g", .help = "h", .labels = {"a"}, .capped_label = "domain"}),
      std::invalid_argument);
  const double bad[] = {1, 0.5};
  EXPECT_THROW(registry_.histogram_family({.name = "h", .help = "h"}, bad), std::invalid_argument);
  const double ok[] = {1};
  EXPECT_THROW(registry_.histogram_family({.name = "h", .help = "h", .labels = {"le"}}, ok),
               std::invalid_argument);
  registry_.gauge_family({.name = "g", .help = "h"});
  EXPECT_THROW(registry_.gauge_family({.name = "g", .help = "h"}), std::invalid_argument);
}

void populate(S2sMetrics& s2s, C2sMetrics& c2s) {
  s2s.connection_opened("prosody.example", Direction::kOut);
  s2s.connection_opened("prosody.example", Direction::kIn);
  s2s.connection_opened("ejabberd.example", Direction::kOut);
  s2s.connection_closed("ejabberd.example", Direction::kOut);
  s2s.sent("prosody.example").inc();
  s2s.received("prosody.example").inc();
  s2s.received("we\"ird\\dom\nain").inc();
  s2s.error("unreachable.example", S2sError::kDns);
  s2s.error("ejabberd.example", S2sError::kTimeout);
  s2s.ping_rtt("prosody.example", 12ms);
  s2s.ping_rtt("prosody.example", 1500ms);
  s2s.queued("slow.example", 3);
  s2s.dequeued("slow.example", 1);
  s2s.bounced("unreachable.example", "remote-server-not-found");
  s2s.authenticated("prosody.example", Direction::kOut, AuthMethod::kSaslExternal);
  s2s.authenticated("prosody.example", Direction::kIn, AuthMethod::kDialbackMultiplexed);
  s2s.dialback_verify("ejabberd.example", false);
  s2s.stream_closed("ejabberd.example", Direction::kOut, CloseReason::kPingTimeout);
  s2s.paced("busy.example");
  s2s.paced_seconds("busy.example", 7);
  for (int i = 0; i < 10; ++i) s2s.received("spam" + std::to_string(i) + ".example").inc();
  c2s.session_opened();
  c2s.auth_failure();
  c2s.stanza_received();
  c2s.offline_message_stored();
  c2s.offline_message_refused("busy");
  c2s.stream_management("resumed");
  c2s.csi("held");
  c2s.csi("overflow_bytes", 2);
  c2s.stream_management("overflow_bytes");
  c2s.archive("archived", 3);
  c2s.archive_query("ok");
  c2s.room_archive("archived", 2);
  c2s.archive_paced_source();
  c2s.room_archive_query("error");
  c2s.spam_report("spam");
  c2s.blocked("inbound");
  c2s.blocklists_cached.inc();
  c2s.push("sent");
  c2s.push_registrations.inc();
  c2s.caps_queries.get({"ok"}).inc();
  c2s.caps_cached.set(1);
  c2s.pep_requests.get({"publish", "ok"}).inc();
  c2s.pep_notifications.inc(2);
}

TEST_F(MetricsTest, S2sMetrics_NamesAndLabels) {
  S2sMetrics s2s(registry_, 100);
  C2sMetrics c2s(registry_);
  populate(s2s, c2s);
  std::string text = registry_.render();
  for (const char* line : {
           "# TYPE waddle_s2s_connections_active gauge\n",
           "waddle_s2s_connections_active{domain=\"prosody.example\",direction=\"in\"} 1\n",
           "waddle_s2s_connections_active{domain=\"ejabberd.example\",direction=\"out\"} 0\n",
           "# TYPE waddle_s2s_connections_total counter\n",
           "waddle_s2s_connections_total{domain=\"ejabberd.example\",direction=\"out\"} 1\n",
           "waddle_s2s_stanzas_sent_total{domain=\"prosody.example\"} 1\n",
           "waddle_s2s_stanzas_received_total{domain=\"we\\\"ird\\\\dom\\nain\"} 1\n",
           "waddle_s2s_errors_total{domain=\"unreachable.example\",kind=\"dns\"} 1\n",
           "waddle_s2s_errors_total{domain=\"ejabberd.example\",kind=\"timeout\"} 1\n",
           "# TYPE waddle_s2s_latency_seconds histogram\n",
           "waddle_s2s_latency_seconds_bucket{domain=\"prosody.example\",le=\"0.025\"} 1\n",
           "waddle_s2s_latency_seconds_bucket{domain=\"prosody.example\",le=\"2.5\"} 2\n",
           "waddle_s2s_latency_seconds_sum{domain=\"prosody.example\"} 1.512\n",
           "waddle_s2s_latency_seconds_count{domain=\"prosody.example\"} 2\n",
           "waddle_s2s_queue_stanzas{domain=\"slow.example\"} 2\n",
           "waddle_s2s_bounced_total{domain=\"unreachable.example\","
           "condition=\"remote-server-not-found\"} 1\n",
           "waddle_s2s_authenticated_total{domain=\"prosody.example\",direction=\"out\","
           "method=\"sasl_external\"} 1\n",
           "waddle_s2s_authenticated_total{domain=\"prosody.example\",direction=\"in\","
           "method=\"dialback_multiplexed\"} 1\n",
           "waddle_s2s_dialback_verify_total{domain=\"ejabberd.example\",result=\"invalid\"} 1\n",
           "waddle_s2s_streams_closed_total{domain=\"ejabberd.example\",direction=\"out\","
           "reason=\"ping_timeout\"} 1\n",
           "# TYPE waddle_s2s_paced_total counter\n",
           "waddle_s2s_paced_total{domain=\"busy.example\"} 1\n",
           "# TYPE waddle_s2s_paced_seconds_total counter\n",
           "waddle_s2s_paced_seconds_total{domain=\"busy.example\"} 7\n",
           "waddle_c2s_sessions_active 1\n",
           "waddle_c2s_auth_failures_total 1\n",
           "waddle_c2s_stanzas_received_total 1\n",
           "waddle_offline_messages_stored_total 1\n",
           "waddle_offline_messages_refused_total{reason=\"busy\"} 1\n",
           "waddle_c2s_stream_management_total{event=\"resumed\"} 1\n",
           "waddle_c2s_csi_stanzas_total{outcome=\"held\"} 1\n",
           "waddle_c2s_csi_stanzas_total{outcome=\"overflow_bytes\"} 2\n",
           "waddle_c2s_stream_management_total{event=\"overflow_bytes\"} 1\n",
           "waddle_mam_messages_total{outcome=\"archived\"} 3\n",
           "waddle_mam_queries_total{result=\"ok\"} 1\n",
           "waddle_mam_paced_total 1\n",
           "waddle_muc_mam_messages_total{outcome=\"archived\"} 2\n",
           "waddle_muc_mam_queries_total{result=\"error\"} 1\n",
           "waddle_spam_reports_total{reason=\"spam\"} 1\n",
           "waddle_blocked_stanzas_total{direction=\"inbound\"} 1\n",
           "waddle_blocklists_cached 1\n",
           "waddle_push_notifications_total{outcome=\"sent\"} 1\n",
           "waddle_push_registrations 1\n",
           "waddle_caps_queries_total{result=\"ok\"} 1\n",
           "waddle_caps_cached 1\n",
           "waddle_pep_requests_total{request=\"publish\",result=\"ok\"} 1\n",
           "waddle_pep_notifications_total 2\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\nnot in:\n" << text;
  }
}

// External components (XEP-0114): one series per configured domain.
TEST_F(MetricsTest, ComponentMetrics_RenderByDomain) {
  Registry r;
  ComponentMetrics m(r);
  m.connected.get({"gw.example.org"}).set(1);
  m.handshakes.get({"gw.example.org", "not_authorized"}).inc();
  m.stanzas.get({"gw.example.org", "in"}).inc(3);
  m.bounced.get({"gw.example.org"}).inc();
  const std::string text = r.render();
  for (const char* line : {
           "# TYPE waddle_component_connected gauge\n",
           "waddle_component_connected{domain=\"gw.example.org\"} 1\n",
           "waddle_component_handshakes_total{domain=\"gw.example.org\",result=\"not_authorized\"} "
           "1\n",
           "waddle_component_stanzas_total{domain=\"gw.example.org\",direction=\"in\"} 3\n",
           "waddle_component_bounced_total{domain=\"gw.example.org\"} 1\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\nnot in:\n" << text;
  }
}

TEST_F(MetricsTest, S2sMetrics_ErrorKindNames) {
  EXPECT_EQ(to_string(S2sError::kDns), "dns");
  EXPECT_EQ(to_string(S2sError::kConnectionRefused), "connection_refused");
  EXPECT_EQ(to_string(S2sError::kTls), "tls");
  EXPECT_EQ(to_string(S2sError::kDialback), "dialback");
  EXPECT_EQ(to_string(S2sError::kStreamError), "stream_error");
  EXPECT_EQ(to_string(S2sError::kRouting), "routing");
  EXPECT_EQ(to_string(S2sError::kPolicy), "policy");
  EXPECT_EQ(to_string(S2sError::kRateLimit), "rate_limit");
  EXPECT_EQ(to_string(S2sError::kTimeout), "timeout");
  EXPECT_EQ(to_string(Direction::kIn), "in");
  EXPECT_EQ(to_string(Direction::kOut), "out");
  EXPECT_EQ(to_string(AuthMethod::kSaslExternal), "sasl_external");
  EXPECT_EQ(to_string(AuthMethod::kDialback), "dialback");
  EXPECT_EQ(to_string(AuthMethod::kDialbackMultiplexed), "dialback_multiplexed");
  EXPECT_EQ(to_string(CloseReason::kPeer), "peer");
  EXPECT_EQ(to_string(CloseReason::kIdle), "idle");
  EXPECT_EQ(to_string(CloseReason::kPingTimeout), "ping_timeout");
  EXPECT_EQ(to_string(CloseReason::kPolicy), "policy");
  EXPECT_EQ(to_string(CloseReason::kRateLimit), "rate_limit");
  EXPECT_EQ(to_string(CloseReason::kShutdown), "shutdown");
  EXPECT_EQ(to_string(CloseReason::kError), "error");
}

TEST_F(MetricsTest, S2sMetrics_AuthenticationsVerifiesAndCloses) {
  S2sMetrics s2s(registry_, 100);
  s2s.authenticated("b.example", Direction::kOut, AuthMethod::kSaslExternal);
  s2s.authenticated("b.example", Direction::kOut, AuthMethod::kDialbackMultiplexed);
  s2s.authenticated("b.example", Direction::kOut, AuthMethod::kDialbackMultiplexed);
  s2s.authenticated("c.example", Direction::kIn, AuthMethod::kDialback);
  s2s.dialback_verify("c.example", true);
  s2s.dialback_verify("c.example", false);
  s2s.dialback_verify("c.example", true);
  for (auto r :
       {CloseReason::kPeer, CloseReason::kIdle, CloseReason::kPingTimeout, CloseReason::kPolicy,
        CloseReason::kRateLimit, CloseReason::kShutdown, CloseReason::kError})
    s2s.stream_closed("b.example", Direction::kIn, r);
  s2s.stream_closed("b.example", Direction::kOut, CloseReason::kIdle);
  s2s.stream_closed("b.example", Direction::kOut, CloseReason::kIdle);
  s2s.paced("c.example");
  s2s.paced_seconds("c.example", 3);
  s2s.paced_seconds("c.example", 1);
  s2s.held_back("c.example");
  EXPECT_EQ(registry_.render(),
            "# HELP waddle_s2s_connections_active Open server-to-server streams.\n"
            "# TYPE waddle_s2s_connections_active gauge\n"
            "# HELP waddle_s2s_connections_total Server-to-server streams established.\n"
            "# TYPE waddle_s2s_connections_total counter\n"
            "# HELP waddle_s2s_stanzas_sent_total Stanzas sent to remote servers.\n"
            "# TYPE waddle_s2s_stanzas_sent_total counter\n"
            "# HELP waddle_s2s_stanzas_received_total Stanzas accepted from remote servers.\n"
            "# TYPE waddle_s2s_stanzas_received_total counter\n"
            "# HELP waddle_s2s_errors_total Server-to-server failures by kind.\n"
            "# TYPE waddle_s2s_errors_total counter\n"
            "# HELP waddle_s2s_latency_seconds Round-trip time of XEP-0199 pings to remote "
            "servers.\n"
            "# TYPE waddle_s2s_latency_seconds histogram\n"
            "# HELP waddle_s2s_queue_stanzas Stanzas waiting for an outbound stream to "
            "authenticate.\n"
            "# TYPE waddle_s2s_queue_stanzas gauge\n"
            "# HELP waddle_s2s_bounced_total Stanzas returned to their sender with an error.\n"
            "# TYPE waddle_s2s_bounced_total counter\n"
            "# HELP waddle_s2s_authenticated_total Domain pairs authenticated on "
            "server-to-server streams, by method.\n"
            "# TYPE waddle_s2s_authenticated_total counter\n"
            "waddle_s2s_authenticated_total{domain=\"b.example\",direction=\"out\","
            "method=\"dialback_multiplexed\"} 2\n"
            "waddle_s2s_authenticated_total{domain=\"b.example\",direction=\"out\","
            "method=\"sasl_external\"} 1\n"
            "waddle_s2s_authenticated_total{domain=\"c.example\",direction=\"in\","
            "method=\"dialback\"} 1\n"
            "# HELP waddle_s2s_dialback_verify_total Dialback keys checked for remote servers "
            "that asked (authoritative role).\n"
            "# TYPE waddle_s2s_dialback_verify_total counter\n"
            "waddle_s2s_dialback_verify_total{domain=\"c.example\",result=\"invalid\"} 1\n"
            "waddle_s2s_dialback_verify_total{domain=\"c.example\",result=\"valid\"} 2\n"
            "# HELP waddle_s2s_streams_closed_total Server-to-server streams closed, by "
            "reason.\n"
            "# TYPE waddle_s2s_streams_closed_total counter\n"
            "waddle_s2s_streams_closed_total{domain=\"b.example\",direction=\"in\","
            "reason=\"error\"} 1\n"
            "waddle_s2s_streams_closed_total{domain=\"b.example\",direction=\"in\","
            "reason=\"idle\"} 1\n"
            "waddle_s2s_streams_closed_total{domain=\"b.example\",direction=\"in\","
            "reason=\"peer\"} 1\n"
            "waddle_s2s_streams_closed_total{domain=\"b.example\",direction=\"in\","
            "reason=\"ping_timeout\"} 1\n"
            "waddle_s2s_streams_closed_total{domain=\"b.example\",direction=\"in\","
            "reason=\"policy\"} 1\n"
            "waddle_s2s_streams_closed_total{domain=\"b.example\",direction=\"in\","
            "reason=\"rate_limit\"} 1\n"
            "waddle_s2s_streams_closed_total{domain=\"b.example\",direction=\"in\","
            "reason=\"shutdown\"} 1\n"
            "waddle_s2s_streams_closed_total{domain=\"b.example\",direction=\"out\","
            "reason=\"idle\"} 2\n"
            "# HELP waddle_s2s_stream_management_total Server-to-server streams with stream "
            "management (XEP-0198) enabled.\n"
            "# TYPE waddle_s2s_stream_management_total counter\n"
            "# HELP waddle_s2s_unacked_stanzas Stanzas written to remote servers and not "
            "acknowledged yet (XEP-0198).\n"
            "# TYPE waddle_s2s_unacked_stanzas gauge\n"
            "# HELP waddle_s2s_resent_total Unacknowledged stanzas of an ended stream sent again "
            "on the next one.\n"
            "# TYPE waddle_s2s_resent_total counter\n"
            "# HELP waddle_s2s_paced_total Times reading from a remote domain began to be slowed "
            "down to its stanza or byte rate (pacing; nothing is dropped).\n"
            "# TYPE waddle_s2s_paced_total counter\n"
            "waddle_s2s_paced_total{domain=\"c.example\"} 1\n"
            "# HELP waddle_s2s_paced_seconds_total Whole seconds during which reading from a "
            "remote domain was slowed down to its stanza or byte rate.\n"
            "# TYPE waddle_s2s_paced_seconds_total counter\n"
            "waddle_s2s_paced_seconds_total{domain=\"c.example\"} 4\n"
            "# HELP waddle_s2s_held_back_total Times an inbound stream from a remote domain "
            "stopped being read because what it sent filled the queue of a link still being set "
            "up (queue_size; nothing is dropped).\n"
            "# TYPE waddle_s2s_held_back_total counter\n"
            "waddle_s2s_held_back_total{domain=\"c.example\"} 1\n"
            "# HELP waddle_s2s_write_limit_total Server-to-server streams dropped because the "
            "peer did not read what was written (s2s.max_write_queue, s2s.write_stall_timeout) "
            "or did not acknowledge it (s2s.max_unacked); outbound links fail over.\n"
            "# TYPE waddle_s2s_write_limit_total counter\n");
}

TEST_F(MetricsTest, S2sMetrics_NewFamiliesAreCappedByDomain) {
  S2sMetrics s2s(registry_, 1);
  s2s.authenticated("a.example", Direction::kIn, AuthMethod::kDialback);
  s2s.authenticated("b.example", Direction::kIn, AuthMethod::kDialback);
  s2s.dialback_verify("a.example", true);
  s2s.dialback_verify("b.example", true);
  s2s.stream_closed("a.example", Direction::kIn, CloseReason::kPeer);
  s2s.stream_closed("b.example", Direction::kIn, CloseReason::kPeer);
  s2s.paced("a.example");
  s2s.paced("b.example");
  s2s.paced_seconds("a.example", 1);
  s2s.paced_seconds("b.example", 2);
  EXPECT_EQ(s2s.authentications.get({"other", "in", "dialback"}).value(), 1u);
  EXPECT_EQ(s2s.paced_total.get({"other"}).value(), 1u);
  EXPECT_EQ(s2s.paced_time.get({"other"}).value(), 2u);
  EXPECT_EQ(s2s.dialback_verifies.get({"other", "valid"}).value(), 1u);
  EXPECT_EQ(s2s.streams_closed.get({"other", "in", "peer"}).value(), 1u);
  EXPECT_EQ(s2s.authentications.size(), 2u);
}

TEST_F(MetricsTest, S2sMetrics_GaugesBackToZeroAfterTeardown) {
  S2sMetrics s2s(registry_, 100);
  C2sMetrics c2s(registry_);
  s2s.connection_opened("a.example", Direction::kOut);
  s2s.queued("a.example", 5);
  c2s.session_opened();
  s2s.dequeued("a.example", 5);
  s2s.connection_closed("a.example", Direction::kOut);
  c2s.session_closed();
  EXPECT_EQ(s2s.connections_active.get({"a.example", "out"}).value(), 0);
  EXPECT_EQ(s2s.queue.get({"a.example"}).value(), 0);
  EXPECT_EQ(c2s.sessions_active.value(), 0);
}

// `promtool check metrics` (Debian package `prometheus`) reads the exposition on stdin and
// reports format errors and naming-convention problems; both must be absent.
TEST_F(MetricsTest, Exposition_PassesPromtool) {
  const char* promtool = "/usr/bin/promtool";
  if (access(promtool, X_OK) != 0) GTEST_SKIP() << "promtool not installed (package prometheus)";
  S2sMetrics s2s(registry_, 5);  // small cap: "other" shows up too
  C2sMetrics c2s(registry_);
  populate(s2s, c2s);
  std::string text = registry_.render();

  auto dir = std::filesystem::temp_directory_path();
  auto input = dir / ("waddle_metrics_" + std::to_string(getpid()) + ".prom");
  auto output = dir / ("waddle_metrics_" + std::to_string(getpid()) + ".out");
  {
    std::ofstream f(input, std::ios::binary);
    f << text;
  }
  std::string cmd = std::string("timeout 30 ") + promtool + " check metrics < " + input.string() +
                    " > " + output.string() + " 2>&1";
  int rc = std::system(cmd.c_str());
  std::ifstream f(output);
  std::string report((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::filesystem::remove(input);
  std::filesystem::remove(output);
  EXPECT_EQ(rc, 0) << report << "\n" << text;
  EXPECT_EQ(report, "") << text;
}

}  // namespace
}  // namespace waddle::metrics

namespace waddle::metrics {
namespace {

// The web listener's and SIGHUP's series (docs/metrics.md).
TEST(WebMetricsTest, RenderWithTheirLabels) {
  Registry r;
  WebMetrics m(r);
  ListenerMetrics l(r);
  m.requests.get({"websocket", "101"}).inc();
  m.upgrades.get({"origin"}).inc();
  m.websocket_sessions.inc();
  m.upload_slots.get({"too_large"}).inc();
  m.upload_puts.get({"ok"}).inc();
  m.upload_bytes.get({"in"}).inc(5);
  m.upload_files.set(1);
  m.upload_stored_bytes.set(5);
  l.reloads.get({"certificates", "failed"}).inc();
  const std::string text = r.render();
  for (const char* line : {
           "waddle_http_requests_total{endpoint=\"websocket\",code=\"101\"} 1\n",
           "waddle_websocket_upgrades_total{result=\"origin\"} 1\n",
           "waddle_websocket_sessions 1\n",
           "waddle_upload_slots_total{result=\"too_large\"} 1\n",
           "waddle_upload_puts_total{result=\"ok\"} 1\n",
           "waddle_upload_bytes_total{direction=\"in\"} 5\n",
           "waddle_upload_files 1\n",
           "waddle_upload_stored_bytes 5\n",
           "waddle_reloads_total{what=\"certificates\",result=\"failed\"} 1\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\nnot in:\n" << text;
  }
}

// The status page's notes: the last authentication per domain and direction, bounded; the
// last failures with their reasons, bounded.
TEST(S2sMetricsNotes, LinksAndFailuresAreBounded) {
  Registry r;
  S2sMetrics m(r, 2);
  m.authenticated("a.example", Direction::kOut, AuthMethod::kSaslExternal, "TLSv1.3 X");
  m.authenticated("a.example", Direction::kOut, AuthMethod::kDialback);
  const auto& note = m.link_notes().at({"a.example", "out"});
  EXPECT_EQ(note.method, "dialback");
  EXPECT_EQ(note.tls, "TLSv1.3 X");  // kept when the new one says nothing
  for (int i = 0; i < 10; ++i)
    m.authenticated("d" + std::to_string(i) + ".example", Direction::kIn, AuthMethod::kDialback);
  EXPECT_LE(m.link_notes().size(), 4u);
  for (int i = 0; i < 60; ++i)
    m.failure("x.example", S2sError::kDns, "no records " + std::to_string(i));
  EXPECT_EQ(m.recent_failures().size(), S2sMetrics::kRecentFailures);
  EXPECT_EQ(m.recent_failures().back().text, "no records 59");
  EXPECT_EQ(m.recent_failures().back().kind, "dns");
}

}  // namespace
}  // namespace waddle::metrics
