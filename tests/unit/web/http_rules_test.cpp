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

namespace waddle::web {
namespace {

TEST(ClientPage, CarriesTheSettingsEscaped) {
  ClientSettings s{"wss://chat.example.org/xmpp-websocket", "example.org", "conference.example.org",
                   "/chat/dist/", true};
  const std::string page = client_page(s);
  EXPECT_NE(page.find("websocket_url: \"wss://chat.example.org/xmpp-websocket\""),
            std::string::npos);
  EXPECT_NE(page.find("default_domain: \"example.org\""), std::string::npos);
  EXPECT_NE(page.find("domain_placeholder: \"example.org\""), std::string::npos);
  EXPECT_NE(page.find("registration_domain: \"example.org\""), std::string::npos);
  EXPECT_NE(page.find("muc_domain: \"conference.example.org\""), std::string::npos);
  EXPECT_NE(page.find("allow_registration: true"), std::string::npos);
  EXPECT_NE(page.find("muc_search_service: \"conference.example.org\""), std::string::npos);
  EXPECT_NE(page.find("type=\"module\" src=\"/chat/dist/converse.min.js\""), std::string::npos);
  s.domain = "x\"</script><script>alert(1)//";
  const std::string hostile = client_page(s);
  EXPECT_EQ(hostile.find("</script><script>alert"), std::string::npos);
  EXPECT_NE(hostile.find("x\\\"\\u003c/script>"), std::string::npos);
}

TEST(ClientFile, PlainNamesOnly) {
  EXPECT_EQ(client_file("dist/converse.min.js"), "dist/converse.min.js");
  EXPECT_EQ(client_file("dist/webfonts/icomoon.woff2"), "dist/webfonts/icomoon.woff2");
  EXPECT_FALSE(client_file(""));
  EXPECT_FALSE(client_file("../secret"));
  EXPECT_FALSE(client_file("dist/../../etc/passwd"));
  EXPECT_FALSE(client_file("dist//x.js"));
  EXPECT_FALSE(client_file("dist/.hidden"));
  EXPECT_FALSE(client_file("dist/a%2e%2e"));
  EXPECT_FALSE(client_file("/etc/passwd"));
}

TEST(StaticContentType, ByExtension) {
  EXPECT_EQ(static_content_type("dist/converse.min.js"), "text/javascript; charset=utf-8");
  EXPECT_EQ(static_content_type("dist/converse.min.css"), "text/css; charset=utf-8");
  EXPECT_EQ(static_content_type("dist/x.WASM"), "application/wasm");
  EXPECT_EQ(static_content_type("dist/webfonts/a.woff2"), "font/woff2");
  EXPECT_EQ(static_content_type("dist/noext"), "application/octet-stream");
}

}  // namespace
}  // namespace waddle::web
