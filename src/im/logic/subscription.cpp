// RFC 6121 Appendix A state tables on storage::RosterItem: subscription carries the "To"/"From"
// halves, ask_out is "Pending Out", pending_in is "Pending In"; §3.4 pre-approval on top.
#include "im/logic/subscription.h"

#include <array>
#include <utility>

namespace waddle::im::logic {

namespace {

using storage::RosterItem;
using storage::Subscription;

bool has_to(Subscription s) {
  return s == Subscription::kTo || s == Subscription::kBoth;
}
bool has_from(Subscription s) {
  return s == Subscription::kFrom || s == Subscription::kBoth;
}

Subscription make_subscription(bool to, bool from) {
  if (to) return from ? Subscription::kBoth : Subscription::kTo;
  return from ? Subscription::kFrom : Subscription::kNone;
}

RosterItem item_or_new(const std::optional<RosterItem>& current, const std::string& contact) {
  if (current) return *current;
  RosterItem item;
  item.jid = contact;
  return item;
}

// A hidden item only remembers something pending; once nothing is, it has no reason to exist.
bool holds_nothing(const RosterItem& item) {
  return item.subscription == Subscription::kNone && !item.ask_out && !item.pending_in &&
         !item.pre_approved;
}

// What a roster push shows (§2.1.2): pending_in is not part of it.
bool shown_state_differs(const RosterItem& a, const RosterItem& b) {
  return a.subscription != b.subscription || a.ask_out != b.ask_out ||
         a.pre_approved != b.pre_approved;
}

Transition unchanged(const std::optional<RosterItem>& current, bool forward) {
  Transition t;
  t.item = current;
  t.forward = forward;
  return t;
}

Transition finish(const std::optional<RosterItem>& current, RosterItem next, bool forward) {
  Transition t;
  t.forward = forward;
  if (next.hidden && holds_nothing(next)) {
    t.store = current.has_value();
    return t;
  }
  t.store = !current || *current != next;
  t.push = !next.hidden && (!current || current->hidden || shown_state_differs(*current, next));
  t.item = std::move(next);
  return t;
}

}  // namespace

Transition outbound_subscribe(const std::optional<RosterItem>& current,
                              const std::string& contact) {
  // §3.1.2: the contact's server answers even when the user is already subscribed, so the
  // request is always routed; the contact joins the roster if it only had a hidden item.
  RosterItem next = item_or_new(current, contact);
  next.hidden = false;
  if (!has_to(next.subscription)) next.ask_out = true;
  return finish(current, std::move(next), true);
}

Transition outbound_subscribed(const std::optional<RosterItem>& current,
                               const std::string& contact) {
  // §3.4 rule 1: "From", "From + Pending Out", "Both": silently ignored.
  if (current && has_from(current->subscription)) return unchanged(current, false);
  if (current && current->pending_in) {
    // Normal approval ("None + Pending In", "None + Pending Out+In", "To + Pending In").
    RosterItem next = *current;
    next.pending_in = false;
    next.pre_approved = false;
    next.subscription = make_subscription(has_to(next.subscription), true);
    next.hidden = false;
    return finish(current, std::move(next), true);
  }
  // §3.4 rules 3 and 4: pre-approval, pushed but never routed to the contact.
  RosterItem next = item_or_new(current, contact);
  next.pre_approved = true;
  next.hidden = false;
  return finish(current, std::move(next), false);
}

Transition outbound_unsubscribe(const std::optional<RosterItem>& current, const std::string&) {
  // §3.3.2: routed in every state so the contact's server can correct its own view.
  if (!current) return unchanged(current, true);
  RosterItem next = *current;
  next.ask_out = false;
  next.subscription = make_subscription(false, has_from(next.subscription));
  return finish(current, std::move(next), true);
}

Transition outbound_unsubscribed(const std::optional<RosterItem>& current, const std::string&) {
  if (!current) return unchanged(current, false);
  RosterItem next = *current;
  next.pending_in = false;
  next.subscription = make_subscription(has_to(next.subscription), false);
  // §3.4: cancelling a pre-approval alone is not routed.
  next.pre_approved = false;
  const bool forward =
      next.pending_in != current->pending_in || next.subscription != current->subscription;
  return finish(current, std::move(next), forward);
}

Transition inbound_subscribe(const std::optional<RosterItem>& current, const std::string& contact) {
  if (current && has_from(current->subscription)) {
    // §3.1.3 rule 2: the contact is already subscribed; answer for the user.
    Transition t = unchanged(current, false);
    t.auto_subscribed = true;
    return t;
  }
  if (current && current->pre_approved) {
    // §3.4: approved in advance; the subscription takes effect without asking the user.
    RosterItem next = *current;
    next.pre_approved = false;
    next.pending_in = false;
    next.subscription = make_subscription(has_to(next.subscription), true);
    next.hidden = false;
    Transition t = finish(current, std::move(next), false);
    t.auto_subscribed = true;
    return t;
  }
  // A repeated request while one is pending is not delivered again.
  if (current && current->pending_in) return unchanged(current, false);
  RosterItem next;
  if (current) {
    next = *current;
  } else {
    // A.1 "None + Pending In": noted, but the contact is not added to the roster.
    next.jid = contact;
    next.hidden = true;
  }
  next.pending_in = true;
  return finish(current, std::move(next), true);
}

Transition inbound_subscribed(const std::optional<RosterItem>& current, const std::string&) {
  // §3.1.6: an approval nobody asked for is ignored.
  if (!current || !current->ask_out) return unchanged(current, false);
  RosterItem next = *current;
  next.ask_out = false;
  next.subscription = make_subscription(true, has_from(next.subscription));
  return finish(current, std::move(next), true);
}

Transition inbound_unsubscribe(const std::optional<RosterItem>& current, const std::string&) {
  if (!current) return unchanged(current, false);
  RosterItem next = *current;
  next.pending_in = false;
  next.subscription = make_subscription(has_to(next.subscription), false);
  const bool forward =
      next.pending_in != current->pending_in || next.subscription != current->subscription;
  return finish(current, std::move(next), forward);
}

Transition inbound_unsubscribed(const std::optional<RosterItem>& current, const std::string&) {
  if (!current) return unchanged(current, false);
  RosterItem next = *current;
  next.ask_out = false;
  next.subscription = make_subscription(false, has_from(next.subscription));
  const bool forward =
      next.ask_out != current->ask_out || next.subscription != current->subscription;
  return finish(current, std::move(next), forward);
}

Transition roster_set(const std::optional<RosterItem>& current, const std::string& contact,
                      const std::string& name, const std::vector<std::string>& groups) {
  RosterItem next = item_or_new(current, contact);
  next.name = name;
  next.groups = groups;
  next.hidden = false;
  Transition t = finish(current, std::move(next), false);
  t.push = true;
  return t;
}

RemoveResult roster_remove(const std::optional<RosterItem>& current) {
  RemoveResult r;
  if (!current || current->hidden) {
    r.t.item = current;
    return r;
  }
  r.t.store = true;
  r.t.push = true;
  // §2.5.2: end both directions, including requests still pending either way.
  r.send_unsubscribe = has_to(current->subscription) || current->ask_out;
  r.send_unsubscribed = has_from(current->subscription) || current->pending_in;
  return r;
}

bool receives_presence(const RosterItem& item) {
  return has_from(item.subscription);
}

bool sends_presence(const RosterItem& item) {
  return has_to(item.subscription);
}

const char* subscription_name(Subscription subscription) {
  static constexpr std::array<const char*, 4> kNames{"none", "to", "from", "both"};
  const auto i = static_cast<std::size_t>(subscription);
  return i < kNames.size() ? kNames[i] : "none";
}

bool shows_ask(const RosterItem& item) {
  return item.ask_out;
}

bool shows_approved(const RosterItem& item) {
  return item.pre_approved;
}

}  // namespace waddle::im::logic
