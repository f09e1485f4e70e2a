#include "im/logic/personal.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <set>

#include "core/base64.h"
#include "core/jid.h"

namespace waddle::im::logic {

namespace {

bool is_true(std::string_view v) {
  return v == "true" || v == "1";
}

std::string without_spaces(std::string_view text) {
  std::string out;
  for (char c : text)
    if (!std::isspace(static_cast<unsigned char>(c))) out.push_back(c);
  return out;
}

}  // namespace

std::vector<PepItem> bookmarks_from_storage(const xml::Element& storage) {
  std::vector<PepItem> out;
  std::set<std::string> seen;
  for (const auto* c : storage.children("conference", kBookmarksLegacy)) {
    const auto jid = core::Jid::parse(c->attr("jid"));
    if (!jid || !jid->is_bare() || !seen.insert(jid->str()).second) continue;
    xml::Element conf("conference", std::string(kBookmarks2));
    if (!c->attr("name").empty()) conf.set_attr("name", c->attr("name"));
    if (is_true(c->attr("autojoin"))) conf.set_attr("autojoin", "true");
    if (const auto* nick = c->child("nick", kBookmarksLegacy); nick && !nick->text().empty())
      conf.add_child("nick", std::string(kBookmarks2)).add_text(nick->text());
    if (const auto* pw = c->child("password", kBookmarksLegacy); pw && !pw->text().empty())
      conf.add_child("password", std::string(kBookmarks2)).add_text(pw->text());
    out.push_back({jid->str(), std::move(conf)});
  }
  return out;
}

xml::Element storage_from_bookmarks(const std::vector<PepItem>& items, const xml::Element* kept) {
  xml::Element storage("storage", std::string(kBookmarksLegacy));
  for (const auto& item : items) {
    const auto& p = item.payload;
    if (!p.is("conference", kBookmarks2)) continue;
    auto& c = storage.add_child("conference", std::string(kBookmarksLegacy));
    c.set_attr("jid", item.id);
    if (!p.attr("name").empty()) c.set_attr("name", p.attr("name"));
    c.set_attr("autojoin", is_true(p.attr("autojoin")) ? "true" : "false");
    if (const auto* nick = p.child("nick", kBookmarks2); nick && !nick->text().empty())
      c.add_child("nick", std::string(kBookmarksLegacy)).add_text(nick->text());
    if (const auto* pw = p.child("password", kBookmarks2); pw && !pw->text().empty())
      c.add_child("password", std::string(kBookmarksLegacy)).add_text(pw->text());
  }
  if (kept)
    for (const auto* url : kept->children("url", kBookmarksLegacy)) storage.add_child(*url);
  return storage;
}

std::optional<Photo> vcard_photo(const xml::Element& vcard) {
  const auto* photo = vcard.child("PHOTO", kVcardTemp);
  if (!photo) return std::nullopt;
  const auto* binval = photo->child("BINVAL", kVcardTemp);
  if (!binval) return std::nullopt;
  auto bytes = core::base64_decode(without_spaces(binval->text()));
  if (!bytes || bytes->empty()) return std::nullopt;
  Photo out;
  out.type = photo->child_text("TYPE");
  if (out.type.empty()) out.type = "image/png";
  out.bytes = std::move(*bytes);
  return out;
}

xml::Element vcard_with_photo(const xml::Element* vcard, const std::optional<Photo>& photo) {
  xml::Element out("vCard", std::string(kVcardTemp));
  if (vcard)
    for (const auto& n : vcard->nodes())
      if (n.is_element() && !n.element->is("PHOTO", kVcardTemp)) out.add_child(*n.element);
  if (photo) {
    auto& p = out.add_child("PHOTO", std::string(kVcardTemp));
    p.add_child("TYPE", std::string(kVcardTemp)).add_text(photo->type);
    p.add_child("BINVAL", std::string(kVcardTemp)).add_text(core::base64_encode(photo->bytes));
  }
  return out;
}

std::string avatar_id(std::string_view bytes) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), md.data(), &len, EVP_sha1(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xf]);
  }
  return out;
}

PepItem avatar_data_item(const Photo& photo) {
  xml::Element data("data", std::string(kAvatarData));
  data.add_text(core::base64_encode(photo.bytes));
  return {avatar_id(photo.bytes), std::move(data)};
}

PepItem avatar_metadata_item(const std::optional<Photo>& photo) {
  xml::Element meta("metadata", std::string(kAvatarMetadata));
  if (!photo) return {"current", std::move(meta)};
  const std::string id = avatar_id(photo->bytes);
  meta.add_child("info", std::string(kAvatarMetadata))
      .set_attr("id", id)
      .set_attr("bytes", std::to_string(photo->bytes.size()))
      .set_attr("type", photo->type);
  return {id, std::move(meta)};
}

std::optional<AvatarInfo> avatar_info(const xml::Element& metadata) {
  const auto* info = metadata.child("info", kAvatarMetadata);
  if (!info || info->attr("id").empty()) return std::nullopt;
  return AvatarInfo{std::string(info->attr("id")), std::string(info->attr("type"))};
}

std::optional<std::string> avatar_bytes(const xml::Element& data) {
  if (!data.is("data", kAvatarData)) return std::nullopt;
  return core::base64_decode(without_spaces(data.text()));
}

}  // namespace waddle::im::logic
