// PEP requests (XEP-0163 on XEP-0060) without I/O: an IQ to an account's bare JID in the
// pubsub or pubsub#owner namespace read into what it asks, or into the error XEP-0060 gives
// for it (a stanza condition with its pubsub#errors condition).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/errors.h"
#include "xml/element.h"

namespace waddle::im::logic {

struct PepPublish {  // §7.1; XEP-0223 publish-options
  std::string node;
  std::string item_id;  // empty: the service makes one
  xml::Element payload;
  std::optional<xml::Element> options;  // the publish-options data form
};
struct PepRetract {  // §7.2
  std::string node;
  std::string item_id;
  bool notify = false;
};
struct PepItems {  // §6.5
  std::string node;
  std::vector<std::string> ids;      // the items asked by id; empty: the newest
  std::optional<std::uint32_t> max;  // max_items of the request
};
struct PepCreate {  // §8.1
  std::string node;
  std::optional<xml::Element> config;  // a node_config form
};
struct PepConfigure {  // §8.2 (get: no form) and §8.2.4 (set)
  std::string node;
  std::optional<xml::Element> form;
};
struct PepDelete {  // §8.4
  std::string node;
};
struct PepPurge {  // §8.5
  std::string node;
};
struct PepRequestError {
  core::StanzaError condition;
  std::string pubsub_condition;  // in http://jabber.org/protocol/pubsub#errors, or empty
  std::string feature;           // for unsupported: the pubsub feature asked
};
using PepRequest = std::variant<PepPublish, PepRetract, PepItems, PepCreate, PepConfigure,
                                PepDelete, PepPurge, PepRequestError>;

// Whether the IQ's payload is <pubsub/> in either namespace.
bool is_pep_request(const xml::Element& iq);
// Reads a get or set IQ with such a payload. Items larger than `max_item_bytes` (their payload
// as written) get not-acceptable with payload-too-big.
PepRequest parse_pep_request(const xml::Element& iq, std::size_t max_item_bytes);

// <error type=...><condition/>[<pubsub-condition xmlns=pubsub#errors [feature=...]/>]</error>
// as the reply to `iq`.
xml::Element pep_error_reply(const xml::Element& iq, const PepRequestError& error);

}  // namespace waddle::im::logic
