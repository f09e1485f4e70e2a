// The operator's status page (web/logic/status_page).
#include "web/logic/status_page.h"

#include <gtest/gtest.h>

namespace waddle::web {
namespace {

TEST(TrafficHistory, DifferencesRatesAndWindow) {
  TrafficHistory h;
  EXPECT_EQ(h.rate("a.example").sent, 0);
  h.sample(1000, {{"a.example", {10, 5, 0}}});
  h.sample(1030, {{"a.example", {70, 35, 1}}, {"b.example", {3, 0, 2}}});
  h.sample(1060, {{"a.example", {70, 65, 1}}, {"b.example", {3, 0, 2}}});
  auto s = h.series("a.example");
  EXPECT_EQ(s.sent, (std::vector<double>{60, 0}));
  EXPECT_EQ(s.received, (std::vector<double>{30, 30}));
  EXPECT_EQ(s.errors, (std::vector<double>{1, 0}));
  EXPECT_EQ(h.interval(), 30);
  EXPECT_DOUBLE_EQ(h.rate("a.example").received, 1.0);
  EXPECT_EQ(h.window("a.example").sent, 60);
  // A domain first seen in the second sample counts from zero.
  EXPECT_EQ(h.series("b.example").errors, (std::vector<double>{2, 0}));
  for (int i = 0; i < 500; ++i) h.sample(1090 + 30 * i, {});
  EXPECT_EQ(h.series("a.example").sent.size(), TrafficHistory::kSamples - 1);
}

TEST(StatusPage, ShowsLinksFailuresAndRoomsEscaped) {
  StatusData d;
  d.version = "0.1.0";
  d.now = 1'800'000'000;
  d.started = d.now - 3600;
  d.local_domains = {"example.org"};
  d.links.push_back(
      {"peer.example", "out", 1, "sasl_external", "TLSv1.3 TLS_AES_256_GCM_SHA384", d.now - 60});
  StatusDomain ok;
  ok.domain = "peer.example";
  ok.connected = true;
  ok.series.sent = {1, 2, 3};
  StatusDomain bad;
  bad.domain = "down.example";
  bad.last_failure = d.now - 30;
  d.domains = {bad, ok};
  d.failures.push_back({d.now - 30, "down.example", "dns", "no <SRV> & no A record"});
  d.rooms.push_back({"lobby@conference.example.org", 2, 1, {"peer.example"}});
  const std::string page = render_status(d);
  EXPECT_NE(page.find("<title>Waddle status</title>"), std::string::npos);
  EXPECT_NE(page.find("<tr data-domain=\"peer.example\" data-direction=\"out\">"),
            std::string::npos);
  EXPECT_NE(page.find("sasl_external"), std::string::npos);
  EXPECT_NE(page.find("TLSv1.3"), std::string::npos);
  EXPECT_NE(page.find("<li data-domain=\"down.example\">"), std::string::npos);
  EXPECT_NE(page.find("no &lt;SRV&gt; &amp; no A record"), std::string::npos);
  EXPECT_EQ(page.find("no <SRV>"), std::string::npos);
  EXPECT_NE(page.find("class=\"failing\""), std::string::npos);
  EXPECT_NE(page.find("class=\"ok\">connected"), std::string::npos);
  EXPECT_NE(page.find("data-room=\"lobby@conference.example.org\""), std::string::npos);
  EXPECT_NE(page.find("<polyline"), std::string::npos);
  EXPECT_EQ(page.find("<script"), std::string::npos);
}

TEST(StatusPage, EmptyServer) {
  StatusData d;
  d.now = d.started = 1'800'000'000;
  const std::string page = render_status(d);
  EXPECT_NE(page.find("No server-to-server stream is open."), std::string::npos);
  EXPECT_NE(page.find("<ul id=\"failures\"></ul>"), std::string::npos);
}

}  // namespace
}  // namespace waddle::web
