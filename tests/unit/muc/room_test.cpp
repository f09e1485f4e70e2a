// Room logic (XEP-0045) without I/O: a fake context records what the room sends.
#include "muc/room.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "identity/credential.h"
#include "muc/service.h"
#include "xml/parser.h"

namespace waddle::muc {
namespace {

using core::Jid;
using xml::Element;

Element parse(const std::string& text) {
  auto e = xml::parse_element(text);
  EXPECT_TRUE(e.has_value()) << text;
  return e ? std::move(*e) : Element();
}

Jid jid(const std::string& s) {
  return *Jid::parse(s);
}

std::vector<std::string> codes(const Element& p) {
  std::vector<std::string> out;
  if (const Element* x = p.child("x", ns::kMucUser))
    for (const auto* s : x->children("status", ns::kMucUser)) out.emplace_back(s->attr("code"));
  return out;
}

bool has_code(const Element& p, const std::string& c) {
  auto v = codes(p);
  return std::find(v.begin(), v.end(), c) != v.end();
}

class RoomTest : public ::testing::Test {
 protected:
  RoomTest() {
    ctx_.send = [this](Element e) { sent.push_back(std::move(e)); };
    ctx_.now = [this] { return now; };
    ctx_.is_local_domain = [](std::string_view d) { return d == "a.test"; };
    ctx_.history_size = 5;
    ctx_.max_users = 50;
  }

  Room& room(RoomConfig config = {}) {
    room_.emplace(jid("lobby@conference.a.test"), config, ctx_);
    room_->set_affiliation("owner@a.test", Affiliation::kOwner);
    return *room_;
  }

  void join(const std::string& full, const std::string& nick, const std::string& extra = "") {
    auto from = jid(full);
    room_->presence(
        parse("<presence xmlns='jabber:client' from='" + full + "' to='lobby@conference.a.test/" +
              nick + "'><x xmlns='http://jabber.org/protocol/muc'>" + extra + "</x></presence>"),
        from, nick, {});
  }

  std::vector<Element> to(const std::string& full) const {
    std::vector<Element> out;
    for (const auto& e : sent)
      if (e.attr("to") == full) out.push_back(e);
    return out;
  }

  // The owner (joined) says m0, m1, ... in the room, 100 s apart from `start`.
  void say_messages(int n, std::int64_t start) {
    for (int i = 0; i < n; ++i) {
      now = start + i * 100;
      room_->message(parse("<message xmlns='jabber:client' from='owner@a.test/r' "
                           "to='lobby@conference.a.test' type='groupchat'><body>m" +
                           std::to_string(i) + "</body></message>"),
                     jid("owner@a.test/r"), "");
    }
  }

  // The bodies of the room messages `full` was sent, in order.
  std::vector<std::string> bodies(const std::string& full) const {
    std::vector<std::string> out;
    for (const auto& e : to(full))
      if (e.name() == "message" && e.child("body")) out.push_back(e.child_text("body"));
    return out;
  }

  const Element* last_error_to(const std::string& full) const {
    for (auto it = sent.rbegin(); it != sent.rend(); ++it)
      if (it->attr("to") == full && it->attr("type") == "error") return &*it;
    return nullptr;
  }

  // A muc#admin set from `full`; returns the room's answer (sent before anything it causes).
  Element admin_set(const std::string& full, const std::string& items) {
    sent.clear();
    room_->iq(parse("<iq xmlns='jabber:client' type='set' id='s' from='" + full +
                    "' to='lobby@conference.a.test'><query "
                    "xmlns='http://jabber.org/protocol/muc#admin'>" +
                    items + "</query></iq>"),
              jid(full), "");
    EXPECT_FALSE(sent.empty());
    return sent.empty() ? Element() : sent.front();
  }

  // The muc#user item of the last presence `viewer` received about `nick`.
  std::string last_item_attr(const std::string& viewer, const std::string& nick,
                             const std::string& attr) const {
    auto got = to(viewer);
    for (auto it = got.rbegin(); it != got.rend(); ++it)
      if (it->name() == "presence" && it->attr("from") == "lobby@conference.a.test/" + nick)
        return std::string(it->child("x", ns::kMucUser)->child("item", ns::kMucUser)->attr(attr));
    return "(no presence)";
  }

  static std::string condition(const Element* e) {
    if (!e) return "(none)";
    const Element* err = e->child("error");
    return err && err->first_child() ? err->first_child()->name() : "(none)";
  }

  Context ctx_;
  std::optional<Room> room_;
  std::vector<Element> sent;
  std::int64_t now = 1'700'000'000;
};

TEST_F(RoomTest, Join_SendsOccupantsThenSelfThenHistoryThenSubject) {
  room();
  join("owner@a.test/r", "Owner");
  room_->message(parse("<message xmlns='jabber:client' from='owner@a.test/r' "
                       "to='lobby@conference.a.test' type='groupchat'><body>hi</body></message>"),
                 jid("owner@a.test/r"), "");
  sent.clear();
  join("bob@b.test/x", "Bob");
  auto got = to("bob@b.test/x");
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0].attr("from"), "lobby@conference.a.test/Owner");
  EXPECT_EQ(got[1].attr("from"), "lobby@conference.a.test/Bob");
  EXPECT_TRUE(has_code(got[1], "110"));
  EXPECT_EQ(got[2].child_text("body"), "hi");
  EXPECT_NE(got[2].child("delay", "urn:xmpp:delay"), nullptr);
  EXPECT_NE(got[3].child("subject"), nullptr);
  // The owner (a moderator) sees Bob's real JID; Bob, a participant, does not see the owner's.
  auto owner_view = to("owner@a.test/r");
  ASSERT_EQ(owner_view.size(), 1u);
  EXPECT_EQ(owner_view[0].child("x", ns::kMucUser)->child("item", ns::kMucUser)->attr("jid"),
            "bob@b.test/x");
  EXPECT_FALSE(got[0].child("x", ns::kMucUser)->child("item", ns::kMucUser)->has_attr("jid"));
  const auto& occ = room_->occupants().at("Bob");
  EXPECT_TRUE(occ.is_remote);
  EXPECT_EQ(occ.home_server, "b.test");
}

TEST_F(RoomTest, ManyRemoteJoins_EachJoinerSeesEveryoneAndEveryoneSeesIt) {
  // A community room: 300 users of one other server join one after the other. The k-th
  // joiner gets the presence of the k occupants before it and its own (then the subject);
  // each of those gets the joiner's. The owner (a moderator) and the occupant itself see the
  // real JID, other participants do not; every copy carries the occupant's stable id.
  constexpr int kJoins = 300;
  RoomConfig c;
  c.max_users = kJoins + 1;
  room(c);
  join("owner@a.test/r", "Owner");
  sent.clear();
  for (int i = 0; i < kJoins; ++i)
    join("u" + std::to_string(i) + "@b.test/r", "U" + std::to_string(i));
  ASSERT_EQ(room_->occupants().size(), 1u + kJoins);

  std::map<std::string, std::set<std::string>> seen;  // recipient -> nicks it saw
  std::map<std::string, std::string> ids;             // nick -> occupant-id
  std::size_t presences = 0, subjects = 0;
  for (const auto& p : sent) {
    if (p.name() == "message" && p.child("subject")) {
      ++subjects;
      continue;
    }
    ASSERT_EQ(p.name(), "presence") << p.str();
    ++presences;
    const std::string_view from = p.attr("from");
    const std::string nick(from.substr(from.find('/') + 1));
    const std::string to(p.attr("to"));
    EXPECT_TRUE(seen[to].insert(nick).second) << to << " got " << nick << " twice";
    const Element* id = p.child("occupant-id", ns::kOccupantId);
    ASSERT_NE(id, nullptr) << p.str();
    auto [known, fresh] = ids.emplace(nick, std::string(id->attr("id")));
    EXPECT_EQ(known->second, id->attr("id")) << nick;
    const Element* item = p.child("x", ns::kMucUser)->child("item", ns::kMucUser);
    const bool sees_jid = to == "owner@a.test/r" || has_code(p, "110");
    EXPECT_EQ(item->has_attr("jid"), sees_jid) << p.str();
  }
  EXPECT_EQ(subjects, static_cast<std::size_t>(kJoins));
  // Joiner k (from 0): the k + 1 occupants before it and its own; those k + 1 are told of it.
  // The sum of 2k + 3 over k < kJoins:
  EXPECT_EQ(presences, static_cast<std::size_t>(kJoins * (kJoins + 1) + kJoins));
  ASSERT_EQ(seen.size(), 1u + kJoins);
  for (const auto& [to, nicks] : seen)
    EXPECT_EQ(nicks.size(), to == "owner@a.test/r" ? kJoins : kJoins + 1u) << to;
  std::set<std::string> distinct;
  for (const auto& [nick, id] : ids) distinct.insert(id);
  EXPECT_EQ(distinct.size(), 1u + kJoins);
}

TEST_F(RoomTest, Join_Refusals) {
  RoomConfig c;
  c.max_users = 2;
  room(c);
  join("owner@a.test/r", "Owner");
  join("bob@b.test/x", "Owner");
  EXPECT_EQ(condition(last_error_to("bob@b.test/x")), "conflict");
  join("bob@b.test/x", "Bob");
  join("carol@c.test/y", "Carol");
  EXPECT_EQ(condition(last_error_to("carol@c.test/y")), "service-unavailable");
  room_->set_affiliation("eve@e.test", Affiliation::kOutcast);
  join("eve@e.test/z", "Eve");
  EXPECT_EQ(condition(last_error_to("eve@e.test/z")), "forbidden");
}

TEST_F(RoomTest, SameUserFromManyResources_CappedAtTen) {
  room();
  for (int i = 0; i < 10; ++i) join("bob@b.test/r" + std::to_string(i), "Bob");
  EXPECT_EQ(room_->occupants().at("Bob").sessions.size(), 10u);
  join("bob@b.test/r10", "Bob");
  EXPECT_EQ(condition(last_error_to("bob@b.test/r10")), "resource-constraint");
  EXPECT_EQ(room_->occupants().at("Bob").sessions.size(), 10u);
}

TEST_F(RoomTest, Errors_OnlyUnreachabilityRemovesAnOccupant) {
  room();
  join("owner@a.test/r", "Owner");
  join("bob@b.test/x", "Bob");
  auto error = [&](const std::string& cond) {
    room_->message(parse("<message xmlns='jabber:client' from='bob@b.test/x' "
                         "to='lobby@conference.a.test/Owner' type='error'><error type='cancel'><" +
                         cond + " xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"),
                   jid("bob@b.test/x"), "Owner");
  };
  error("not-acceptable");  // e.g. Bob's client refused a private message
  error("policy-violation");
  EXPECT_TRUE(room_->occupants().contains("Bob"));
  sent.clear();
  error("remote-server-not-found");  // Bob's server is gone
  EXPECT_FALSE(room_->occupants().contains("Bob"));
  auto seen = to("owner@a.test/r");
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].attr("type"), "unavailable");
  EXPECT_TRUE(has_code(seen[0], "333"));
}

TEST_F(RoomTest, PrivateMessage_CannotCarryRoomNotices) {
  room();
  join("owner@a.test/r", "Owner");
  join("bob@b.test/x", "Bob");
  sent.clear();
  room_->message(
      parse("<message xmlns='jabber:client' from='bob@b.test/x' to='lobby@conference.a.test/Owner' "
            "type='chat'><body>psst</body><x xmlns='http://jabber.org/protocol/muc#user'>"
            "<status code='307'/></x><delay xmlns='urn:xmpp:delay' stamp='2001-01-01T00:00:00Z'/>"
            "<occupant-id xmlns='urn:xmpp:occupant-id:0' id='forged'/></message>"),
      jid("bob@b.test/x"), "Owner");
  auto got = to("owner@a.test/r");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].attr("from"), "lobby@conference.a.test/Bob");
  EXPECT_TRUE(codes(got[0]).empty());
  EXPECT_EQ(got[0].child("delay", "urn:xmpp:delay"), nullptr);
  EXPECT_NE(got[0].child("occupant-id", ns::kOccupantId)->attr("id"), "forged");
}

TEST_F(RoomTest, AffiliationLists_MembersReadMembersOnlyAdminsReadBans) {
  room();
  room_->set_affiliation("bob@b.test", Affiliation::kMember);
  room_->set_affiliation("eve@e.test", Affiliation::kOutcast);
  join("bob@b.test/x", "Bob");
  join("carol@c.test/y", "Carol");
  auto ask = [&](const std::string& who, const std::string& aff) {
    sent.clear();
    room_->iq(parse("<iq xmlns='jabber:client' type='get' id='q' from='" + who +
                    "' to='lobby@conference.a.test'><query "
                    "xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='" +
                    aff + "'/></query></iq>"),
              jid(who), "");
    return sent.at(0);
  };
  EXPECT_EQ(ask("bob@b.test/x", "member").attr("type"), "result");
  EXPECT_EQ(ask("bob@b.test/x", "owner").attr("type"), "result");
  EXPECT_EQ(ask("bob@b.test/x", "outcast").attr("type"), "error");
  EXPECT_EQ(ask("carol@c.test/y", "member").attr("type"), "error");
  EXPECT_EQ(ask("owner@a.test/r", "outcast").attr("type"), "result");
}

TEST_F(RoomTest, Admin_LastOwnerStays_AndKickIsAnnounced) {
  room();
  join("owner@a.test/r", "Owner");
  join("bob@b.test/x", "Bob");
  sent.clear();
  room_->iq(
      parse("<iq xmlns='jabber:client' type='set' id='a' from='owner@a.test/r' "
            "to='lobby@conference.a.test'><query xmlns='http://jabber.org/protocol/muc#admin'>"
            "<item affiliation='none' jid='owner@a.test'/></query></iq>"),
      jid("owner@a.test/r"), "");
  EXPECT_EQ(condition(&sent.at(0)), "conflict");
  sent.clear();
  room_->iq(
      parse("<iq xmlns='jabber:client' type='set' id='k' from='bob@b.test/x' "
            "to='lobby@conference.a.test'><query xmlns='http://jabber.org/protocol/muc#admin'>"
            "<item role='none' nick='Owner'/></query></iq>"),
      jid("bob@b.test/x"), "");
  EXPECT_EQ(sent.at(0).attr("type"), "error");
  EXPECT_TRUE(room_->occupants().contains("Owner"));
  sent.clear();
  room_->iq(
      parse("<iq xmlns='jabber:client' type='set' id='k' from='owner@a.test/r' "
            "to='lobby@conference.a.test'><query xmlns='http://jabber.org/protocol/muc#admin'>"
            "<item role='none' nick='Bob'><reason>spam</reason></item></query></iq>"),
      jid("owner@a.test/r"), "");
  EXPECT_FALSE(room_->occupants().contains("Bob"));
  auto bob = to("bob@b.test/x");
  ASSERT_FALSE(bob.empty());
  EXPECT_TRUE(has_code(bob.back(), "307"));
  EXPECT_TRUE(has_code(bob.back(), "110"));
}

TEST_F(RoomTest, Config_MaxUsersCappedByTheService_AndSaveLoadRoundTrip) {
  room();
  join("owner@a.test/r", "Owner");
  auto submit = [&](const std::string& var, const std::string& value) {
    sent.clear();
    room_->iq(parse("<iq xmlns='jabber:client' type='set' id='c' from='owner@a.test/r' "
                    "to='lobby@conference.a.test'><query "
                    "xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' "
                    "type='submit'><field var='" +
                    var + "'><value>" + value + "</value></field></x></query></iq>"),
              jid("owner@a.test/r"), "");
    for (const auto& e : sent)
      if (e.name() == "iq") return std::string(e.attr("type"));
    return std::string("(no answer)");
  };
  EXPECT_EQ(submit("muc#roomconfig_maxusers", "51"), "error");
  EXPECT_EQ(submit("muc#roomconfig_maxusers", "50"), "result");
  EXPECT_EQ(submit("muc#roomconfig_persistentroom", "1"), "result");
  EXPECT_EQ(submit("muc#roomconfig_whois", "everyone"), "error");
  const std::string id = room_->occupant_id(jid("bob@b.test"));
  Element saved = room_->save();
  auto copy = Room::load(jid("lobby@conference.a.test"), saved, ctx_);
  ASSERT_TRUE(copy.has_value());
  EXPECT_EQ(copy->config().max_users, 50u);
  EXPECT_TRUE(copy->config().persistent);
  EXPECT_EQ(copy->affiliation_of(jid("owner@a.test")), Affiliation::kOwner);
  EXPECT_EQ(copy->occupant_id(jid("bob@b.test")), id);  // stable across restarts
  EXPECT_NE(copy->occupant_id(jid("carol@c.test")), id);
}

TEST_F(RoomTest, History_SinceWithOffsetAndMaxStanzas) {
  room();
  join("owner@a.test/r", "Owner");
  say_messages(4, 1'700'000'000);
  // 1700000150 = 2023-11-14T22:15:50Z; the same instant written with a +01:00 offset.
  join("bob@b.test/x", "Bob", "<history since='2023-11-14T23:15:50+01:00'/>");
  EXPECT_EQ(bodies("bob@b.test/x"), (std::vector<std::string>{"m2", "m3"}));
  join("carol@c.test/y", "Carol", "<history maxstanzas='1'/>");
  EXPECT_EQ(bodies("carol@c.test/y"), std::vector<std::string>{"m3"});
}

// <history seconds=…/> with a value beyond any clock (or negative, which a sign-blind parse
// would wrap) asks for everything there is; it must not overflow into "nothing" (or into
// undefined behaviour).
TEST_F(RoomTest, History_SecondsBeyondAnyClockMeansEverything) {
  room();
  join("owner@a.test/r", "Owner");
  say_messages(3, 1'700'000'000);
  const std::vector<std::string> all{"m0", "m1", "m2"};
  join("bob@b.test/x", "Bob", "<history seconds='18446744073709551615'/>");
  EXPECT_EQ(bodies("bob@b.test/x"), all);
  join("carol@c.test/y", "Carol", "<history seconds='9223372036854775808'/>");
  EXPECT_EQ(bodies("carol@c.test/y"), all);
  join("dave@d.test/z", "Dave", "<history seconds='-1'/>");
  EXPECT_EQ(bodies("dave@d.test/z"), all);  // unreadable: ignored (full history)
  join("erin@e.test/w", "Erin", "<history seconds='150'/>");
  EXPECT_EQ(bodies("erin@e.test/w"), (std::vector<std::string>{"m1", "m2"}));
}

TEST_F(RoomTest, Admin_SetIsAppliedEntirelyOrNotAtAll) {
  room();
  join("owner@a.test/r", "Owner");
  join("bob@b.test/x", "Bob");
  join("carol@c.test/y", "Carol");
  Element answer = admin_set("owner@a.test/r",
                             "<item affiliation='member' jid='bob@b.test'/>"
                             "<item affiliation='bogus' jid='carol@c.test'/>");
  EXPECT_EQ(condition(&answer), "bad-request");
  EXPECT_EQ(sent.size(), 1u);  // nothing announced
  EXPECT_EQ(room_->affiliation_of(jid("bob@b.test")), Affiliation::kNone);

  answer = admin_set("owner@a.test/r",
                     "<item affiliation='member' jid='bob@b.test'/>"
                     "<item affiliation='outcast' nick='Carol'><reason>spam</reason></item>");
  EXPECT_EQ(answer.attr("type"), "result");
  EXPECT_EQ(room_->affiliation_of(jid("bob@b.test")), Affiliation::kMember);
  EXPECT_EQ(last_item_attr("owner@a.test/r", "Bob", "affiliation"), "member");
  EXPECT_EQ(room_->affiliation_of(jid("carol@c.test")), Affiliation::kOutcast);
  EXPECT_FALSE(room_->occupants().contains("Carol"));
  ASSERT_FALSE(to("carol@c.test/y").empty());
  EXPECT_TRUE(has_code(to("carol@c.test/y").back(), "301"));
}

TEST_F(RoomTest, Admin_AdminsChangeOnlyWhatIsBelowThem_FirstBadItemAnswers) {
  room();
  room_->set_affiliation("admin@a.test", Affiliation::kAdmin);
  join("owner@a.test/r", "Owner");
  join("admin@a.test/r", "Admin");
  join("bob@b.test/x", "Bob");
  const std::string admin = "admin@a.test/r";
  Element answer = admin_set(admin, "<item affiliation='owner' jid='bob@b.test'/>");
  EXPECT_EQ(condition(&answer), "forbidden");
  answer = admin_set(admin, "<item affiliation='member' jid='owner@a.test'/>");
  EXPECT_EQ(condition(&answer), "forbidden");
  // Items are read and checked in order: the first one that fails gives the answer.
  answer = admin_set(admin, "<item affiliation='admin' jid='bob@b.test'/><item nick='Bob'/>");
  EXPECT_EQ(condition(&answer), "forbidden");
  answer = admin_set(admin, "<item nick='Bob'/><item affiliation='admin' jid='bob@b.test'/>");
  EXPECT_EQ(condition(&answer), "bad-request");
  answer = admin_set(admin, "<item role='participant' nick='Nobody'/>");
  EXPECT_EQ(condition(&answer), "bad-request");
  EXPECT_TRUE(room_->occupants().contains("Bob"));

  answer = admin_set(admin, "<item affiliation='outcast' jid='bob@b.test'/>");
  EXPECT_EQ(answer.attr("type"), "result");
  EXPECT_FALSE(room_->occupants().contains("Bob"));
}

TEST_F(RoomTest, Roles_OnlyAdminsGrantModeration_LosingAdminLowersTheRole) {
  room();
  room_->set_affiliation("admin@a.test", Affiliation::kAdmin);
  join("owner@a.test/r", "Owner");
  join("admin@a.test/r", "Admin");
  join("bob@b.test/x", "Bob");
  join("carol@c.test/y", "Carol");
  Element answer = admin_set("admin@a.test/r", "<item role='moderator' nick='Bob'/>");
  EXPECT_EQ(answer.attr("type"), "result");
  EXPECT_EQ(room_->occupants().at("Bob").role, Role::kModerator);
  EXPECT_EQ(last_item_attr("carol@c.test/y", "Bob", "role"), "moderator");
  // Bob moderates but is no admin: he may not grant moderation nor kick an admin.
  answer = admin_set("bob@b.test/x", "<item role='moderator' nick='Carol'/>");
  EXPECT_EQ(condition(&answer), "not-allowed");
  answer = admin_set("bob@b.test/x", "<item role='none' nick='Admin'/>");
  EXPECT_EQ(condition(&answer), "not-allowed");
  answer = admin_set("carol@c.test/y", "<item role='visitor' nick='Bob'/>");
  EXPECT_EQ(condition(&answer), "forbidden");

  answer = admin_set("owner@a.test/r", "<item affiliation='member' jid='admin@a.test'/>");
  EXPECT_EQ(answer.attr("type"), "result");
  EXPECT_EQ(room_->occupants().at("Admin").role, Role::kParticipant);
  EXPECT_EQ(last_item_attr("carol@c.test/y", "Admin", "role"), "participant");
  EXPECT_EQ(last_item_attr("carol@c.test/y", "Admin", "affiliation"), "member");
}

// ------------------------------------------------------------------ amplifiers and bounds

// The history kept is bounded in bytes as well as in count: the oldest go first, and a
// message larger than the whole budget is not kept at all.
TEST_F(RoomTest, History_BoundedInBytes) {
  ctx_.history_size = 20;
  ctx_.history_bytes = 4096;
  room();
  join("owner@a.test/r", "Owner");
  const std::string kilo(1000, 'x');
  for (int i = 0; i < 10; ++i) {
    room_->message(parse("<message xmlns='jabber:client' type='groupchat'><body>k" +
                         std::to_string(i) + kilo + "</body></message>"),
                   jid("owner@a.test/r"), "");
  }
  join("bob@b.test/x", "Bob");
  std::size_t bytes = 0;
  std::vector<std::string> got;
  for (const auto& m : to("bob@b.test/x")) {
    if (m.name() != "message" || !m.child("body")) continue;
    bytes += m.str().size();
    got.push_back(m.child_text("body").substr(0, 2));
  }
  EXPECT_EQ(got, (std::vector<std::string>{"k7", "k8", "k9"}));
  EXPECT_LT(bytes, 4096u + 3 * 200u);  // the budget, plus a delay stamp and 'to' each
  // A message larger than the budget is not kept, and does not push the others out.
  room_->message(parse("<message xmlns='jabber:client' type='groupchat'><body>" +
                       std::string(5000, 'y') + "</body></message>"),
                 jid("owner@a.test/r"), "");
  join("carol@c.test/y", "Carol");
  got.clear();
  for (const auto& b : bodies("carol@c.test/y")) got.push_back(b.substr(0, 2));
  EXPECT_EQ(got, (std::vector<std::string>{"k7", "k8", "k9"}));
}

// A resource that sends its join again gets the room state (occupants, itself, subject) but
// not the history it was sent less than a minute ago; after a minute it gets it again.
TEST_F(RoomTest, Rejoin_ReplaysNoHistoryWithinAMinute) {
  room();
  join("owner@a.test/r", "Owner");
  say_messages(3, now);
  join("bob@b.test/x", "Bob");
  EXPECT_EQ(bodies("bob@b.test/x"), (std::vector<std::string>{"m0", "m1", "m2"}));
  for (int i = 0; i < 3; ++i) {
    sent.clear();
    now += 10;
    join("bob@b.test/x", "Bob");
    auto got = to("bob@b.test/x");
    ASSERT_EQ(got.size(), 3u);  // the owner's presence, his own (110), the subject
    EXPECT_EQ(got[0].attr("from"), "lobby@conference.a.test/Owner");
    EXPECT_TRUE(has_code(got[1], "110"));
    EXPECT_NE(got[2].child("subject"), nullptr);
    EXPECT_TRUE(bodies("bob@b.test/x").empty());
  }
  sent.clear();
  now += 60;
  join("bob@b.test/x", "Bob");
  EXPECT_EQ(bodies("bob@b.test/x"), (std::vector<std::string>{"m0", "m1", "m2"}));
  // Another resource of Bob's joining is a new session: it gets the history.
  sent.clear();
  join("bob@b.test/y", "Bob");
  EXPECT_EQ(bodies("bob@b.test/y"), (std::vector<std::string>{"m0", "m1", "m2"}));
  EXPECT_EQ(room_->occupants().size(), 2u);
}

namespace {

std::string invites(int n, const std::string& domain = "z.test") {
  std::string out;
  for (int i = 0; i < n; ++i) out += "<invite to='u" + std::to_string(i) + "@" + domain + "'/>";
  return out;
}

}  // namespace

class RoomInviteTest : public RoomTest {
 protected:
  void invite(const std::string& full, const std::string& inner) {
    sent.clear();
    room_->message(parse("<message xmlns='jabber:client' from='" + full +
                         "' to='lobby@conference.a.test'><x "
                         "xmlns='http://jabber.org/protocol/muc#user'>" +
                         inner + "</x></message>"),
                   jid(full), "");
  }
  // Messages from the room carrying `what` (error replies carry the request: not counted).
  std::size_t sent_with(const char* what) const {
    std::size_t n = 0;
    for (const auto& m : sent) {
      const Element* x = m.child("x", ns::kMucUser);
      if (x && x->child(what, ns::kMucUser) && m.attr("type") != "error") ++n;
    }
    return n;
  }
  std::size_t invitations_sent() const { return sent_with("invite"); }
  std::size_t declines_sent() const { return sent_with("decline"); }
};

TEST_F(RoomInviteTest, TooManyInOneMessage_PolicyViolationAndNoneSent) {
  room();
  join("owner@a.test/r", "Owner");
  invite("owner@a.test/r", invites(11));
  EXPECT_EQ(invitations_sent(), 0u);
  EXPECT_EQ(condition(last_error_to("owner@a.test/r")), "policy-violation");
  invite("owner@a.test/r", invites(10));
  EXPECT_EQ(invitations_sent(), 10u);
  // One malformed address: none leaves.
  invite("owner@a.test/r", "<invite to='ok@z.test'/><invite to='@bad'/>");
  EXPECT_EQ(invitations_sent(), 0u);
  EXPECT_EQ(condition(last_error_to("owner@a.test/r")), "jid-malformed");
}

TEST_F(RoomInviteTest, PerUserRate_TwentyAMinute) {
  room();
  join("owner@a.test/r", "Owner");
  invite("owner@a.test/r", invites(10));
  invite("owner@a.test/r", invites(10, "y.test"));
  EXPECT_EQ(invitations_sent(), 10u);
  invite("owner@a.test/r", invites(1, "x.test"));
  EXPECT_EQ(invitations_sent(), 0u);
  EXPECT_EQ(condition(last_error_to("owner@a.test/r")), "policy-violation");
  // Another nick of the same user, or leaving and joining again, starts no new minute.
  join("owner@a.test/other", "Owner2");
  invite("owner@a.test/other", invites(1, "x.test"));
  EXPECT_EQ(invitations_sent(), 0u);
  room_->presence(parse("<presence xmlns='jabber:client' type='unavailable'/>"),
                  jid("owner@a.test/r"), "Owner", {});
  join("owner@a.test/r", "Owner");
  invite("owner@a.test/r", invites(1, "x.test"));
  EXPECT_EQ(invitations_sent(), 0u);
  EXPECT_EQ(condition(last_error_to("owner@a.test/r")), "policy-violation");
  // Non-occupants may not invite at all.
  invite("eve@e.test/z", invites(1));
  EXPECT_EQ(invitations_sent(), 0u);
  EXPECT_EQ(condition(last_error_to("eve@e.test/z")), "not-acceptable");
  now += 60;
  invite("owner@a.test/r", invites(1, "x.test"));
  EXPECT_EQ(invitations_sent(), 1u);
}

TEST_F(RoomInviteTest, Decline_ForwardedOnlyToThePendingInviter) {
  room();
  join("owner@a.test/r", "Owner");
  auto decline = [&](const std::string& full, const std::string& to) {
    sent.clear();
    room_->message(parse("<message xmlns='jabber:client' from='" + full +
                         "' to='lobby@conference.a.test'><x "
                         "xmlns='http://jabber.org/protocol/muc#user'><decline" +
                         (to.empty() ? "" : " to='" + to + "'") +
                         "><reason>no</reason></decline></x></message>"),
                   jid(full), "");
  };
  // A stranger naming any address: nothing leaves but an error to the stranger.
  decline("eve@e.test/z", "victim@v.test");
  EXPECT_EQ(declines_sent(), 0u);
  EXPECT_EQ(sent.size(), 1u);
  EXPECT_EQ(condition(last_error_to("eve@e.test/z")), "not-acceptable");
  invite("owner@a.test/r", "<invite to='bob@b.test'/>");
  ASSERT_EQ(invitations_sent(), 1u);
  // The invitee naming someone else than the inviter: not forwarded.
  decline("bob@b.test/x", "victim@v.test");
  EXPECT_EQ(declines_sent(), 0u);
  // Another user declining Bob's invitation: not forwarded.
  decline("eve@e.test/z", "owner@a.test");
  EXPECT_EQ(declines_sent(), 0u);
  decline("bob@b.test/x", "owner@a.test/r");
  ASSERT_EQ(declines_sent(), 1u);
  EXPECT_EQ(sent[0].attr("to"), "owner@a.test");
  EXPECT_EQ(sent[0].child("x", ns::kMucUser)->child("decline", ns::kMucUser)->attr("from"),
            "bob@b.test");
  // One decline per invitation.
  decline("bob@b.test/x", "owner@a.test");
  EXPECT_EQ(declines_sent(), 0u);
  // Without 'to', the latest inviter; and not after a day.
  invite("owner@a.test/r", "<invite to='bob@b.test'/>");
  decline("bob@b.test/x", "");
  EXPECT_EQ(declines_sent(), 1u);
  invite("owner@a.test/r", "<invite to='bob@b.test'/>");
  now += 24 * 3600 + 1;
  decline("bob@b.test/x", "owner@a.test");
  EXPECT_EQ(declines_sent(), 0u);
}

TEST_F(RoomInviteTest, MembersOnly_MembersGrantMembershipUpToTheCap) {
  ctx_.limits.affiliations_by_invitation = 4;  // the owner, Mem, and two more
  RoomConfig c;
  c.members_only = true;
  room(c);
  room_->set_affiliation("mem@b.test", Affiliation::kMember);
  join("owner@a.test/r", "Owner");
  join("mem@b.test/x", "Mem");
  invite("mem@b.test/x", "<invite to='n1@z.test'/><invite to='n2@z.test/phone'/>");
  EXPECT_EQ(invitations_sent(), 2u);
  EXPECT_EQ(room_->affiliation_of(jid("n1@z.test")), Affiliation::kMember);
  EXPECT_EQ(room_->affiliation_of(jid("n2@z.test")), Affiliation::kMember);
  // The cap is reached: an invitation that would add a member is refused, none is sent.
  invite("mem@b.test/x", "<invite to='n3@z.test'/>");
  EXPECT_EQ(invitations_sent(), 0u);
  EXPECT_EQ(condition(last_error_to("mem@b.test/x")), "resource-constraint");
  EXPECT_EQ(room_->affiliation_of(jid("n3@z.test")), Affiliation::kNone);
  // Inviting someone who already has an affiliation adds none: still allowed.
  invite("mem@b.test/x", "<invite to='n1@z.test'/>");
  EXPECT_EQ(invitations_sent(), 1u);
}

TEST_F(RoomInviteTest, OpenRoom_InvitationsGrantNothing_VisitorsMayNotInvite) {
  RoomConfig c;
  c.moderated = true;
  room(c);
  join("owner@a.test/r", "Owner");
  join("bob@b.test/x", "Bob");  // a visitor in a moderated room
  invite("bob@b.test/x", "<invite to='n1@z.test'/>");
  EXPECT_EQ(invitations_sent(), 0u);
  EXPECT_EQ(condition(last_error_to("bob@b.test/x")), "forbidden");
  invite("owner@a.test/r", "<invite to='n1@z.test'/>");
  EXPECT_EQ(invitations_sent(), 1u);
  EXPECT_EQ(room_->affiliation_of(jid("n1@z.test")), Affiliation::kNone);
}

class RoomIqTest : public RoomTest {
 protected:
  void send_iq(const std::string& full, const std::string& nick, const std::string& id,
               const std::string& payload, const std::string& type = "get") {
    sent.clear();
    room_->iq(parse("<iq xmlns='jabber:client' type='" + type + "' id='" + id + "' from='" + full +
                    "' to='lobby@conference.a.test/" + nick + "'>" + payload + "</iq>"),
              jid(full), nick);
  }
  void answer(const std::string& from, const std::string& nick, const std::string& id,
              const std::string& type = "result") {
    sent.clear();
    room_->iq_response(parse("<iq xmlns='jabber:client' type='" + type + "' id='" + id +
                             "' from='" + from + "' to='lobby@conference.a.test/" + nick +
                             "'><query xmlns='jabber:iq:version'><name>x</name></query></iq>"),
                       jid(from), nick);
  }
};

TEST_F(RoomIqTest, ForwardedToTheOccupant_OnlyItsAnswerReturns) {
  room();
  join("owner@a.test/r", "Owner");
  join("bob@b.test/x", "Bob");
  join("carol@c.test/y", "Carol");
  send_iq("bob@b.test/x", "Carol", "q1", "<query xmlns='jabber:iq:version'/>");
  ASSERT_EQ(sent.size(), 1u);
  const Element fwd = sent[0];
  EXPECT_EQ(fwd.attr("to"), "carol@c.test/y");
  EXPECT_EQ(fwd.attr("from"), "lobby@conference.a.test/Bob");  // never Bob's real JID
  EXPECT_EQ(fwd.attr("type"), "get");
  EXPECT_NE(fwd.attr("id"), "q1");
  EXPECT_NE(fwd.child("query", "jabber:iq:version"), nullptr);
  const std::string id(fwd.attr("id"));
  // Forged answers: another sender, another id, to another occupant JID.
  answer("eve@e.test/z", "Bob", id);
  EXPECT_TRUE(sent.empty());
  answer("carol@c.test/other", "Bob", id);
  EXPECT_TRUE(sent.empty());
  answer("carol@c.test/y", "Bob", "q1");
  EXPECT_TRUE(sent.empty());
  answer("carol@c.test/y", "Owner", id);
  EXPECT_TRUE(sent.empty());
  answer("carol@c.test/y", "Bob", id);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].attr("to"), "bob@b.test/x");
  EXPECT_EQ(sent[0].attr("from"), "lobby@conference.a.test/Carol");  // never Carol's real JID
  EXPECT_EQ(sent[0].attr("id"), "q1");
  EXPECT_EQ(sent[0].attr("type"), "result");
  answer("carol@c.test/y", "Bob", id);  // answered once only
  EXPECT_TRUE(sent.empty());
}

TEST_F(RoomIqTest, VcardGoesToTheBareJid_ErrorsReturnToo) {
  room();
  join("owner@a.test/r", "Owner");
  join("bob@b.test/x", "Bob");
  join("carol@c.test/y", "Carol");
  send_iq("bob@b.test/x", "Carol", "v1", "<vCard xmlns='vcard-temp'/>");
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].attr("to"), "carol@c.test");
  const std::string id(sent[0].attr("id"));
  answer("carol@c.test", "Bob", id, "error");
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].attr("to"), "bob@b.test/x");
  EXPECT_EQ(sent[0].attr("type"), "error");
  EXPECT_EQ(sent[0].attr("id"), "v1");
}

TEST_F(RoomIqTest, NonOccupantsRefused_PendingBoundedAndExpire) {
  ctx_.limits.forwarded_iqs = 3;
  room();
  join("owner@a.test/r", "Owner");
  join("bob@b.test/x", "Bob");
  send_iq("eve@e.test/z", "Bob", "e1", "<query xmlns='jabber:iq:version'/>");
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(condition(&sent[0]), "not-acceptable");
  send_iq("owner@a.test/r", "Nobody", "n1", "<query xmlns='jabber:iq:version'/>");
  EXPECT_EQ(condition(&sent[0]), "item-not-found");
  for (int i = 0; i < 3; ++i) {
    send_iq("owner@a.test/r", "Bob", "p" + std::to_string(i), "<query xmlns='jabber:iq:version'/>");
    ASSERT_EQ(sent.size(), 1u);
    EXPECT_EQ(sent[0].attr("to"), "bob@b.test/x");
  }
  send_iq("owner@a.test/r", "Bob", "p3", "<query xmlns='jabber:iq:version'/>");
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(condition(&sent[0]), "resource-constraint");
  now += 61;  // the unanswered ones are forgotten
  send_iq("owner@a.test/r", "Bob", "p4", "<query xmlns='jabber:iq:version'/>");
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].attr("to"), "bob@b.test/x");
}

// ------------------------------------------------------------------ the service and identity

class ServiceTest : public ::testing::Test {
 protected:
  ServiceTest() {
    env_.send = [this](Element e) { sent.push_back(std::move(e)); };
    env_.now = [] { return std::int64_t{1'700'000'000}; };
    env_.after = [this](std::chrono::milliseconds, std::function<void()> fn) {
      timers.push_back(std::move(fn));
    };
    env_.is_local_domain = [](std::string_view d) { return d == "a.test"; };
  }

  MucService& service(bool require) {
    core::MucConfig c;
    c.require_credential = require;
    svc_.emplace(c, "conference.a.test", env_);
    return *svc_;
  }

  void deliver(const std::string& xml) { svc_->to_local(parse(xml)); }

  std::string token(const std::string& sub, const std::string& iss) {
    identity::Claims c;
    c.issuer = iss;
    c.subject = sub;
    c.audience = "conference.a.test";
    c.issued_at = 1'700'000'000;
    c.expires_at = 1'700'086'400;
    return identity::issue(key_, c);
  }

  void join(const std::string& full, const std::string& room, const std::string& cred) {
    deliver(
        "<presence xmlns='jabber:client' from='" + full + "' to='" + room + "@conference.a.test/n" +
        full.substr(0, 3) + "'><x xmlns='http://jabber.org/protocol/muc'/>" +
        (cred.empty() ? "" : "<credential xmlns='urn:waddle:identity'>" + cred + "</credential>") +
        "</presence>");
  }

  const Element* last_to(const std::string& to) const {
    for (auto it = sent.rbegin(); it != sent.rend(); ++it)
      if (it->attr("to") == to) return &*it;
    return nullptr;
  }

  Env env_;
  std::optional<MucService> svc_;
  std::vector<Element> sent;
  std::vector<std::function<void()>> timers;
  identity::SigningKey key_ = identity::SigningKey::generate();
};

TEST_F(ServiceTest, RemoteJoinWithCredential_KeyThenVerifyThenJoined) {
  service(true);
  join("alice@a.test/r", "lobby", "");  // a local user creates the room, no credential needed
  ASSERT_NE(svc_->room("lobby"), nullptr);
  sent.clear();
  join("bob@b.test/x", "lobby", token("bob@b.test", "b.test"));
  ASSERT_EQ(sent.size(), 1u);
  const Element key_iq = sent[0];
  EXPECT_EQ(key_iq.attr("to"), "b.test");
  EXPECT_NE(key_iq.child("key", ns::kIdentity), nullptr);
  // A second joiner from b.test waits for the same key: no second request.
  join("dan@b.test/x", "lobby", token("dan@b.test", "b.test"));
  EXPECT_EQ(sent.size(), 1u);
  // An answer from another domain is ignored.
  deliver("<iq xmlns='jabber:client' type='result' from='evil.test' to='conference.a.test' id='" +
          std::string(key_iq.attr("id")) + "'><key xmlns='urn:waddle:identity' id='" +
          key_.key_id() + "'>" + key_.public_key_b64() + "</key></iq>");
  EXPECT_EQ(sent.size(), 1u);
  sent.clear();
  deliver("<iq xmlns='jabber:client' type='result' from='b.test' to='conference.a.test' id='" +
          std::string(key_iq.attr("id")) + "'><key xmlns='urn:waddle:identity' id='" +
          key_.key_id() + "'>" + key_.public_key_b64() + "</key></iq>");
  ASSERT_EQ(sent.size(), 2u);  // one <verify/> per joiner
  for (const auto& v : sent) {
    ASSERT_NE(v.child("verify", ns::kIdentity), nullptr);
    EXPECT_EQ(v.attr("to"), "b.test");
  }
  const std::string bob_verify(sent[0].attr("id"));
  sent.clear();
  deliver("<iq xmlns='jabber:client' type='result' from='b.test' to='conference.a.test' id='" +
          bob_verify + "'><identity xmlns='urn:waddle:identity' jid='bob@b.test'/></iq>");
  const bool joined = std::any_of(sent.begin(), sent.end(), [](const Element& e) {
    return e.attr("to") == "bob@b.test/x" && e.name() == "presence" && has_code(e, "110");
  });
  EXPECT_TRUE(joined);
  const auto& occupants = svc_->room("lobby")->occupants();
  auto bob = std::find_if(occupants.begin(), occupants.end(),
                          [](const auto& kv) { return kv.second.real_jid.str() == "bob@b.test"; });
  ASSERT_NE(bob, occupants.end());
  EXPECT_TRUE(bob->second.credential_verified);
  EXPECT_EQ(svc_->credentials_verified(), 1u);
  // Dan's confirmation never comes: the timeout refuses him.
  for (auto& t : timers) t();
  const Element* refused = last_to("dan@b.test/x");
  ASSERT_NE(refused, nullptr);
  EXPECT_EQ(refused->attr("type"), "error");
}

TEST_F(ServiceTest, RemoteJoin_RefusedWithoutOrWithABadCredential) {
  service(true);
  join("alice@a.test/r", "lobby", "");
  join("bob@b.test/x", "lobby", "");
  EXPECT_EQ(last_to("bob@b.test/x")->attr("type"), "error");
  join("carl@c.test/x", "lobby", token("bob@b.test", "b.test"));  // borrowed
  EXPECT_EQ(last_to("carl@c.test/x")->attr("type"), "error");
  EXPECT_EQ(svc_->credentials_rejected(), 2u);
}

TEST_F(ServiceTest, Creation_LocalOnlyByDefault) {
  service(false);
  join("bob@b.test/x", "newroom", "");
  EXPECT_EQ(svc_->room("newroom"), nullptr);
  const Element* err = last_to("bob@b.test/x");
  ASSERT_NE(err, nullptr);
  EXPECT_NE(err->child("error")->child("not-allowed"), nullptr);
  join("alice@a.test/r", "newroom", "");
  EXPECT_NE(svc_->room("newroom"), nullptr);
}

}  // namespace
}  // namespace waddle::muc
