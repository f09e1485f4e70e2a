#include "im/logic/extdisco.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <chrono>
#include <utility>
#include <vector>

#include "core/base64.h"
#include "core/timestamp.h"

namespace waddle::im::logic {

namespace {

struct Service {
  std::string_view type;       // stun, turn, turns
  std::string_view transport;  // udp, tcp
  std::uint16_t port = 0;
};

std::vector<Service> services_of(const core::TurnConfig& turn) {
  std::vector<Service> out;
  if (turn.host.empty()) return out;
  out.push_back({"stun", "udp", turn.port});
  if (turn.tcp) out.push_back({"stun", "tcp", turn.port});
  if (turn.secret.empty()) return out;
  out.push_back({"turn", "udp", turn.port});
  if (turn.tcp) out.push_back({"turn", "tcp", turn.port});
  if (turn.tls_port != 0) out.push_back({"turns", "tcp", turn.tls_port});
  return out;
}

xml::Element service_element(const core::TurnConfig& turn, const Service& s, std::string_view user,
                             std::int64_t now) {
  xml::Element e("service", std::string(kExtdisco));
  e.set_attr("type", s.type)
      .set_attr("host", turn.host)
      .set_attr("port", std::to_string(s.port))
      .set_attr("transport", s.transport);
  if (s.type != "stun") {
    const std::int64_t expires =
        now + std::chrono::duration_cast<std::chrono::seconds>(turn.ttl).count();
    const std::string username = std::to_string(expires) + ":" + std::string(user);
    e.set_attr("restricted", "1")
        .set_attr("username", username)
        .set_attr("password", turn_password(turn.secret, username))
        .set_attr("expires", core::format_timestamp(expires));
  }
  return e;
}

}  // namespace

std::string turn_password(std::string_view secret, std::string_view username) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int len = 0;
  HMAC(EVP_sha1(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(username.data()), username.size(), mac.data(), &len);
  return core::base64_encode(std::string_view(reinterpret_cast<const char*>(mac.data()), len));
}

xml::Element external_services(const core::TurnConfig& turn, std::string_view type,
                               std::string_view user, std::int64_t now) {
  xml::Element services("services", std::string(kExtdisco));
  if (!type.empty()) services.set_attr("type", type);
  for (const auto& s : services_of(turn))
    if (type.empty() || s.type == type) services.add_child(service_element(turn, s, user, now));
  return services;
}

std::optional<xml::Element> external_credentials(const core::TurnConfig& turn,
                                                 std::string_view host, std::string_view type,
                                                 std::string_view user, std::int64_t now) {
  for (const auto& s : services_of(turn)) {
    if (s.type == "stun" || host != turn.host || (!type.empty() && s.type != type)) continue;
    xml::Element credentials("credentials", std::string(kExtdisco));
    credentials.add_child(service_element(turn, s, user, now));
    return credentials;
  }
  return std::nullopt;
}

std::optional<xml::Element> contact_form(const core::ContactConfig& c) {
  const std::pair<std::string_view, const std::vector<std::string>*> kinds[] = {
      {"abuse-addresses", &c.abuse},       {"admin-addresses", &c.admin},
      {"feedback-addresses", &c.feedback}, {"sales-addresses", &c.sales},
      {"security-addresses", &c.security}, {"status-addresses", &c.status},
      {"support-addresses", &c.support}};
  bool any = false;
  for (const auto& [var, list] : kinds) any = any || !list->empty();
  if (!any) return std::nullopt;
  constexpr std::string_view kData = "jabber:x:data";
  xml::Element x("x", std::string(kData));
  x.set_attr("type", "result");
  auto& type = x.add_child("field", std::string(kData));
  type.set_attr("var", "FORM_TYPE").set_attr("type", "hidden");
  type.add_child("value", std::string(kData)).add_text("http://jabber.org/network/serverinfo");
  for (const auto& [var, list] : kinds) {
    if (list->empty()) continue;
    auto& f = x.add_child("field", std::string(kData));
    f.set_attr("var", var);
    for (const auto& uri : *list) f.add_child("value", std::string(kData)).add_text(uri);
  }
  return x;
}

}  // namespace waddle::im::logic
