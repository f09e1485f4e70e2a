// Bookmarks between XEP-0048 and XEP-0402, and a vCard's photo as a XEP-0084 avatar (XEP-0398).
#include "im/logic/personal.h"

#include <gtest/gtest.h>

#include "xml/parser.h"

namespace waddle::im::logic {
namespace {

xml::Element parse(std::string_view text) {
  auto e = xml::parse_element(text);
  EXPECT_TRUE(e.has_value()) << text;
  return e ? *e : xml::Element();
}

TEST(PersonalTest, LegacyBookmarksBecomeItemsPerRoom) {
  const auto storage = parse(
      "<storage xmlns='storage:bookmarks'>"
      "<conference jid='a@rooms.test' name='A' autojoin='1'><nick>me</nick>"
      "<password>pw</password></conference>"
      "<conference jid='b@rooms.test' autojoin='false'/>"
      "<conference jid='a@rooms.test' name='again'/>"
      "<conference jid='not a jid@@'/>"
      "<url url='https://x.test/' name='x'/></storage>");
  const auto items = bookmarks_from_storage(storage);
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].id, "a@rooms.test");
  EXPECT_EQ(items[0].payload.str(),
            "<conference xmlns='urn:xmpp:bookmarks:1' name='A' autojoin='true'><nick>me</nick>"
            "<password>pw</password></conference>");
  EXPECT_EQ(items[1].id, "b@rooms.test");
  EXPECT_EQ(items[1].payload.str(), "<conference xmlns='urn:xmpp:bookmarks:1'/>");
}

TEST(PersonalTest, ItemsBecomeLegacyStorage_KeepingUrls) {
  const auto kept = parse(
      "<storage xmlns='storage:bookmarks'><conference jid='old@rooms.test'/>"
      "<url url='https://x.test/' name='x'/></storage>");
  const std::vector<PepItem> items{
      {"a@rooms.test", parse("<conference xmlns='urn:xmpp:bookmarks:1' name='A' "
                             "autojoin='true'><nick>me</nick></conference>")},
      {"b@rooms.test", parse("<conference xmlns='urn:xmpp:bookmarks:1'/>")},
      {"c@rooms.test", parse("<other xmlns='urn:x'/>")}};
  EXPECT_EQ(storage_from_bookmarks(items, &kept).str(),
            "<storage xmlns='storage:bookmarks'>"
            "<conference jid='a@rooms.test' name='A' autojoin='true'><nick>me</nick></conference>"
            "<conference jid='b@rooms.test' autojoin='false'/>"
            "<url url='https://x.test/' name='x'/></storage>");
}

TEST(PersonalTest, VcardPhotoReadThroughFoldedBase64) {
  const auto vcard = parse(
      "<vCard xmlns='vcard-temp'><FN>B</FN><PHOTO><TYPE>image/jpeg</TYPE>"
      "<BINVAL>aGVs\n bG8=</BINVAL></PHOTO></vCard>");
  const auto photo = vcard_photo(vcard);
  ASSERT_TRUE(photo.has_value());
  EXPECT_EQ(photo->type, "image/jpeg");
  EXPECT_EQ(photo->bytes, "hello");
  EXPECT_FALSE(vcard_photo(parse("<vCard xmlns='vcard-temp'><FN>B</FN></vCard>")));
  EXPECT_FALSE(vcard_photo(
      parse("<vCard xmlns='vcard-temp'><PHOTO><BINVAL>!!not base64</BINVAL></PHOTO></vCard>")));
}

TEST(PersonalTest, PhotoReplacedOrRemoved_RestKept) {
  const auto vcard =
      parse("<vCard xmlns='vcard-temp'><FN>B</FN><PHOTO><BINVAL>eA==</BINVAL></PHOTO></vCard>");
  EXPECT_EQ(vcard_with_photo(&vcard, Photo{"image/png", "hello"}).str(),
            "<vCard xmlns='vcard-temp'><FN>B</FN><PHOTO><TYPE>image/png</TYPE>"
            "<BINVAL>aGVsbG8=</BINVAL></PHOTO></vCard>");
  EXPECT_EQ(vcard_with_photo(&vcard, std::nullopt).str(),
            "<vCard xmlns='vcard-temp'><FN>B</FN></vCard>");
  EXPECT_EQ(vcard_with_photo(nullptr, std::nullopt).str(), "<vCard xmlns='vcard-temp'/>");
}

TEST(PersonalTest, AvatarItems_IdIsTheSha1OfTheBytes) {
  const Photo photo{"image/png", "hello"};
  EXPECT_EQ(avatar_id("hello"), "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d");
  const auto data = avatar_data_item(photo);
  EXPECT_EQ(data.id, "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d");
  EXPECT_EQ(avatar_bytes(data.payload), "hello");
  const auto meta = avatar_metadata_item(photo);
  EXPECT_EQ(meta.id, data.id);
  const auto info = avatar_info(meta.payload);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->id, data.id);
  EXPECT_EQ(info->type, "image/png");
  EXPECT_EQ(meta.payload.child("info", kAvatarMetadata)->attr("bytes"), "5");
  // No photo: metadata without <info/> (XEP-0084 §4.2, the avatar withdrawn).
  const auto none = avatar_metadata_item(std::nullopt);
  EXPECT_FALSE(avatar_info(none.payload));
  EXPECT_EQ(none.payload.str(), "<metadata xmlns='urn:xmpp:avatar:metadata'/>");
}

}  // namespace
}  // namespace waddle::im::logic
