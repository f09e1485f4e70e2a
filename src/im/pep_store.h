// What the PEP service (im/pep.h) does on the storage worker's thread: an account's nodes
// changed as its owner's requests, XEP-0049 private XML and XEP-0054 vCards ask, each change
// recorded as the event it notifies. No Asio here: these run inside one storage job, so a
// read-modify-write of a node is never interleaved with another.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "im/logic/pep_config.h"
#include "im/logic/pep_event.h"
#include "im/logic/pep_request.h"
#include "storage/storage.h"
#include "xml/element.h"

namespace waddle::im::pep_store {

// The account whose nodes change, and who changes them.
struct Owner {
  std::string domain;
  std::string user;
  std::string jid;        // the account's bare JID (the events' 'from')
  std::string publisher;  // the full JID of the resource that asked
  logic::PepLimits limits;
  std::size_t max_nodes = 0;
};

// An event of a node (XEP-0060 §7.1.2.1, §7.2.2.1, §8.4.3.1, §8.5.3.1), without 'to', with the
// configuration that says who may read it.
struct Change {
  std::string node;
  logic::PepConfig config;
  xml::Element event;
};

logic::PepConfig config_of(const storage::PepNode& node);

// Stores `item` in `node`, creating the node with `if_new` when it does not exist (an empty
// id is made unique); appends the notification to `changes` and returns the item's id, or
// the error (too many nodes).
struct Stored {
  std::optional<logic::PepRequestError> error;
  std::string id;
  logic::PepConfig config;
};
Stored put(storage::Storage& st, const Owner& owner, const std::string& node,
           const logic::PepConfig& if_new, const logic::PepItem& item,
           std::vector<Change>& changes);
// Removes an item, with its notification when the node's configuration asks (or `notify`);
// false when there is no such node or item.
bool retract(storage::Storage& st, const Owner& owner, const std::string& node,
             const std::string& id, bool notify, std::vector<Change>& changes);
// The items of a node, newest first (parsed; those that no longer parse are left out).
std::vector<logic::PepItem> items(storage::Storage& st, const Owner& owner, const std::string& node,
                                  const std::vector<std::string>& ids, std::size_t max);

// XEP-0398 §3.1: after the owner published `item` to `node`, a new avatar (metadata naming
// stored data) becomes its vCard's photo, an empty one removes it.
void after_publish(storage::Storage& st, const Owner& owner, const std::string& node,
                   const logic::PepItem& item);

// XEP-0049 private XML: the stored element (for storage:bookmarks, the rooms of the XEP-0402
// node, XEP-0402 §5.3) or an empty one.
xml::Element private_get(storage::Storage& st, const Owner& owner, const xml::Element& query);
// Stores it (storage:bookmarks also as XEP-0402 items, their changes in `changes`); false
// when the account has `max_nodes` keys already.
bool private_put(storage::Storage& st, const Owner& owner, const xml::Element& element,
                 std::vector<Change>& changes);
// Private XML's key of an element: "{namespace}name".
std::string private_key(const xml::Element& element);

// XEP-0054: the stored vCard, if any.
std::optional<xml::Element> vcard_get(storage::Storage& st, const Owner& owner);
// Stores it; XEP-0398 §3.2: a changed photo is published as the XEP-0084 avatar (an open
// node, as the vCard is public), a removed one as empty metadata.
void vcard_put(storage::Storage& st, const Owner& owner, const xml::Element& vcard,
               std::vector<Change>& changes);

}  // namespace waddle::im::pep_store
