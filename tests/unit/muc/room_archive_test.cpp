// Room archives without I/O (XEP-0313 on rooms, XEP-0359): the stanza-id a room gives its
// groupchat messages, spoofed ones removed, archiving switched by the configuration form, and
// who may read the archive.
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "muc/room.h"
#include "xml/parser.h"

namespace waddle::muc {
namespace {

using core::Jid;
using xml::Element;

const std::string kRoom = "lobby@conference.a.test";

Element parse(const std::string& text) {
  auto e = xml::parse_element(text);
  EXPECT_TRUE(e.has_value()) << text;
  return e ? std::move(*e) : Element();
}

Jid jid(const std::string& s) {
  return *Jid::parse(s);
}

std::vector<const Element*> stanza_ids(const Element& m) {
  std::vector<const Element*> out;
  for (const auto* c : m.children("stanza-id", ns::kSid)) out.push_back(c);
  return out;
}

class RoomArchiveTest : public ::testing::Test {
 protected:
  RoomArchiveTest() {
    ctx_.send = [this](Element e) { sent.push_back(std::move(e)); };
    ctx_.now = [] { return std::int64_t{1'700'000'000}; };
    ctx_.is_local_domain = [](std::string_view d) { return d == "a.test"; };
    ctx_.archive = [this](const Jid& room, ArchivedMessage m) {
      EXPECT_EQ(room.bare_str(), kRoom);
      archived.push_back(std::move(m));
    };
    ctx_.archive_query = [this](const Jid&, const Element& iq) { queries.push_back(iq); };
  }

  Room& room(RoomConfig config = {}) {
    room_.emplace(jid(kRoom), config, ctx_);
    room_->set_affiliation("owner@a.test", Affiliation::kOwner);
    return *room_;
  }

  void join(const std::string& full, const std::string& nick) {
    room_->presence(parse("<presence xmlns='jabber:client' from='" + full + "' to='" + kRoom + "/" +
                          nick + "'><x xmlns='http://jabber.org/protocol/muc'/></presence>"),
                    jid(full), nick, {});
  }

  void say(const std::string& full, const std::string& inner) {
    room_->message(parse("<message xmlns='jabber:client' from='" + full + "' to='" + kRoom +
                         "' type='groupchat'>" + inner + "</message>"),
                   jid(full), "");
  }

  // The groupchat messages with a body `full` received.
  std::vector<Element> groupchat_to(const std::string& full) const {
    std::vector<Element> out;
    for (const auto& e : sent)
      if (e.attr("to") == full && e.name() == "message" && e.attr("type") == "groupchat" &&
          e.child("body"))
        out.push_back(e);
    return out;
  }

  // The room's answer to an urn:xmpp:mam:2 IQ from `full` (nothing when it was let through).
  std::optional<Element> mam_iq(const std::string& full, const std::string& payload) {
    sent.clear();
    room_->iq(parse("<iq xmlns='jabber:client' type='set' id='q1' from='" + full + "' to='" +
                    kRoom + "'>" + payload + "</iq>"),
              jid(full), "");
    if (sent.empty()) return std::nullopt;
    return sent.back();
  }

  static std::string condition(const std::optional<Element>& e) {
    if (!e) return "(let through)";
    const Element* err = e->child("error");
    return err && err->first_child() ? err->first_child()->name() : "(none)";
  }

  std::vector<std::string> features() {
    sent.clear();
    room_->iq(parse("<iq xmlns='jabber:client' type='get' id='d' from='x@a.test/r' to='" + kRoom +
                    "'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"),
              jid("x@a.test/r"), "");
    std::vector<std::string> out;
    for (const auto* f : sent.back().child("query")->children("feature", xml::ns::kDiscoInfo))
      out.emplace_back(f->attr("var"));
    return out;
  }

  void configure(const std::string& fields) {
    sent.clear();
    room_->iq(
        parse("<iq xmlns='jabber:client' type='set' id='c' from='owner@a.test/r' to='" + kRoom +
              "'><query xmlns='http://jabber.org/protocol/muc#owner'>"
              "<x xmlns='jabber:x:data' type='submit'>" +
              fields + "</x></query></iq>"),
        jid("owner@a.test/r"), "");
    const bool answered = std::any_of(sent.begin(), sent.end(), [](const Element& e) {
      return e.name() == "iq" && e.attr("type") == "result";
    });
    ASSERT_TRUE(answered);
  }

  static bool contains(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
  }

  Context ctx_;
  std::optional<Room> room_;
  std::vector<Element> sent;
  std::vector<ArchivedMessage> archived;
  std::vector<Element> queries;
};

TEST_F(RoomArchiveTest, Groupchat_EveryCopyCarriesTheArchivedStanzaId) {
  room();
  join("owner@a.test/r", "boss");
  join("bob@b.test/phone", "bob");
  say("owner@a.test/r", "<body>hello</body>");
  ASSERT_EQ(archived.size(), 1u);
  const ArchivedMessage& a = archived.front();
  EXPECT_EQ(a.occupant, kRoom + "/boss");
  EXPECT_FALSE(a.id.empty());
  EXPECT_EQ(a.message.child_text("body"), "hello");
  EXPECT_EQ(a.message.attr("from"), kRoom + "/boss");
  EXPECT_FALSE(a.message.has_attr("to"));
  EXPECT_TRUE(stanza_ids(a.message).empty());
  for (const std::string full : {"owner@a.test/r", "bob@b.test/phone"}) {
    auto got = groupchat_to(full);
    ASSERT_EQ(got.size(), 1u) << full;
    auto ids = stanza_ids(got.front());
    ASSERT_EQ(ids.size(), 1u) << full;
    EXPECT_EQ(ids.front()->attr("by"), kRoom);
    EXPECT_EQ(ids.front()->attr("id"), a.id);
  }
}

TEST_F(RoomArchiveTest, MayHaveArchive_OnceItArchivedOrWhenLoaded) {
  room();
  join("owner@a.test/r", "boss");
  EXPECT_FALSE(room_->may_have_archive());
  say("owner@a.test/r", "<body>kept</body>");
  EXPECT_TRUE(room_->may_have_archive());
  RoomConfig c;
  c.persistent = true;
  Room fresh(jid(kRoom), c, ctx_);
  EXPECT_FALSE(fresh.may_have_archive());
  EXPECT_TRUE(Room::load(jid(kRoom), fresh.save(), ctx_)->may_have_archive());
}

TEST_F(RoomArchiveTest, SpoofedStanzaIdClaimingTheRoom_IsRemoved_OthersStay) {
  room();
  join("owner@a.test/r", "boss");
  say("owner@a.test/r",
      "<body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='" + kRoom +
          "' id='forged'/><stanza-id xmlns='urn:xmpp:sid:0' by='owner@a.test' id='mine'/>");
  ASSERT_EQ(archived.size(), 1u);
  auto got = groupchat_to("owner@a.test/r");
  ASSERT_EQ(got.size(), 1u);
  std::vector<std::string> seen;
  for (const auto* s : stanza_ids(got.front()))
    seen.push_back(std::string(s->attr("by")) + "=" + std::string(s->attr("id")));
  EXPECT_EQ(seen, (std::vector<std::string>{"owner@a.test=mine", kRoom + "=" + archived[0].id}));
  // The archived copy keeps the sender's own id but not the forged one.
  ASSERT_EQ(stanza_ids(archived[0].message).size(), 1u);
  EXPECT_EQ(stanza_ids(archived[0].message).front()->attr("id"), "mine");
}

TEST_F(RoomArchiveTest, SubjectChangeIsArchived_ChatStatesAreNot) {
  room();
  join("owner@a.test/r", "boss");
  say("owner@a.test/r", "<subject>Today</subject>");
  say("owner@a.test/r", "<active xmlns='http://jabber.org/protocol/chatstates'/>");
  ASSERT_EQ(archived.size(), 1u);
  EXPECT_EQ(archived[0].message.child_text("subject"), "Today");
}

TEST_F(RoomArchiveTest, ConfigForm_SwitchesArchivingAndDisco) {
  room();
  join("owner@a.test/r", "boss");
  EXPECT_TRUE(contains(features(), std::string(ns::kMam)));
  EXPECT_TRUE(contains(features(), std::string(ns::kMamExtended)));
  configure("<field var='muc#roomconfig_enablearchiving'><value>0</value></field>");
  EXPECT_FALSE(room_->config().archiving);
  EXPECT_FALSE(contains(features(), std::string(ns::kMam)));
  say("owner@a.test/r", "<body>off the record</body>");
  EXPECT_TRUE(archived.empty());
  auto got = groupchat_to("owner@a.test/r");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(stanza_ids(got.front()).empty());
  EXPECT_EQ(condition(mam_iq("owner@a.test/r", "<query xmlns='urn:xmpp:mam:2'/>")),
            "service-unavailable");
  configure("<field var='muc#roomconfig_enablearchiving'><value>true</value></field>");
  say("owner@a.test/r", "<body>on again</body>");
  EXPECT_EQ(archived.size(), 1u);
}

TEST_F(RoomArchiveTest, ConfigForm_OffersTheFieldWithItsValue) {
  RoomConfig c;
  c.archiving = false;
  room(c);
  sent.clear();
  room_->iq(parse("<iq xmlns='jabber:client' type='get' id='g' from='owner@a.test/r' to='" + kRoom +
                  "'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>"),
            jid("owner@a.test/r"), "");
  const Element* form = sent.back().child("query")->child("x", ns::kData);
  ASSERT_NE(form, nullptr);
  std::string value = "(absent)";
  for (const auto* f : form->children("field", ns::kData))
    if (f->attr("var") == "muc#roomconfig_enablearchiving") value = f->child_text("value");
  EXPECT_EQ(value, "0");
}

TEST_F(RoomArchiveTest, SaveAndLoad_KeepArchiving_OlderSavesTakeTheDefault) {
  RoomConfig c;
  c.persistent = true;
  c.archiving = false;
  room(c);
  auto loaded = Room::load(jid(kRoom), room_->save(), ctx_);
  ASSERT_TRUE(loaded);
  EXPECT_FALSE(loaded->config().archiving);
  Element older = room_->save();
  older.remove_attr("archiving");
  ctx_.archive_by_default = false;
  EXPECT_FALSE(Room::load(jid(kRoom), older, ctx_)->config().archiving);
  ctx_.archive_by_default = true;
  EXPECT_TRUE(Room::load(jid(kRoom), older, ctx_)->config().archiving);
}

TEST_F(RoomArchiveTest, WithoutArchiveHooks_NothingIsArchivedOrAdvertised) {
  ctx_.archive = nullptr;
  ctx_.archive_query = nullptr;
  room();
  join("owner@a.test/r", "boss");
  say("owner@a.test/r",
      "<body>x</body><stanza-id xmlns='urn:xmpp:sid:0' by='" + kRoom + "' id='forged'/>");
  auto got = groupchat_to("owner@a.test/r");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(stanza_ids(got.front()).empty());  // the forged one is gone all the same
  EXPECT_FALSE(contains(features(), std::string(ns::kMam)));
}

TEST_F(RoomArchiveTest, Query_OpenRoom_AnyoneButOutcasts) {
  room();
  room_->set_affiliation("banned@b.test", Affiliation::kOutcast);
  EXPECT_EQ(condition(mam_iq("stranger@b.test/r", "<query xmlns='urn:xmpp:mam:2'/>")),
            "(let through)");
  EXPECT_EQ(condition(mam_iq("banned@b.test/r", "<query xmlns='urn:xmpp:mam:2'/>")), "forbidden");
  ASSERT_EQ(queries.size(), 1u);
  EXPECT_EQ(queries[0].attr("from"), "stranger@b.test/r");
}

TEST_F(RoomArchiveTest, Query_MembersOnlyRoom_MembersAndOccupantsOnly) {
  RoomConfig c;
  c.members_only = true;
  room(c);
  room_->set_affiliation("member@b.test", Affiliation::kMember);
  join("owner@a.test/r", "boss");
  EXPECT_EQ(condition(mam_iq("stranger@b.test/r", "<query xmlns='urn:xmpp:mam:2'/>")), "forbidden");
  EXPECT_EQ(condition(mam_iq("member@b.test/r", "<query xmlns='urn:xmpp:mam:2'/>")),
            "(let through)");
  EXPECT_EQ(condition(mam_iq("owner@a.test/r", "<query xmlns='urn:xmpp:mam:2'/>")),
            "(let through)");
  EXPECT_EQ(queries.size(), 2u);
  EXPECT_TRUE(room_->archive_refusal(jid("stranger@b.test/x")).has_value());
  EXPECT_FALSE(room_->archive_refusal(jid("member@b.test/x")).has_value());
}

TEST_F(RoomArchiveTest, Query_PasswordProtectedRoom_OccupantsAndMembersOnly) {
  RoomConfig c;
  c.password = "secret";
  room(c);
  room_->set_affiliation("member@b.test", Affiliation::kMember);
  EXPECT_TRUE(room_->archive_refusal(jid("stranger@b.test/x")).has_value());
  EXPECT_FALSE(room_->archive_refusal(jid("member@b.test/x")).has_value());
  EXPECT_FALSE(room_->archive_refusal(jid("owner@a.test/x")).has_value());
}

TEST_F(RoomArchiveTest, Query_OtherMamRequests_FeatureNotImplemented) {
  room();
  EXPECT_EQ(condition(mam_iq("owner@a.test/r", "<prefs xmlns='urn:xmpp:mam:2' default='always'/>")),
            "feature-not-implemented");
  EXPECT_TRUE(queries.empty());
}

}  // namespace
}  // namespace waddle::muc
