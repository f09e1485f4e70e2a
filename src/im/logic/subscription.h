// Presence subscription state machine and roster item bookkeeping, without I/O: RFC 6121 §3
// (subscriptions), §3.4 (pre-approval), §2.3/§2.5 (roster set/remove) and the tables of
// Appendix A (A.2 outbound, A.3 inbound stanzas).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "storage/storage.h"

namespace waddle::im::logic {

// What the server does after one event on the user's roster item for one contact.
struct Transition {
  // The item after the event; nullopt: no item (remove the stored one, or nothing to store).
  std::optional<storage::RosterItem> item;
  // The item changed, or must be removed (item nullopt while one existed): persist it.
  bool store = false;
  // Send a roster push to the user's interested resources (never for hidden items).
  bool push = false;
  // Outbound events: route the presence stanza to the contact. Inbound: deliver it to the user.
  bool forward = false;
  // Inbound subscribe that is already approved: reply 'subscribed' on the user's behalf.
  bool auto_subscribed = false;
  // Inbound subscribe from a contact outside the roster, refused (nothing stored, nothing
  // delivered) because the account keeps as many such requests as it may.
  bool refused = false;
  // Set by the roster once the result is stored: the roster's version then (RFC 6121 §2.6;
  // 0: not known), carried by the push.
  std::uint64_t roster_version = 0;
};

// In every event `current` is the user's roster item for the contact (nullopt when there is
// none) and `contact` the contact's bare JID. "Outbound" stanzas are sent by the user to the
// contact, "inbound" ones come from the contact to the user.

// A.2.1: always routed; asking for a subscription puts the contact in the roster (un-hides).
Transition outbound_subscribe(const std::optional<storage::RosterItem>& current,
                              const std::string& contact);
// A.2.3 and §3.4: approves a pending request (routed); without one, records a pre-approval
// (not routed) unless the contact is already subscribed (ignored).
Transition outbound_subscribed(const std::optional<storage::RosterItem>& current,
                               const std::string& contact);
// A.2.2: always routed; ends the user's subscription or pending request.
Transition outbound_unsubscribe(const std::optional<storage::RosterItem>& current,
                                const std::string& contact);
// A.2.4 and §3.4: denies a pending request or cancels the contact's subscription (routed when
// either changed); also cancels a pre-approval (never routed for that alone).
Transition outbound_unsubscribed(const std::optional<storage::RosterItem>& current,
                                 const std::string& contact);

// A.3.1 and §3.4: auto-approved when the contact is already subscribed or pre-approved;
// otherwise noted as pending (on a hidden item when the contact is not in the roster).
Transition inbound_subscribe(const std::optional<storage::RosterItem>& current,
                             const std::string& contact);
// A.3.3: takes effect only while the user's request is pending.
Transition inbound_subscribed(const std::optional<storage::RosterItem>& current,
                              const std::string& contact);
// A.3.2: the contact withdraws its subscription or its pending request.
Transition inbound_unsubscribe(const std::optional<storage::RosterItem>& current,
                               const std::string& contact);
// A.3.4: the contact denies the user's request or cancels the user's subscription.
Transition inbound_unsubscribed(const std::optional<storage::RosterItem>& current,
                                const std::string& contact);

// Client roster set (§2.3): keeps the subscription state, replaces name and groups, un-hides.
// Always pushes (§2.3.2 requires a push even when nothing changed).
Transition roster_set(const std::optional<storage::RosterItem>& current, const std::string& contact,
                      const std::string& name, const std::vector<std::string>& groups);

// Client roster remove (§2.5): the item is deleted and pushed as subscription='remove'; the
// flags say which presence stanzas to send to the contact first. When `current` is absent or
// hidden the contact is not in the roster: nothing changes (the caller answers item-not-found).
struct RemoveResult {
  Transition t;
  bool send_unsubscribe = false;   // the user was subscribed to the contact or had asked to be
  bool send_unsubscribed = false;  // the contact was subscribed to the user or had asked to be
};
RemoveResult roster_remove(const std::optional<storage::RosterItem>& current);

// The contact is subscribed to the user ("from"/"both"): it receives the user's presence.
bool receives_presence(const storage::RosterItem& item);
// The user is subscribed to the contact ("to"/"both"): the server probes the contact.
bool sends_presence(const storage::RosterItem& item);

// Roster results and pushes (§2.1.2): the 'subscription' attribute...
const char* subscription_name(storage::Subscription subscription);
// ...whether ask='subscribe' is shown...
bool shows_ask(const storage::RosterItem& item);
// ...and whether approved='true' is shown (§2.1.2.1, pre-approval).
bool shows_approved(const storage::RosterItem& item);

}  // namespace waddle::im::logic
