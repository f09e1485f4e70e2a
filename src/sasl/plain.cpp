// SASL PLAIN message parsing (RFC 4616 §2): "[authzid] NUL authcid NUL passwd", with the
// authcid and password SASLprepped (RFC 4616 §2, RFC 4013).
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "core/jid.h"
#include "sasl/scram.h"

namespace waddle::sasl {

std::optional<PlainMessage> parse_plain(std::string_view message) {
  const auto first = message.find('\0');
  if (first == std::string_view::npos) return std::nullopt;
  const auto second = message.find('\0', first + 1);
  if (second == std::string_view::npos) return std::nullopt;
  if (message.find('\0', second + 1) != std::string_view::npos) return std::nullopt;

  const std::string_view authzid = message.substr(0, first);
  const std::string_view authcid = message.substr(first + 1, second - first - 1);
  const std::string_view password = message.substr(second + 1);
  if (authcid.empty() || password.empty()) return std::nullopt;

  auto prepped_authcid = core::saslprep(authcid);
  if (!prepped_authcid || prepped_authcid->empty()) return std::nullopt;
  auto prepped_password = core::saslprep(password);
  if (!prepped_password || prepped_password->empty()) return std::nullopt;

  // The authzid is a JID; the caller prepares and checks it.
  return PlainMessage{std::string(authzid), std::move(*prepped_authcid),
                      std::move(*prepped_password)};
}

}  // namespace waddle::sasl
