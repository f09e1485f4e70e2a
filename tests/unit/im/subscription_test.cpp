// Tests for the RFC 6121 subscription state machine: every row of Appendix A (A.2 outbound,
// A.3 inbound), §3.4 pre-approval, hidden items, roster set/remove and a two-party exchange.
#include "im/logic/subscription.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace waddle::storage {
// Readable failure messages for item comparisons.
void PrintTo(const RosterItem& item, std::ostream* os) {
  *os << "{" << item.jid << " '" << item.name << "' "
      << im::logic::subscription_name(item.subscription) << (item.ask_out ? " ask_out" : "")
      << (item.pending_in ? " pending_in" : "") << (item.pre_approved ? " pre_approved" : "")
      << (item.hidden ? " hidden" : "") << "}";
}
}  // namespace waddle::storage

namespace waddle::im::logic {
namespace {

using storage::RosterItem;
using storage::Subscription;

const std::string kContact = "bob@example.net";

// One of the nine defined states of RFC 6121 A.1.
struct State {
  const char* name;
  Subscription subscription;
  bool pending_out;
  bool pending_in;
};

constexpr State kNone{"None", Subscription::kNone, false, false};
constexpr State kNoneOut{"None + Pending Out", Subscription::kNone, true, false};
constexpr State kNoneIn{"None + Pending In", Subscription::kNone, false, true};
constexpr State kNoneOutIn{"None + Pending Out+In", Subscription::kNone, true, true};
constexpr State kTo{"To", Subscription::kTo, false, false};
constexpr State kToIn{"To + Pending In", Subscription::kTo, false, true};
constexpr State kFrom{"From", Subscription::kFrom, false, false};
constexpr State kFromOut{"From + Pending Out", Subscription::kFrom, true, false};
constexpr State kBoth{"Both", Subscription::kBoth, false, false};

RosterItem visible_item(const State& s) {
  RosterItem item;
  item.jid = kContact;
  item.name = "Bob";
  item.groups = {"Friends", "Work"};
  item.subscription = s.subscription;
  item.ask_out = s.pending_out;
  item.pending_in = s.pending_in;
  return item;
}

bool same_state(const RosterItem& item, const State& s) {
  return item.subscription == s.subscription && item.ask_out == s.pending_out &&
         item.pending_in == s.pending_in;
}

bool shown_change(const State& a, const State& b) {
  return a.subscription != b.subscription || a.pending_out != b.pending_out;
}

using Event = Transition (*)(const std::optional<RosterItem>&, const std::string&);

// One table row: existing state, ROUTE?/DELIVER?, new state, and a table-specific flag
// (A.2.3: a pre-approval is recorded; A.3.1: 'subscribed' is sent on the user's behalf).
struct Row {
  State before;
  bool forward;
  State after;
  bool flag = false;
};

// Checks what every table shares: new state, forwarding, name and groups kept, persisted when
// the state changed, pushed when the visible state changed. Returns the transitions.
std::vector<Transition> walk(Event event, const std::vector<Row>& rows) {
  EXPECT_EQ(rows.size(), 9u) << "each Appendix A table has nine rows";
  std::vector<Transition> results;
  for (const Row& row : rows) {
    SCOPED_TRACE(std::string("existing state: ") + row.before.name);
    const RosterItem before = visible_item(row.before);
    Transition t = event(before, kContact);
    EXPECT_EQ(t.forward, row.forward);
    if (!t.item) {
      ADD_FAILURE() << "a visible item is never removed by presence";
      results.push_back(std::move(t));
      continue;
    }
    EXPECT_TRUE(same_state(*t.item, row.after)) << "expected " << row.after.name;
    EXPECT_EQ(t.item->jid, kContact);
    EXPECT_EQ(t.item->name, "Bob");
    EXPECT_EQ(t.item->groups, (std::vector<std::string>{"Friends", "Work"}));
    EXPECT_FALSE(t.item->hidden);
    const bool changed = !same_state(before, row.after) || t.item->pre_approved;
    EXPECT_EQ(t.store, changed);
    EXPECT_EQ(t.push, shown_change(row.before, row.after) || t.item->pre_approved);
    results.push_back(std::move(t));
  }
  return results;
}

// --- RFC 6121 A.2: outbound stanzas (sent by the user) ---

TEST(SubscriptionTest, OutboundSubscribe_FollowsTableA21) {
  const std::vector<Row> rows = {
      {kNone, true, kNoneOut},        {kNoneOut, true, kNoneOut}, {kNoneIn, true, kNoneOutIn},
      {kNoneOutIn, true, kNoneOutIn}, {kTo, true, kTo},           {kToIn, true, kToIn},
      {kFrom, true, kFromOut},        {kFromOut, true, kFromOut}, {kBoth, true, kBoth},
  };
  for (const Transition& t : walk(&outbound_subscribe, rows)) EXPECT_FALSE(t.auto_subscribed);
}

TEST(SubscriptionTest, OutboundUnsubscribe_FollowsTableA22) {
  const std::vector<Row> rows = {
      {kNone, true, kNone},        {kNoneOut, true, kNone}, {kNoneIn, true, kNoneIn},
      {kNoneOutIn, true, kNoneIn}, {kTo, true, kNone},      {kToIn, true, kNoneIn},
      {kFrom, true, kFrom},        {kFromOut, true, kFrom}, {kBoth, true, kFrom},
  };
  walk(&outbound_unsubscribe, rows);
}

TEST(SubscriptionTest, OutboundSubscribed_FollowsTableA23WithPreApproval) {
  // flag: the stanza is not routed but recorded as a pre-approval (§3.4 rule 3).
  const std::vector<Row> rows = {
      {kNone, false, kNone, true},  {kNoneOut, false, kNoneOut, true}, {kNoneIn, true, kFrom},
      {kNoneOutIn, true, kFromOut}, {kTo, false, kTo, true},           {kToIn, true, kBoth},
      {kFrom, false, kFrom},        {kFromOut, false, kFromOut},       {kBoth, false, kBoth},
  };
  const std::vector<Transition> results = walk(&outbound_subscribed, rows);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    SCOPED_TRACE(rows[i].before.name);
    ASSERT_TRUE(results[i].item);
    EXPECT_EQ(results[i].item->pre_approved, rows[i].flag);
  }
}

TEST(SubscriptionTest, OutboundUnsubscribed_FollowsTableA24) {
  const std::vector<Row> rows = {
      {kNone, false, kNone},        {kNoneOut, false, kNoneOut}, {kNoneIn, true, kNone},
      {kNoneOutIn, true, kNoneOut}, {kTo, false, kTo},           {kToIn, true, kTo},
      {kFrom, true, kNone},         {kFromOut, true, kNoneOut},  {kBoth, true, kTo},
  };
  walk(&outbound_unsubscribed, rows);
}

// --- RFC 6121 A.3: inbound stanzas (sent by the contact) ---

TEST(SubscriptionTest, InboundSubscribe_FollowsTableA31) {
  // flag: not delivered, the server replies 'subscribed' itself ("no *" rows).
  const std::vector<Row> rows = {
      {kNone, true, kNoneIn},      {kNoneOut, true, kNoneOutIn},
      {kNoneIn, false, kNoneIn},   {kNoneOutIn, false, kNoneOutIn},
      {kTo, true, kToIn},          {kToIn, false, kToIn},
      {kFrom, false, kFrom, true}, {kFromOut, false, kFromOut, true},
      {kBoth, false, kBoth, true},
  };
  const std::vector<Transition> results = walk(&inbound_subscribe, rows);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    SCOPED_TRACE(rows[i].before.name);
    EXPECT_EQ(results[i].auto_subscribed, rows[i].flag);
  }
}

TEST(SubscriptionTest, InboundUnsubscribe_FollowsTableA32) {
  const std::vector<Row> rows = {
      {kNone, false, kNone},        {kNoneOut, false, kNoneOut}, {kNoneIn, true, kNone},
      {kNoneOutIn, true, kNoneOut}, {kTo, false, kTo},           {kToIn, true, kTo},
      {kFrom, true, kNone},         {kFromOut, true, kNoneOut},  {kBoth, true, kTo},
  };
  walk(&inbound_unsubscribe, rows);
}

TEST(SubscriptionTest, InboundSubscribed_FollowsTableA33) {
  const std::vector<Row> rows = {
      {kNone, false, kNone},     {kNoneOut, true, kTo},   {kNoneIn, false, kNoneIn},
      {kNoneOutIn, true, kToIn}, {kTo, false, kTo},       {kToIn, false, kToIn},
      {kFrom, false, kFrom},     {kFromOut, true, kBoth}, {kBoth, false, kBoth},
  };
  walk(&inbound_subscribed, rows);
}

TEST(SubscriptionTest, InboundUnsubscribed_FollowsTableA34) {
  const std::vector<Row> rows = {
      {kNone, false, kNone},       {kNoneOut, true, kNone}, {kNoneIn, false, kNoneIn},
      {kNoneOutIn, true, kNoneIn}, {kTo, true, kNone},      {kToIn, true, kNoneIn},
      {kFrom, false, kFrom},       {kFromOut, true, kFrom}, {kBoth, true, kFrom},
  };
  walk(&inbound_unsubscribed, rows);
}

// --- no item at all ("None" without a roster entry) ---

TEST(SubscriptionTest, OutboundSubscribe_NoItem_AddsContactWithPendingOut) {
  const Transition t = outbound_subscribe(std::nullopt, kContact);
  ASSERT_TRUE(t.item);
  EXPECT_EQ(t.item->jid, kContact);
  EXPECT_TRUE(same_state(*t.item, kNoneOut));
  EXPECT_FALSE(t.item->hidden);
  EXPECT_TRUE(t.store);
  EXPECT_TRUE(t.push);
  EXPECT_TRUE(t.forward);
}

TEST(SubscriptionTest, OutboundUnsubscribe_NoItem_RoutedWithoutStoring) {
  const Transition t = outbound_unsubscribe(std::nullopt, kContact);
  EXPECT_FALSE(t.item);
  EXPECT_FALSE(t.store);
  EXPECT_FALSE(t.push);
  EXPECT_TRUE(t.forward);
}

TEST(SubscriptionTest, EventsWithoutEffect_NoItem_StoreAndForwardNothing) {
  for (Event event :
       {&outbound_unsubscribed, &inbound_subscribed, &inbound_unsubscribe, &inbound_unsubscribed}) {
    const Transition t = event(std::nullopt, kContact);
    EXPECT_FALSE(t.item);
    EXPECT_FALSE(t.store);
    EXPECT_FALSE(t.push);
    EXPECT_FALSE(t.forward);
    EXPECT_FALSE(t.auto_subscribed);
  }
}

// --- §3.4 pre-approval ---

TEST(SubscriptionTest, PreApproval_NoItem_CreatesApprovedRosterItemWithoutRouting) {
  const Transition t = outbound_subscribed(std::nullopt, kContact);
  ASSERT_TRUE(t.item);
  EXPECT_EQ(t.item->jid, kContact);
  EXPECT_TRUE(same_state(*t.item, kNone));
  EXPECT_TRUE(t.item->pre_approved);
  EXPECT_FALSE(t.item->hidden);
  EXPECT_TRUE(shows_approved(*t.item));
  EXPECT_TRUE(t.store);
  EXPECT_TRUE(t.push);
  EXPECT_FALSE(t.forward);
}

TEST(SubscriptionTest, PreApproval_AlreadyApproved_NothingChanges) {
  RosterItem item = visible_item(kNone);
  item.pre_approved = true;
  const Transition t = outbound_subscribed(item, kContact);
  EXPECT_EQ(t.item, item);
  EXPECT_FALSE(t.store);
  EXPECT_FALSE(t.push);
  EXPECT_FALSE(t.forward);
}

TEST(SubscriptionTest, PreApproval_InboundSubscribe_ApprovedAutomatically) {
  for (const auto& [before, after] :
       std::vector<std::pair<State, State>>{{kNone, kFrom}, {kNoneOut, kFromOut}, {kTo, kBoth}}) {
    SCOPED_TRACE(before.name);
    RosterItem item = visible_item(before);
    item.pre_approved = true;
    const Transition t = inbound_subscribe(item, kContact);
    ASSERT_TRUE(t.item);
    EXPECT_TRUE(same_state(*t.item, after));
    EXPECT_FALSE(t.item->pre_approved) << "the approval is used up";
    EXPECT_TRUE(t.auto_subscribed);
    EXPECT_FALSE(t.forward) << "the user is not asked";
    EXPECT_TRUE(t.store);
    EXPECT_TRUE(t.push);
  }
}

TEST(SubscriptionTest, PreApproval_CancelledByUnsubscribed_NotRouted) {
  for (const State& s : {kNone, kNoneOut, kTo}) {
    SCOPED_TRACE(s.name);
    RosterItem item = visible_item(s);
    item.pre_approved = true;
    const Transition t = outbound_unsubscribed(item, kContact);
    ASSERT_TRUE(t.item);
    EXPECT_TRUE(same_state(*t.item, s));
    EXPECT_FALSE(t.item->pre_approved);
    EXPECT_TRUE(t.store);
    EXPECT_TRUE(t.push);
    EXPECT_FALSE(t.forward);
  }
}

TEST(SubscriptionTest, PreApproval_AfterCancellation_SubscribeAsksTheUserAgain) {
  const Transition approve = outbound_subscribed(std::nullopt, kContact);
  const Transition cancel = outbound_unsubscribed(approve.item, kContact);
  const Transition t = inbound_subscribe(cancel.item, kContact);
  EXPECT_FALSE(t.auto_subscribed);
  EXPECT_TRUE(t.forward);
  ASSERT_TRUE(t.item);
  EXPECT_TRUE(same_state(*t.item, kNoneIn));
}

TEST(SubscriptionTest, PreApproval_OtherEvents_KeepTheApproval) {
  RosterItem item = visible_item(kNoneOut);
  item.pre_approved = true;
  const Transition t = inbound_subscribed(item, kContact);
  ASSERT_TRUE(t.item);
  EXPECT_TRUE(same_state(*t.item, kTo));
  EXPECT_TRUE(t.item->pre_approved);
  const Transition u = outbound_unsubscribe(t.item, kContact);
  ASSERT_TRUE(u.item);
  EXPECT_TRUE(same_state(*u.item, kNone));
  EXPECT_TRUE(u.item->pre_approved);
}

// --- hidden items (an inbound request from someone not in the roster) ---

RosterItem hidden_pending_in() {
  RosterItem item;
  item.jid = kContact;
  item.pending_in = true;
  item.hidden = true;
  return item;
}

TEST(SubscriptionTest, InboundSubscribe_NoItem_CreatesHiddenPendingItem) {
  const Transition t = inbound_subscribe(std::nullopt, kContact);
  EXPECT_EQ(t.item, hidden_pending_in());
  EXPECT_TRUE(t.store);
  EXPECT_FALSE(t.push);
  EXPECT_TRUE(t.forward);
  EXPECT_FALSE(t.auto_subscribed);
}

TEST(SubscriptionTest, InboundSubscribe_HiddenPending_NotDeliveredAgain) {
  const Transition t = inbound_subscribe(hidden_pending_in(), kContact);
  EXPECT_EQ(t.item, hidden_pending_in());
  EXPECT_FALSE(t.store);
  EXPECT_FALSE(t.push);
  EXPECT_FALSE(t.forward);
}

TEST(SubscriptionTest, InboundUnsubscribe_HiddenPending_RemovesItem) {
  const Transition t = inbound_unsubscribe(hidden_pending_in(), kContact);
  EXPECT_FALSE(t.item);
  EXPECT_TRUE(t.store);
  EXPECT_FALSE(t.push);
  EXPECT_TRUE(t.forward);
}

TEST(SubscriptionTest, OutboundUnsubscribed_HiddenPending_DeniesAndRemovesItem) {
  const Transition t = outbound_unsubscribed(hidden_pending_in(), kContact);
  EXPECT_FALSE(t.item);
  EXPECT_TRUE(t.store);
  EXPECT_FALSE(t.push);
  EXPECT_TRUE(t.forward);
}

TEST(SubscriptionTest, OutboundSubscribed_HiddenPending_AddsContactWithFrom) {
  const Transition t = outbound_subscribed(hidden_pending_in(), kContact);
  ASSERT_TRUE(t.item);
  EXPECT_TRUE(same_state(*t.item, kFrom));
  EXPECT_FALSE(t.item->hidden);
  EXPECT_TRUE(t.store);
  EXPECT_TRUE(t.push);
  EXPECT_TRUE(t.forward);
}

TEST(SubscriptionTest, OutboundSubscribe_HiddenPending_AddsContactWithPendingOutIn) {
  const Transition t = outbound_subscribe(hidden_pending_in(), kContact);
  ASSERT_TRUE(t.item);
  EXPECT_TRUE(same_state(*t.item, kNoneOutIn));
  EXPECT_FALSE(t.item->hidden);
  EXPECT_TRUE(t.store);
  EXPECT_TRUE(t.push);
  EXPECT_TRUE(t.forward);
}

TEST(SubscriptionTest, EventsWithoutEffect_HiddenPending_StayHiddenAndUnpushed) {
  for (Event event : {&outbound_unsubscribe, &inbound_subscribed, &inbound_unsubscribed}) {
    const Transition t = event(hidden_pending_in(), kContact);
    EXPECT_EQ(t.item, hidden_pending_in());
    EXPECT_FALSE(t.store);
    EXPECT_FALSE(t.push);
  }
  EXPECT_TRUE(outbound_unsubscribe(hidden_pending_in(), kContact).forward);
}

TEST(SubscriptionTest, Push_HiddenItemThroughout_NeverSent) {
  // Walk a hidden item through every event that keeps it hidden.
  std::optional<RosterItem> item;
  for (Event event : {&inbound_subscribe, &inbound_subscribe, &inbound_subscribed,
                      &outbound_unsubscribe, &inbound_unsubscribed, &inbound_unsubscribe}) {
    const Transition t = event(item, kContact);
    EXPECT_FALSE(t.push);
    if (t.item) {
      EXPECT_TRUE(t.item->hidden);
    }
    item = t.item;
  }
  EXPECT_FALSE(item) << "the withdrawn request leaves nothing behind";
}

TEST(SubscriptionTest, RosterSet_HiddenPending_UnhidesKeepingTheRequest) {
  const Transition t = roster_set(hidden_pending_in(), kContact, "Bob", {"Friends"});
  ASSERT_TRUE(t.item);
  EXPECT_FALSE(t.item->hidden);
  EXPECT_TRUE(same_state(*t.item, kNoneIn));
  EXPECT_EQ(t.item->name, "Bob");
  EXPECT_TRUE(t.store);
  EXPECT_TRUE(t.push);
  EXPECT_FALSE(t.forward);
  // Now in the roster, the item survives the request being withdrawn.
  const Transition u = inbound_unsubscribe(t.item, kContact);
  ASSERT_TRUE(u.item);
  EXPECT_TRUE(same_state(*u.item, kNone));
  EXPECT_TRUE(u.forward);
  EXPECT_FALSE(u.push) << "pending_in is not shown in the roster";
}

// --- roster set / remove (§2.3, §2.5) ---

TEST(SubscriptionTest, RosterSet_NoItem_CreatesNoneItem) {
  const Transition t = roster_set(std::nullopt, kContact, "Bob", {"Friends"});
  ASSERT_TRUE(t.item);
  EXPECT_EQ(t.item->jid, kContact);
  EXPECT_EQ(t.item->name, "Bob");
  EXPECT_EQ(t.item->groups, std::vector<std::string>{"Friends"});
  EXPECT_TRUE(same_state(*t.item, kNone));
  EXPECT_FALSE(t.item->hidden);
  EXPECT_TRUE(t.store);
  EXPECT_TRUE(t.push);
  EXPECT_FALSE(t.forward);
}

TEST(SubscriptionTest, RosterSet_Existing_ReplacesNameAndGroupsKeepingState) {
  RosterItem item = visible_item(kFromOut);
  item.pre_approved = false;
  const Transition t = roster_set(item, kContact, "", {"Family"});
  ASSERT_TRUE(t.item);
  EXPECT_TRUE(same_state(*t.item, kFromOut));
  EXPECT_EQ(t.item->name, "");
  EXPECT_EQ(t.item->groups, std::vector<std::string>{"Family"});
  EXPECT_TRUE(t.store);
  EXPECT_TRUE(t.push);
}

TEST(SubscriptionTest, RosterSet_Unchanged_PushesWithoutStoring) {
  const RosterItem item = visible_item(kBoth);
  const Transition t = roster_set(item, kContact, item.name, item.groups);
  EXPECT_EQ(t.item, item);
  EXPECT_FALSE(t.store);
  EXPECT_TRUE(t.push);
}

TEST(SubscriptionTest, RosterRemove_EachState_CancelsBothDirections) {
  struct Case {
    State state;
    bool unsubscribe;
    bool unsubscribed;
  };
  const std::vector<Case> cases = {
      {kNone, false, false},    {kNoneOut, true, false}, {kNoneIn, false, true},
      {kNoneOutIn, true, true}, {kTo, true, false},      {kToIn, true, true},
      {kFrom, false, true},     {kFromOut, true, true},  {kBoth, true, true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.state.name);
    const RemoveResult r = roster_remove(visible_item(c.state));
    EXPECT_FALSE(r.t.item);
    EXPECT_TRUE(r.t.store);
    EXPECT_TRUE(r.t.push);
    EXPECT_FALSE(r.t.forward);
    EXPECT_EQ(r.send_unsubscribe, c.unsubscribe);
    EXPECT_EQ(r.send_unsubscribed, c.unsubscribed);
  }
}

TEST(SubscriptionTest, RosterRemove_NotInRoster_ChangesNothing) {
  const RemoveResult none = roster_remove(std::nullopt);
  EXPECT_FALSE(none.t.item);
  EXPECT_FALSE(none.t.store);
  EXPECT_FALSE(none.t.push);
  EXPECT_FALSE(none.send_unsubscribe);
  EXPECT_FALSE(none.send_unsubscribed);

  const RemoveResult hidden = roster_remove(hidden_pending_in());
  EXPECT_EQ(hidden.t.item, hidden_pending_in());
  EXPECT_FALSE(hidden.t.store);
  EXPECT_FALSE(hidden.t.push);
  EXPECT_FALSE(hidden.send_unsubscribe);
  EXPECT_FALSE(hidden.send_unsubscribed);
}

TEST(SubscriptionTest, RosterRemove_PreApproved_DropsTheApproval) {
  RosterItem item = visible_item(kNone);
  item.pre_approved = true;
  const RemoveResult r = roster_remove(item);
  EXPECT_FALSE(r.t.item);
  EXPECT_TRUE(r.t.store);
  EXPECT_FALSE(r.send_unsubscribe);
  EXPECT_FALSE(r.send_unsubscribed);
}

// --- queries ---

TEST(SubscriptionTest, PresenceDirections_FollowSubscription) {
  struct Case {
    State state;
    bool receives;
    bool sends;
  };
  for (const Case& c : std::vector<Case>{{kNone, false, false},
                                         {kNoneOutIn, false, false},
                                         {kTo, false, true},
                                         {kToIn, false, true},
                                         {kFrom, true, false},
                                         {kFromOut, true, false},
                                         {kBoth, true, true}}) {
    SCOPED_TRACE(c.state.name);
    EXPECT_EQ(receives_presence(visible_item(c.state)), c.receives);
    EXPECT_EQ(sends_presence(visible_item(c.state)), c.sends);
  }
}

TEST(SubscriptionTest, SubscriptionName_EachValue_MatchesRosterAttribute) {
  EXPECT_STREQ(subscription_name(Subscription::kNone), "none");
  EXPECT_STREQ(subscription_name(Subscription::kTo), "to");
  EXPECT_STREQ(subscription_name(Subscription::kFrom), "from");
  EXPECT_STREQ(subscription_name(Subscription::kBoth), "both");
}

TEST(SubscriptionTest, ShowsAsk_OnlyForPendingOut) {
  EXPECT_TRUE(shows_ask(visible_item(kNoneOut)));
  EXPECT_TRUE(shows_ask(visible_item(kNoneOutIn)));
  EXPECT_TRUE(shows_ask(visible_item(kFromOut)));
  EXPECT_FALSE(shows_ask(visible_item(kNoneIn)));
  EXPECT_FALSE(shows_ask(visible_item(kToIn)));
  EXPECT_FALSE(shows_approved(visible_item(kNone)));
}

// --- two users on one server, each event applied to both rosters ---

class TwoPartyTest : public ::testing::Test {
 protected:
  static constexpr const char* kAlice = "alice@example.com";
  static constexpr const char* kBob = "bob@example.com";

  // Applies `event` to owner's item for `contact` as the server would: persists on `store`.
  Transition apply(const std::string& owner, const std::string& contact, Event event) {
    std::optional<RosterItem>& slot = rosters_[{owner, contact}];
    Transition t = event(slot, contact);
    if (t.store) {
      slot = t.item;
    } else {
      EXPECT_EQ(t.item, slot) << "an unstored transition must not change the item";
    }
    if (t.push) ++pushes_[owner];
    return t;
  }

  // The user sends a subscription stanza: outbound processing, then (when routed) inbound
  // processing at the contact. Returns the contact's transition, if it got the stanza.
  std::optional<Transition> send(const std::string& from, const std::string& to, Event outbound,
                                 Event inbound) {
    const Transition out = apply(from, to, outbound);
    if (!out.forward) return std::nullopt;
    Transition in = apply(to, from, inbound);
    // The contact's server answers 'subscribed' itself (ignored unless a request is pending).
    if (in.auto_subscribed) apply(from, to, &inbound_subscribed);
    return in;
  }

  const std::optional<RosterItem>& item(const std::string& owner, const std::string& contact) {
    return rosters_[{owner, contact}];
  }

  std::map<std::pair<std::string, std::string>, std::optional<RosterItem>> rosters_;
  std::map<std::string, int> pushes_;
};

TEST_F(TwoPartyTest, MutualSubscription_SubscribeApproveAndUnsubscribe_ReachesBothThenNone) {
  // Alice asks Bob; Bob has never heard of Alice: his server keeps a hidden request.
  auto in = send(kAlice, kBob, &outbound_subscribe, &inbound_subscribe);
  ASSERT_TRUE(in);
  EXPECT_TRUE(in->forward) << "delivered to Bob";
  ASSERT_TRUE(item(kAlice, kBob));
  EXPECT_TRUE(same_state(*item(kAlice, kBob), kNoneOut));
  ASSERT_TRUE(item(kBob, kAlice));
  EXPECT_TRUE(item(kBob, kAlice)->hidden);
  EXPECT_TRUE(same_state(*item(kBob, kAlice), kNoneIn));
  EXPECT_EQ(pushes_[kAlice], 1);
  EXPECT_EQ(pushes_[kBob], 0);

  // Alice's client asks again after a reconnect: routed, but Bob is not bothered twice.
  in = send(kAlice, kBob, &outbound_subscribe, &inbound_subscribe);
  ASSERT_TRUE(in);
  EXPECT_FALSE(in->forward);
  EXPECT_EQ(pushes_[kAlice], 1);

  // Bob approves: Alice enters his roster with 'from'; Alice gets 'to'.
  in = send(kBob, kAlice, &outbound_subscribed, &inbound_subscribed);
  ASSERT_TRUE(in);
  EXPECT_TRUE(in->forward);
  EXPECT_FALSE(item(kBob, kAlice)->hidden);
  EXPECT_TRUE(same_state(*item(kBob, kAlice), kFrom));
  EXPECT_TRUE(same_state(*item(kAlice, kBob), kTo));
  EXPECT_TRUE(receives_presence(*item(kBob, kAlice)));
  EXPECT_TRUE(sends_presence(*item(kAlice, kBob)));
  EXPECT_EQ(pushes_[kAlice], 2);
  EXPECT_EQ(pushes_[kBob], 1);

  // Bob asks back; Alice approves: both.
  in = send(kBob, kAlice, &outbound_subscribe, &inbound_subscribe);
  ASSERT_TRUE(in);
  EXPECT_TRUE(in->forward);
  EXPECT_TRUE(same_state(*item(kBob, kAlice), kFromOut));
  EXPECT_TRUE(same_state(*item(kAlice, kBob), kToIn));
  in = send(kAlice, kBob, &outbound_subscribed, &inbound_subscribed);
  ASSERT_TRUE(in);
  EXPECT_TRUE(in->forward);
  EXPECT_TRUE(same_state(*item(kAlice, kBob), kBoth));
  EXPECT_TRUE(same_state(*item(kBob, kAlice), kBoth));
  EXPECT_EQ(pushes_[kAlice], 3);
  EXPECT_EQ(pushes_[kBob], 3);

  // Bob subscribing again while subscribed: Alice's server answers for her.
  in = send(kBob, kAlice, &outbound_subscribe, &inbound_subscribe);
  ASSERT_TRUE(in);
  EXPECT_TRUE(in->auto_subscribed);
  EXPECT_FALSE(in->forward);
  EXPECT_TRUE(same_state(*item(kBob, kAlice), kBoth));
  EXPECT_EQ(pushes_[kBob], 3);

  // Alice unsubscribes from Bob: Alice 'from', Bob 'to'.
  in = send(kAlice, kBob, &outbound_unsubscribe, &inbound_unsubscribe);
  ASSERT_TRUE(in);
  EXPECT_TRUE(in->forward);
  EXPECT_TRUE(same_state(*item(kAlice, kBob), kFrom));
  EXPECT_TRUE(same_state(*item(kBob, kAlice), kTo));

  // Alice cancels Bob's subscription too: none on both sides, items kept in the rosters.
  in = send(kAlice, kBob, &outbound_unsubscribed, &inbound_unsubscribed);
  ASSERT_TRUE(in);
  EXPECT_TRUE(in->forward);
  EXPECT_TRUE(same_state(*item(kAlice, kBob), kNone));
  EXPECT_TRUE(same_state(*item(kBob, kAlice), kNone));
  EXPECT_FALSE(item(kAlice, kBob)->hidden);
  EXPECT_FALSE(item(kBob, kAlice)->hidden);
  EXPECT_EQ(pushes_[kAlice], 5);
  EXPECT_EQ(pushes_[kBob], 5);

  // A second cancellation changes nothing and is not routed.
  EXPECT_FALSE(send(kAlice, kBob, &outbound_unsubscribed, &inbound_unsubscribed));
}

TEST_F(TwoPartyTest, PreApproval_BobApprovesFirst_AliceSubscriptionAcceptedAtOnce) {
  // Bob pre-approves Alice: stored and pushed to Bob, not routed to Alice.
  EXPECT_FALSE(send(kBob, kAlice, &outbound_subscribed, &inbound_subscribed));
  ASSERT_TRUE(item(kBob, kAlice));
  EXPECT_TRUE(item(kBob, kAlice)->pre_approved);
  EXPECT_FALSE(item(kAlice, kBob));
  EXPECT_EQ(pushes_[kBob], 1);

  // Alice subscribes: Bob's server answers 'subscribed' without asking him.
  const auto in = send(kAlice, kBob, &outbound_subscribe, &inbound_subscribe);
  ASSERT_TRUE(in);
  EXPECT_TRUE(in->auto_subscribed);
  EXPECT_FALSE(in->forward);
  EXPECT_TRUE(same_state(*item(kBob, kAlice), kFrom));
  EXPECT_FALSE(item(kBob, kAlice)->pre_approved);
  EXPECT_TRUE(same_state(*item(kAlice, kBob), kTo));
  EXPECT_EQ(pushes_[kBob], 2);
  EXPECT_EQ(pushes_[kAlice], 2);
}

TEST_F(TwoPartyTest, RosterRemove_MutualSubscription_BothSidesEndAtNone) {
  send(kAlice, kBob, &outbound_subscribe, &inbound_subscribe);
  send(kBob, kAlice, &outbound_subscribed, &inbound_subscribed);
  send(kBob, kAlice, &outbound_subscribe, &inbound_subscribe);
  send(kAlice, kBob, &outbound_subscribed, &inbound_subscribed);
  ASSERT_TRUE(same_state(*item(kAlice, kBob), kBoth));

  // Alice removes Bob: the item goes; Bob's server processes what Alice's server sends.
  const RemoveResult r = roster_remove(item(kAlice, kBob));
  EXPECT_TRUE(r.send_unsubscribe);
  EXPECT_TRUE(r.send_unsubscribed);
  rosters_[{kAlice, kBob}] = r.t.item;
  const Transition unsub = apply(kBob, kAlice, &inbound_unsubscribe);
  EXPECT_TRUE(unsub.forward);
  const Transition unsubd = apply(kBob, kAlice, &inbound_unsubscribed);
  EXPECT_TRUE(unsubd.forward);
  EXPECT_FALSE(item(kAlice, kBob));
  ASSERT_TRUE(item(kBob, kAlice));
  EXPECT_TRUE(same_state(*item(kBob, kAlice), kNone));
}

TEST_F(TwoPartyTest, DeniedRequest_HiddenItemRemoved_AliceBackToNone) {
  send(kAlice, kBob, &outbound_subscribe, &inbound_subscribe);
  ASSERT_TRUE(item(kBob, kAlice));
  const auto in = send(kBob, kAlice, &outbound_unsubscribed, &inbound_unsubscribed);
  ASSERT_TRUE(in);
  EXPECT_TRUE(in->forward);
  EXPECT_FALSE(item(kBob, kAlice)) << "nothing left of the request";
  EXPECT_EQ(pushes_[kBob], 0);
  EXPECT_TRUE(same_state(*item(kAlice, kBob), kNone));
}

}  // namespace
}  // namespace waddle::im::logic
