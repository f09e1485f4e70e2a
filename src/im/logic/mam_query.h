// XEP-0313 without I/O: reading an archive query (its data form, XEP-0004, and its result set
// request, XEP-0059) into a storage filter, the form a client asks for, and which messages
// an account's archive and offline storage keep (XEP-0313 §5.1.1, XEP-0160 §4, XEP-0334).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <variant>

#include "core/errors.h"
#include "storage/storage.h"
#include "xml/element.h"

namespace waddle::im {

struct MamQuery {
  std::string queryid;
  storage::ArchiveFilter filter;
  bool flip_page = false;  // urn:xmpp:mam:2#extended: the page newest first
};

struct MamQueryError {
  core::StanzaError condition;
  std::string text;
};

// `query` is the <query xmlns='urn:xmpp:mam:2'/> of an IQ set; pages are at most `max_page`.
std::variant<MamQuery, MamQueryError> parse_mam_query(const xml::Element& query,
                                                      std::size_t max_page);

// A room archive's 'with' (XEP-0313 on rooms): an occupant JID of the room
// (room@service/nick, that occupant's messages) or the room itself (all); any other JID is
// refused with <feature-not-implemented/>, since the archive does not know real JIDs.
std::optional<MamQueryError> room_with_error(const std::string& with, const std::string& room);

// <x xmlns='jabber:x:data' type='form'/> with the fields a query may use.
xml::Element mam_query_form();

// A message worth keeping in an account's archive, and in offline storage: chat or normal
// with a body, an encrypted payload (OMEMO, OpenPGP) or a room invitation, or with the
// XEP-0334 <store/> hint; never one with <no-store/> or <no-permanent-store/>. Chat states,
// receipts and markers alone are not kept.
bool worth_keeping(const xml::Element& message);

}  // namespace waddle::im
