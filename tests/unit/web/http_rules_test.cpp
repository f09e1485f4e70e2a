// Origins, announced URLs and host-meta (web/logic/http_rules).
#include "web/logic/http_rules.h"

#include <gtest/gtest.h>

#include "xml/parser.h"

namespace waddle::web {
namespace {

TEST(ValidHost, TakesNamesAddressesAndPorts) {
  EXPECT_TRUE(valid_host("example.org"));
  EXPECT_TRUE(valid_host("example.org:5443"));
  EXPECT_TRUE(valid_host("127.0.0.1:5380"));
  EXPECT_TRUE(valid_host("[::1]:5443"));
  EXPECT_TRUE(valid_host("[::1]"));
  EXPECT_FALSE(valid_host(""));
  EXPECT_FALSE(valid_host("exa mple.org"));
  EXPECT_FALSE(valid_host("example.org:"));
  EXPECT_FALSE(valid_host("example.org:54430x"));
  EXPECT_FALSE(valid_host("evil.org/\"><script>"));
  EXPECT_FALSE(valid_host("[::1"));
  EXPECT_FALSE(valid_host("[::1]x"));
}

TEST(OriginOf, IsSchemeAndHostLowerCasedWithoutDefaultPort) {
  EXPECT_EQ(origin_of("https://Chat.Example.org/path"), "https://chat.example.org");
  EXPECT_EQ(origin_of("https://chat.example.org:443"), "https://chat.example.org");
  EXPECT_EQ(origin_of("http://localhost:5380"), "http://localhost:5380");
  EXPECT_FALSE(origin_of("ftp://example.org"));
  EXPECT_FALSE(origin_of("https://"));
}

TEST(OriginAllowed, SameOriginByDefault) {
  RequestSite site{true, "chat.example.org:5443", ""};
  EXPECT_TRUE(origin_allowed("", site, {}));  // not a browser
  EXPECT_TRUE(origin_allowed("https://chat.example.org:5443", site, {}));
  EXPECT_TRUE(origin_allowed("https://CHAT.example.org:5443", site, {}));
  EXPECT_FALSE(origin_allowed("http://chat.example.org:5443", site, {}));  // scheme differs
  EXPECT_FALSE(origin_allowed("https://evil.example.net", site, {}));
  EXPECT_FALSE(origin_allowed("null", site, {}));
  RequestSite proxied{true, "127.0.0.1:5380", "https://chat.example.org/"};
  EXPECT_TRUE(origin_allowed("https://chat.example.org", proxied, {}));
  EXPECT_FALSE(origin_allowed("https://other.example.org", proxied, {}));
}

TEST(OriginAllowed, ConfiguredListOrAny) {
  RequestSite site{true, "chat.example.org", ""};
  const std::vector<std::string> list{"https://app.example.net", "http://localhost:8080"};
  EXPECT_TRUE(origin_allowed("https://app.example.net", site, list));
  EXPECT_TRUE(origin_allowed("http://localhost:8080", site, list));
  EXPECT_FALSE(origin_allowed("https://chat.example.org", site, list));  // the list decides
  EXPECT_TRUE(origin_allowed("https://anything.example", site, {"*"}));
}

TEST(WebSocketUrl, FromPublicUrlOrTheRequest) {
  EXPECT_EQ(websocket_url({true, "chat.example.org:5443", ""}, "/xmpp-websocket"),
            "wss://chat.example.org:5443/xmpp-websocket");
  EXPECT_EQ(websocket_url({false, "localhost:5380", ""}, "/xmpp-websocket"),
            "ws://localhost:5380/xmpp-websocket");
  EXPECT_EQ(websocket_url({false, "127.0.0.1:5380", "https://chat.example.org/"}, "/ws"),
            "wss://chat.example.org/ws");
  EXPECT_EQ(base_url({false, "", ""}), "http://localhost");
}

TEST(HostMeta, XrdAndJsonNameTheEndpoint) {
  const std::string url = "wss://chat.example.org/xmpp-websocket?a=1&b=\"2\"";
  auto xrd = xml::parse_element(host_meta_xrd(url).substr(39));
  ASSERT_TRUE(xrd);
  EXPECT_TRUE(xrd->is("XRD", "http://docs.oasis-open.org/ns/xri/xrd-1.0"));
  auto links = xrd->children("Link", "http://docs.oasis-open.org/ns/xri/xrd-1.0");
  ASSERT_EQ(links.size(), 1u);
  EXPECT_EQ(links[0]->attr("rel"), "urn:xmpp:alt-connections:websocket");
  EXPECT_EQ(links[0]->attr("href"), url);
  EXPECT_EQ(host_meta_json(url),
            "{\"links\":[{\"rel\":\"urn:xmpp:alt-connections:websocket\",\"href\":"
            "\"wss://chat.example.org/xmpp-websocket?a=1&b=\\\"2\\\"\"}]}\n");
}

}  // namespace
}  // namespace waddle::web
