// Tests for the XEP-0191 blocklist without I/O: JID matching in XEP-0016 order (full, bare,
// domain) with distractors, and reading the block/unblock/blocklist commands with XEP-0377
// reports in both namespace versions.
#include "im/logic/blocklist.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "xml/parser.h"

namespace waddle::im::logic {
namespace {

using core::Jid;
using core::StanzaError;
using Jids = std::vector<std::string>;

Jid jid(const char* s) {
  return *Jid::parse(s);
}

xml::Element iq(const std::string& type, const std::string& payload) {
  return *xml::parse_element("<iq type='" + type + "' id='1'>" + payload + "</iq>",
                             "jabber:client");
}

TEST(BlocklistTest, Empty_BlocksNothing) {
  Blocklist list;
  EXPECT_TRUE(list.empty());
  EXPECT_FALSE(list.blocks(jid("bob@b.test/phone")));
  EXPECT_FALSE(list.blocks(jid("b.test")));
}

TEST(BlocklistTest, BareItem_BlocksEveryResourceNotOthers) {
  Blocklist list(Jids{"bob@b.test"});
  EXPECT_TRUE(list.blocks(jid("bob@b.test")));
  EXPECT_TRUE(list.blocks(jid("bob@b.test/phone")));
  EXPECT_FALSE(list.blocks(jid("bobby@b.test")));
  EXPECT_FALSE(list.blocks(jid("bob@c.test")));
  EXPECT_FALSE(list.blocks(jid("b.test")));
}

TEST(BlocklistTest, FullItem_BlocksOnlyThatResource) {
  Blocklist list(Jids{"bob@b.test/phone"});
  EXPECT_TRUE(list.blocks(jid("bob@b.test/phone")));
  EXPECT_FALSE(list.blocks(jid("bob@b.test/laptop")));
  EXPECT_FALSE(list.blocks(jid("bob@b.test")));
}

TEST(BlocklistTest, DomainItem_BlocksDomainItsUsersAndResources) {
  Blocklist list(Jids{"spam.example"});
  EXPECT_TRUE(list.blocks(jid("spam.example")));
  EXPECT_TRUE(list.blocks(jid("x@spam.example")));
  EXPECT_TRUE(list.blocks(jid("x@spam.example/r")));
  EXPECT_TRUE(list.blocks(jid("spam.example/r")));
  EXPECT_FALSE(list.blocks(jid("sub.spam.example")));
  EXPECT_FALSE(list.blocks(jid("spam.example.org")));
  EXPECT_FALSE(list.blocks(jid("spam.example@other.test")));
}

TEST(BlocklistTest, TextForm_PreparedAndUnparsableNeverBlocked) {
  Blocklist list(Jids{"bob@b.test"});
  EXPECT_TRUE(list.blocks("BOB@B.TEST/x"));
  EXPECT_FALSE(list.blocks("@@not a jid"));
  EXPECT_FALSE(list.blocks(""));
}

TEST(BlocklistTest, AddRemoveClear_ReportWhatChanged) {
  Blocklist list;
  EXPECT_EQ(list.add({"a@x.test", "b@x.test"}), (Jids{"a@x.test", "b@x.test"}));
  EXPECT_EQ(list.add({"b@x.test", "c@x.test"}), Jids{"c@x.test"});
  EXPECT_EQ(list.remove({"a@x.test", "zzz@x.test"}), Jids{"a@x.test"});
  EXPECT_EQ(list.clear(), (Jids{"b@x.test", "c@x.test"}));
  EXPECT_TRUE(list.empty());
}

TEST(BlockCommandTest, Get_Blocklist) {
  auto p = parse_block_command(iq("get", "<blocklist xmlns='urn:xmpp:blocking'/>"));
  ASSERT_TRUE(p.command);
  EXPECT_EQ(p.command->kind, BlockCommand::Kind::kGet);
  EXPECT_TRUE(is_block_command(iq("get", "<blocklist xmlns='urn:xmpp:blocking'/>")));
  EXPECT_FALSE(is_block_command(iq("get", "<query xmlns='jabber:iq:roster'/>")));
}

TEST(BlockCommandTest, Block_ItemsPrepared) {
  auto p = parse_block_command(iq("set",
                                  "<block xmlns='urn:xmpp:blocking'><item jid='Bob@B.test'/>"
                                  "<item jid='spam.example'/></block>"));
  ASSERT_TRUE(p.command);
  EXPECT_EQ(p.command->kind, BlockCommand::Kind::kBlock);
  ASSERT_EQ(p.command->items.size(), 2u);
  EXPECT_EQ(p.command->items[0].jid, "bob@b.test");
  EXPECT_EQ(p.command->items[0].reason, ReportReason::kNone);
  EXPECT_EQ(p.command->items[1].jid, "spam.example");
}

TEST(BlockCommandTest, Block_Empty_BadRequest) {
  auto p = parse_block_command(iq("set", "<block xmlns='urn:xmpp:blocking'/>"));
  EXPECT_FALSE(p.command);
  EXPECT_EQ(p.error, StanzaError::kBadRequest);
}

TEST(BlockCommandTest, BadJid_JidMalformed) {
  for (const char* bad : {"<item jid='@b.test'/>", "<item/>", "<item jid='a@b.test/'/>"}) {
    for (const char* cmd : {"block", "unblock"}) {
      auto p = parse_block_command(
          iq("set", std::string("<") + cmd + " xmlns='urn:xmpp:blocking'><item jid='ok@b.test'/>" +
                        bad + "</" + cmd + ">"));
      EXPECT_FALSE(p.command) << cmd << " " << bad;
      EXPECT_EQ(p.error, StanzaError::kJidMalformed) << cmd << " " << bad;
    }
  }
}

TEST(BlockCommandTest, Unblock_NoItemsMeansAll) {
  auto p = parse_block_command(iq("set", "<unblock xmlns='urn:xmpp:blocking'/>"));
  ASSERT_TRUE(p.command);
  EXPECT_EQ(p.command->kind, BlockCommand::Kind::kUnblock);
  EXPECT_TRUE(p.command->items.empty());
}

TEST(BlockCommandTest, WrongTypeOrPayload_BadRequest) {
  EXPECT_FALSE(parse_block_command(iq("set", "<blocklist xmlns='urn:xmpp:blocking'/>")).command);
  EXPECT_FALSE(parse_block_command(
                   iq("get", "<block xmlns='urn:xmpp:blocking'><item jid='a@b.test'/></block>"))
                   .command);
  EXPECT_FALSE(parse_block_command(iq("set", "<other xmlns='urn:xmpp:blocking'/>")).command);
}

TEST(BlockCommandTest, Report_Version1Reasons) {
  auto p = parse_block_command(iq(
      "set",
      "<block xmlns='urn:xmpp:blocking'>"
      "<item jid='s@b.test'><report xmlns='urn:xmpp:reporting:1' reason='urn:xmpp:reporting:spam'>"
      "<text xml:lang='en'>buy now</text></report></item>"
      "<item jid='a@b.test'><report xmlns='urn:xmpp:reporting:1' "
      "reason='urn:xmpp:reporting:abuse'/></item>"
      "<item jid='o@b.test'><report xmlns='urn:xmpp:reporting:1' reason='urn:x:y'/></item>"
      "</block>"));
  ASSERT_TRUE(p.command);
  ASSERT_EQ(p.command->items.size(), 3u);
  EXPECT_EQ(p.command->items[0].reason, ReportReason::kSpam);
  EXPECT_EQ(p.command->items[0].text, "buy now");
  EXPECT_EQ(p.command->items[1].reason, ReportReason::kAbuse);
  EXPECT_EQ(p.command->items[2].reason, ReportReason::kOther);
  EXPECT_EQ(to_string(ReportReason::kSpam), "spam");
  EXPECT_EQ(to_string(ReportReason::kOther), "other");
}

TEST(BlockCommandTest, Report_Version0Children) {
  auto p = parse_block_command(iq("set",
                                  "<block xmlns='urn:xmpp:blocking'><item jid='s@b.test'>"
                                  "<report xmlns='urn:xmpp:reporting:0'><spam/><text>x</text>"
                                  "</report></item><item jid='a@b.test'><report "
                                  "xmlns='urn:xmpp:reporting:0'><abuse/></report></item></block>"));
  ASSERT_TRUE(p.command);
  EXPECT_EQ(p.command->items[0].reason, ReportReason::kSpam);
  EXPECT_EQ(p.command->items[0].text, "x");
  EXPECT_EQ(p.command->items[1].reason, ReportReason::kAbuse);
}

TEST(BlockCommandTest, Report_InBlockAppliesToItemsWithoutTheirOwn) {
  auto p = parse_block_command(iq("set",
                                  "<block xmlns='urn:xmpp:blocking'><item jid='s@b.test'/>"
                                  "<item jid='a@b.test'><report xmlns='urn:xmpp:reporting:1' "
                                  "reason='urn:xmpp:reporting:abuse'/></item>"
                                  "<report xmlns='urn:xmpp:reporting:0'><spam/></report>"
                                  "</block>"));
  ASSERT_TRUE(p.command);
  ASSERT_EQ(p.command->items.size(), 2u);
  EXPECT_EQ(p.command->items[0].reason, ReportReason::kSpam);
  EXPECT_EQ(p.command->items[1].reason, ReportReason::kAbuse);
}

TEST(BlockCommandTest, ReportText_CutAtCharacterBoundary) {
  const std::string text = std::string(kMaxReportText - 1, 'a') + "é";  // é is 2 bytes
  auto p = parse_block_command(
      iq("set",
         "<block xmlns='urn:xmpp:blocking'><item jid='s@b.test'><report "
         "xmlns='urn:xmpp:reporting:1' reason='urn:xmpp:reporting:spam'><text>" +
             text + "</text></report></item></block>"));
  ASSERT_TRUE(p.command);
  EXPECT_EQ(p.command->items[0].text, std::string(kMaxReportText - 1, 'a'));
  EXPECT_EQ(truncate_utf8("héllo", 2), "h");
  EXPECT_EQ(truncate_utf8("héllo", 3), "hé");
  EXPECT_EQ(truncate_utf8("abc", 10), "abc");
}

}  // namespace
}  // namespace waddle::im::logic
