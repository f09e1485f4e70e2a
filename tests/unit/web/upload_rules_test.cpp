// Slot requests, file names, media types and ranges (web/logic/upload_rules).
#include "web/logic/upload_rules.h"

#include <gtest/gtest.h>

#include "xml/parser.h"

namespace waddle::web {
namespace {

std::optional<SlotRequest> request(std::string_view xml) {
  auto e = xml::parse_element(xml);
  EXPECT_TRUE(e);
  return parse_slot_request(*e);
}

TEST(SlotRequest, ReadsTheAttributes) {
  auto r = request(
      "<request xmlns='urn:xmpp:http:upload:0' filename='pic.jpg' size='23456' "
      "content-type='image/jpeg'/>");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->filename, "pic.jpg");
  EXPECT_EQ(r->size, 23456u);
  EXPECT_EQ(r->content_type, "image/jpeg");
  r = request("<request xmlns='urn:xmpp:http:upload:0' filename='a' size='0'/>");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->content_type, "application/octet-stream");
}

TEST(SlotRequest, RefusesWhatIsMissingOrMalformed) {
  EXPECT_FALSE(request("<request xmlns='urn:xmpp:http:upload:0' size='1'/>"));
  EXPECT_FALSE(request("<request xmlns='urn:xmpp:http:upload:0' filename='a'/>"));
  EXPECT_FALSE(request("<request xmlns='urn:xmpp:http:upload:0' filename='a' size='-1'/>"));
  EXPECT_FALSE(request("<request xmlns='urn:xmpp:http:upload:0' filename='a' size='1e3'/>"));
  EXPECT_FALSE(
      request("<request xmlns='urn:xmpp:http:upload:0' filename='a' "
              "size='99999999999999999999999'/>"));
  EXPECT_FALSE(
      request("<request xmlns='urn:xmpp:http:upload:0' filename='a' size='1' "
              "content-type='text/html&#10;X-Evil: 1'/>"));
}

TEST(ContentType, TokensAndParameters) {
  EXPECT_TRUE(valid_content_type("image/png"));
  EXPECT_TRUE(valid_content_type("text/plain; charset=utf-8"));
  EXPECT_TRUE(valid_content_type("application/vnd.oasis.opendocument.text"));
  EXPECT_FALSE(valid_content_type("image"));
  EXPECT_FALSE(valid_content_type("/png"));
  EXPECT_FALSE(valid_content_type("image/"));
  EXPECT_FALSE(valid_content_type("im age/png"));
  EXPECT_FALSE(valid_content_type("text/plain; a=\"b\""));
  EXPECT_FALSE(valid_content_type("text/plain\r\nX: y"));
}

TEST(SafeFilename, NoDirectoriesControlsOrHiddenNames) {
  EXPECT_EQ(safe_filename("photo 1.jpg"), "photo 1.jpg");
  EXPECT_EQ(safe_filename("../../etc/passwd"), "passwd");
  EXPECT_EQ(safe_filename("C:\\Users\\x\\a.txt"), "a.txt");
  EXPECT_EQ(safe_filename(".htaccess"), "htaccess");
  EXPECT_EQ(safe_filename("a\nb\x01.txt"), "ab.txt");
  EXPECT_EQ(safe_filename(".."), "file");
  EXPECT_EQ(safe_filename("dir/"), "file");
  const std::string long_name = std::string(199, 'a') + "\xc3\xa9" + "tail";
  EXPECT_EQ(safe_filename(long_name), std::string(199, 'a'));  // é not cut in half
}

TEST(Segments, EncodeAndDecode) {
  EXPECT_EQ(encode_segment("photo 1 (é).jpg"), "photo%201%20%28%C3%A9%29.jpg");
  EXPECT_EQ(decode_segment("photo%201%20%28%C3%A9%29.jpg"), "photo 1 (\xc3\xa9).jpg");
  EXPECT_EQ(decode_segment("a%2Fb"), "a/b");
  EXPECT_FALSE(decode_segment("a%2"));
  EXPECT_FALSE(decode_segment("a%"));
  EXPECT_FALSE(decode_segment("a%zz"));
}

TEST(SlotAnswer, ElementsOfTheXep) {
  auto slot = slot_element("https://h/upload/s/a.jpg", "https://h/upload/s/a.jpg");
  EXPECT_EQ(slot.child("put", kUploadNs)->attr("url"), "https://h/upload/s/a.jpg");
  EXPECT_EQ(slot.child("get", kUploadNs)->attr("url"), "https://h/upload/s/a.jpg");
  auto big = file_too_large(1024);
  EXPECT_EQ(big.child_text("max-file-size", kUploadNs), "1024");
  auto form = upload_form(5);
  auto fields = form.children("field", "jabber:x:data");
  ASSERT_EQ(fields.size(), 2u);
  EXPECT_EQ(fields[0]->child_text("value", "jabber:x:data"), kUploadNs);
  EXPECT_EQ(fields[1]->attr("var"), "max-file-size");
  EXPECT_EQ(fields[1]->child_text("value", "jabber:x:data"), "5");
}

TEST(InlineSafe, MediaInlineRestAttached) {
  EXPECT_TRUE(inline_safe("image/jpeg"));
  EXPECT_TRUE(inline_safe("Image/PNG"));
  EXPECT_TRUE(inline_safe("video/mp4"));
  EXPECT_TRUE(inline_safe("text/plain; charset=utf-8"));
  EXPECT_FALSE(inline_safe("image/svg+xml"));
  EXPECT_FALSE(inline_safe("text/html"));
  EXPECT_FALSE(inline_safe("application/javascript"));
  EXPECT_FALSE(inline_safe("application/octet-stream"));
}

TEST(Range, SingleRangesOnly) {
  using K = ByteRange::Kind;
  auto r = parse_range("bytes=0-99", 1000);
  EXPECT_EQ(r.kind, K::kPartial);
  EXPECT_EQ(r.first, 0u);
  EXPECT_EQ(r.last, 99u);
  r = parse_range("bytes=900-", 1000);
  EXPECT_EQ(r.kind, K::kPartial);
  EXPECT_EQ(r.first, 900u);
  EXPECT_EQ(r.last, 999u);
  r = parse_range("bytes=-100", 1000);
  EXPECT_EQ(r.first, 900u);
  EXPECT_EQ(r.last, 999u);
  r = parse_range("bytes=-5000", 1000);
  EXPECT_EQ(r.first, 0u);
  r = parse_range("bytes=500-99999", 1000);
  EXPECT_EQ(r.last, 999u);
  EXPECT_EQ(parse_range("bytes=1000-", 1000).kind, K::kUnsatisfiable);
  EXPECT_EQ(parse_range("bytes=-0", 1000).kind, K::kUnsatisfiable);
  EXPECT_EQ(parse_range("bytes=0-1,5-6", 1000).kind, K::kWhole);
  EXPECT_EQ(parse_range("items=0-1", 1000).kind, K::kWhole);
  EXPECT_EQ(parse_range("bytes=5-1", 1000).kind, K::kWhole);
  EXPECT_EQ(parse_range("bytes=x-1", 1000).kind, K::kWhole);
  EXPECT_EQ(parse_range("", 1000).kind, K::kWhole);
}

}  // namespace
}  // namespace waddle::web
