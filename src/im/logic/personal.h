// Conversions between the forms a client may keep its personal data in, without I/O:
// bookmarks of rooms as XEP-0048 <storage/> (in private XML, XEP-0049) and as XEP-0402 items
// (one PEP item per room), and a vCard's photo (XEP-0054/XEP-0153) as XEP-0084 avatar items
// (XEP-0398).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/namespaces.h"
#include "im/logic/pep_event.h"
#include "xml/element.h"

namespace waddle::im::logic {

inline constexpr std::string_view kBookmarks2 = "urn:xmpp:bookmarks:1";    // XEP-0402
inline constexpr std::string_view kBookmarksLegacy = "storage:bookmarks";  // XEP-0048
inline constexpr std::string_view kAvatarData = "urn:xmpp:avatar:data";    // XEP-0084
inline constexpr std::string_view kAvatarMetadata = "urn:xmpp:avatar:metadata";
inline constexpr std::string_view kVcardTemp = "vcard-temp";  // XEP-0054

// The XEP-0402 items (id: the room's JID) of the rooms of a XEP-0048 <storage/>; rooms
// without a valid 'jid' are left out, a room listed twice counts once (the first).
std::vector<PepItem> bookmarks_from_storage(const xml::Element& storage);
// The XEP-0048 <storage/> of `items` (XEP-0402), keeping what `kept` (the stored <storage/>,
// if any) has besides rooms (<url/> bookmarks).
xml::Element storage_from_bookmarks(const std::vector<PepItem>& items, const xml::Element* kept);

// A vCard's photo (XEP-0153 §3.1): its TYPE and its bytes.
struct Photo {
  std::string type;
  std::string bytes;
};
std::optional<Photo> vcard_photo(const xml::Element& vcard);
// `vcard` (or an empty one) with its PHOTO replaced by `photo`, or removed when none.
xml::Element vcard_with_photo(const xml::Element* vcard, const std::optional<Photo>& photo);
// The XEP-0084 id of an avatar: the SHA-1 of its bytes in hex.
std::string avatar_id(std::string_view bytes);
// XEP-0084 §4.1 data and §4.2 metadata items of `photo` (no photo: empty metadata).
PepItem avatar_data_item(const Photo& photo);
PepItem avatar_metadata_item(const std::optional<Photo>& photo);
// The id and type of the avatar a metadata item names (its first <info/>), if any.
struct AvatarInfo {
  std::string id;
  std::string type;
};
std::optional<AvatarInfo> avatar_info(const xml::Element& metadata);
// The bytes of a data item's payload (<data/> in base64), if valid.
std::optional<std::string> avatar_bytes(const xml::Element& data);

}  // namespace waddle::im::logic
