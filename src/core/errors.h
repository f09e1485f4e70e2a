// XMPP error conditions: stream errors (RFC 6120 §4.9.3) and stanza errors (§8.3.3).
#pragma once

#include <optional>
#include <string_view>

namespace waddle::core {

enum class StreamError {
  kBadFormat,
  kBadNamespacePrefix,
  kConflict,
  kConnectionTimeout,
  kHostGone,
  kHostUnknown,
  kImproperAddressing,
  kInternalServerError,
  kInvalidFrom,
  kInvalidNamespace,
  kInvalidXml,
  kNotAuthorized,
  kNotWellFormed,
  kPolicyViolation,
  kRemoteConnectionFailed,
  kReset,
  kResourceConstraint,
  kRestrictedXml,
  kSeeOtherHost,
  kSystemShutdown,
  kUndefinedCondition,
  kUnsupportedEncoding,
  kUnsupportedFeature,
  kUnsupportedStanzaType,
  kUnsupportedVersion,
};

enum class StanzaErrorType { kAuth, kCancel, kContinue, kModify, kWait };

enum class StanzaError {
  kBadRequest,
  kConflict,
  kFeatureNotImplemented,
  kForbidden,
  kGone,
  kInternalServerError,
  kItemNotFound,
  kJidMalformed,
  kNotAcceptable,
  kNotAllowed,
  kNotAuthorized,
  kPolicyViolation,
  kRecipientUnavailable,
  kRedirect,
  kRegistrationRequired,
  kRemoteServerNotFound,
  kRemoteServerTimeout,
  kResourceConstraint,
  kServiceUnavailable,
  kSubscriptionRequired,
  kUndefinedCondition,
  kUnexpectedRequest,
};

std::string_view to_string(StreamError e);
std::optional<StreamError> stream_error_from_string(std::string_view s);
std::string_view to_string(StanzaError e);
std::optional<StanzaError> stanza_error_from_string(std::string_view s);
std::string_view to_string(StanzaErrorType t);
// The error type RFC 6120 §8.3.3 associates with each condition.
StanzaErrorType default_type(StanzaError e);

}  // namespace waddle::core
