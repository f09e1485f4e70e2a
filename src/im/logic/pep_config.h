// The configuration of PEP nodes (XEP-0163, on XEP-0060's pubsub#node_config), without I/O:
// reading a node configuration or publish-options form, the preconditions of XEP-0060
// §7.1.5, who may read a node (the access models of §4.5), the form that shows a node's
// configuration, and the text it is stored as.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/errors.h"
#include "xml/element.h"

namespace waddle::im::logic {

enum class AccessModel { kOpen, kPresence, kRoster, kWhitelist };
std::string_view to_string(AccessModel a);
std::optional<AccessModel> access_model_from(std::string_view s);

enum class SendLast { kNever, kOnSub, kOnSubAndPresence };
std::string_view to_string(SendLast s);

struct PepConfig {
  AccessModel access = AccessModel::kPresence;  // XEP-0163 §4.1 default
  std::uint32_t max_items = 1;
  bool persist_items = true;
  SendLast send_last = SendLast::kOnSubAndPresence;
  bool notify_retract = true;
  std::vector<std::string> roster_groups;  // who may read under kRoster
  std::string title;
  bool operator==(const PepConfig&) const = default;
};

// What the server allows a node: "max" items means `max_items`.
struct PepLimits {
  std::uint32_t max_items = 256;
};

struct PepFormError {
  core::StanzaError condition;
  std::string text;
};

// Applies the fields of a submitted pubsub#node_config or pubsub#publish-options form to
// `config`. Unknown fields, values out of bounds and access models not offered (authorize)
// are refused with not-acceptable; a FORM_TYPE of another form with bad-request.
std::optional<PepFormError> apply_form(PepConfig& config, const xml::Element& x,
                                       const PepLimits& limits);

// XEP-0060 §7.1.5: a publish to an existing node with publish-options succeeds only when every
// option equals the node's configuration (the form is read as apply_form reads it).
bool preconditions_met(const PepConfig& node, const xml::Element& options, const PepLimits& limits);

// Who asks, as the node's owner sees them.
struct Reader {
  bool owner = false;
  bool subscribed = false;          // the owner's presence subscription: from or both
  bool in_roster = false;           // any item of the owner's roster
  std::vector<std::string> groups;  // its groups there
};
// XEP-0060 §4.5: open to anyone, presence to subscribers, roster to the listed groups,
// whitelist to the owner only (PEP has no affiliations lists to whitelist others yet).
bool may_read(const PepConfig& config, const Reader& reader);

// The pubsub#node_config form (type form) showing `config`, for a configure request.
xml::Element config_form(const PepConfig& config);

// The configuration as stored: one "key=value" line per setting; decode() gives the defaults
// for what is missing and nothing for what it cannot read.
std::string encode(const PepConfig& config);
std::optional<PepConfig> decode(std::string_view text);

}  // namespace waddle::im::logic
