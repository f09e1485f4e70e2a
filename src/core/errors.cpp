// Names of the RFC 6120 stream and stanza error conditions.
#include "core/errors.h"

#include <array>
#include <utility>

namespace waddle::core {
namespace {

constexpr std::array<std::string_view, 25> kStreamNames = {
    "bad-format",
    "bad-namespace-prefix",
    "conflict",
    "connection-timeout",
    "host-gone",
    "host-unknown",
    "improper-addressing",
    "internal-server-error",
    "invalid-from",
    "invalid-namespace",
    "invalid-xml",
    "not-authorized",
    "not-well-formed",
    "policy-violation",
    "remote-connection-failed",
    "reset",
    "resource-constraint",
    "restricted-xml",
    "see-other-host",
    "system-shutdown",
    "undefined-condition",
    "unsupported-encoding",
    "unsupported-feature",
    "unsupported-stanza-type",
    "unsupported-version",
};

struct StanzaInfo {
  std::string_view name;
  StanzaErrorType type;
};

constexpr std::array<StanzaInfo, 22> kStanzaInfo = {{
    {"bad-request", StanzaErrorType::kModify},
    {"conflict", StanzaErrorType::kCancel},
    {"feature-not-implemented", StanzaErrorType::kCancel},
    {"forbidden", StanzaErrorType::kAuth},
    {"gone", StanzaErrorType::kCancel},
    {"internal-server-error", StanzaErrorType::kCancel},
    {"item-not-found", StanzaErrorType::kCancel},
    {"jid-malformed", StanzaErrorType::kModify},
    {"not-acceptable", StanzaErrorType::kModify},
    {"not-allowed", StanzaErrorType::kCancel},
    {"not-authorized", StanzaErrorType::kAuth},
    {"policy-violation", StanzaErrorType::kModify},
    {"recipient-unavailable", StanzaErrorType::kWait},
    {"redirect", StanzaErrorType::kModify},
    {"registration-required", StanzaErrorType::kAuth},
    {"remote-server-not-found", StanzaErrorType::kCancel},
    {"remote-server-timeout", StanzaErrorType::kWait},
    {"resource-constraint", StanzaErrorType::kWait},
    {"service-unavailable", StanzaErrorType::kCancel},
    {"subscription-required", StanzaErrorType::kAuth},
    {"undefined-condition", StanzaErrorType::kCancel},
    {"unexpected-request", StanzaErrorType::kWait},
}};

}  // namespace

std::string_view to_string(StreamError e) {
  return kStreamNames.at(static_cast<std::size_t>(e));
}

std::optional<StreamError> stream_error_from_string(std::string_view s) {
  for (std::size_t i = 0; i < kStreamNames.size(); ++i)
    if (kStreamNames[i] == s) return static_cast<StreamError>(i);
  return std::nullopt;
}

std::string_view to_string(StanzaError e) {
  return kStanzaInfo.at(static_cast<std::size_t>(e)).name;
}

std::optional<StanzaError> stanza_error_from_string(std::string_view s) {
  for (std::size_t i = 0; i < kStanzaInfo.size(); ++i)
    if (kStanzaInfo[i].name == s) return static_cast<StanzaError>(i);
  return std::nullopt;
}

std::string_view to_string(StanzaErrorType t) {
  static constexpr std::array<std::string_view, 5> kNames{"auth", "cancel", "continue", "modify",
                                                          "wait"};
  const auto i = static_cast<std::size_t>(t);
  return i < kNames.size() ? kNames[i] : "cancel";
}

StanzaErrorType default_type(StanzaError e) {
  return kStanzaInfo.at(static_cast<std::size_t>(e)).type;
}

}  // namespace waddle::core
