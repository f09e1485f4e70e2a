// XEP-0045 room: roles and affiliations, how an occupant's presence is rendered for each
// viewer, and the dispatch of IQs to the room. Section numbers in comments refer to
// XEP-0045 1.34; the other parts of the room are in room_*.cpp.
#include "muc/room.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>

#include "core/ids.h"
#include "muc/room_detail.h"
#include "xml/stanza.h"

namespace waddle::muc {

using core::Jid;
using core::StanzaError;
using detail::kUserNs;
using xml::Element;

bool detail::unreachable(const Element& error) {
  auto c = xml::stanza_error_condition(error);
  if (!c) return false;
  switch (*c) {
    case StanzaError::kGone:
    case StanzaError::kInternalServerError:
    case StanzaError::kItemNotFound:
    case StanzaError::kJidMalformed:
    case StanzaError::kRecipientUnavailable:
    case StanzaError::kRedirect:
    case StanzaError::kRemoteServerNotFound:
    case StanzaError::kRemoteServerTimeout:
    case StanzaError::kServiceUnavailable:
      return true;
    default:
      return false;
  }
}

namespace {

// The protocol's names (XEP-0045 §5), in the order of the enumerators.
constexpr std::array<std::string_view, 5> kAffiliationNames{"owner", "admin", "member", "none",
                                                            "outcast"};
constexpr std::array<std::string_view, 4> kRoleNames{"moderator", "participant", "visitor", "none"};
static_assert(static_cast<std::size_t>(Affiliation::kOutcast) == kAffiliationNames.size() - 1);
static_assert(static_cast<std::size_t>(Role::kNone) == kRoleNames.size() - 1);

template <class Enum, std::size_t N>
std::string_view name_of(Enum value, const std::array<std::string_view, N>& names) {
  const auto i = static_cast<std::size_t>(value);
  return i < N ? names[i] : "none";
}

template <class Enum, std::size_t N>
std::optional<Enum> from_name(std::string_view name, const std::array<std::string_view, N>& names) {
  for (std::size_t i = 0; i < N; ++i)
    if (names[i] == name) return static_cast<Enum>(i);
  return std::nullopt;
}

}  // namespace

std::string_view to_string(Affiliation a) {
  return name_of(a, kAffiliationNames);
}

std::string_view to_string(Role r) {
  return name_of(r, kRoleNames);
}

std::optional<Affiliation> affiliation_from(std::string_view s) {
  return from_name<Affiliation>(s, kAffiliationNames);
}

std::optional<Role> role_from(std::string_view s) {
  return from_name<Role>(s, kRoleNames);
}

Room::Room(Jid jid, RoomConfig config, Context& ctx)
    : jid_(std::move(jid)), config_(std::move(config)), ctx_(&ctx), secret_(core::random_hex(16)) {}

std::string Room::occupant_id(const Jid& real_bare) const {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  const std::string bare = real_bare.bare_str();
  HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
       reinterpret_cast<const unsigned char*>(bare.data()), bare.size(), mac, &len);
  std::string out(4 * ((len + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), mac, static_cast<int>(len));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

Affiliation Room::affiliation_of(const Jid& real) const {
  auto it = affiliations_.find(real.bare_str());
  return it == affiliations_.end() ? Affiliation::kNone : it->second;
}

void Room::set_affiliation(const std::string& bare, Affiliation a) {
  if (a == Affiliation::kNone)
    affiliations_.erase(bare);
  else
    affiliations_[bare] = a;
  dirty = true;
}

MucOccupant* Room::occupant_by_real(const Jid& real_full) {
  auto it = by_real_.find(real_full.str());
  if (it == by_real_.end()) return nullptr;
  auto o = occupants_.find(it->second);
  return o == occupants_.end() ? nullptr : &o->second;
}

void Room::reply_error(const Element& stanza, StanzaError e, std::string_view text) {
  if (!xml::may_bounce(stanza)) return;
  ctx_->send(xml::make_error_reply(stanza, e, text));
}

void Room::refresh_role(MucOccupant& occ) {
  switch (occ.affiliation) {
    case Affiliation::kOwner:
    case Affiliation::kAdmin:
      occ.role = Role::kModerator;
      break;
    case Affiliation::kMember:
      if (occ.role == Role::kVisitor || occ.role == Role::kNone) occ.role = Role::kParticipant;
      break;
    case Affiliation::kNone:
      if (occ.role == Role::kNone)
        occ.role = config_.moderated ? Role::kVisitor : Role::kParticipant;
      break;
    case Affiliation::kOutcast:
      occ.role = Role::kNone;
      break;
  }
}

// ------------------------------------------------------------------------- presence

Element Room::occupant_presence(const MucOccupant& occ, const Element& base,
                                const MucOccupant* viewer, std::initializer_list<int> codes,
                                bool self) const {
  Element p = base;
  p.set_attr("from", jid_.bare_str() + "/" + occ.room_nick);
  Element& x = p.add_child("x", kUserNs);
  Element& item = x.add_child("item", kUserNs);
  item.set_attr("affiliation", to_string(occ.affiliation));
  item.set_attr("role", to_string(occ.role));
  if (sees_jid(viewer, self) && !occ.sessions.empty()) {
    // The resource the presence came from, or the first one.
    std::string real = occ.sessions.begin()->first;
    if (auto f = base.attr("{waddle}session"); !f.empty()) real = std::string(f);
    item.set_attr("jid", real);
  }
  p.remove_attr("{waddle}session");
  for (int c : codes) x.add_child("status", kUserNs).set_attr("code", std::to_string(c));
  p.add_child("occupant-id", std::string(ns::kOccupantId)).set_attr("id", occ.occupant_id);
  // XEP-0317: the hat the room's configuration gives the occupant's affiliation.
  p.remove_children("hats", detail::kHats);
  if (auto hat = config_.hats.find(to_string(occ.affiliation)); hat != config_.hats.end())
    p.add_child("hats", std::string(detail::kHats))
        .add_child("hat", std::string(detail::kHats))
        .set_attr("title", hat->second)
        .set_attr("uri", "urn:waddle:hat:" + hat->first);
  return p;
}

bool Room::sees_jid(const MucOccupant* viewer, bool self) const {
  return config_.non_anonymous || self || (viewer && viewer->role == Role::kModerator);
}

void Room::send_to_occupant(const MucOccupant& occ, const Element& stanza) {
  for (const auto& [full, last] : occ.sessions) {
    Element copy = stanza;
    copy.set_attr("to", full);
    ctx_->send(std::move(copy));
  }
}

// Rendered once for the viewers who see real JIDs and once for the others, not once per
// viewer: a join in a room of N occupants tells all N.
void Room::presence_to_others(const MucOccupant& occ, const Element& base,
                              std::initializer_list<int> codes) {
  std::optional<Element> rendered[2];
  for (const auto& [nick, viewer] : occupants_) {
    if (&viewer == &occ) continue;
    auto& p = rendered[sees_jid(&viewer, false) ? 1 : 0];
    if (!p) p = occupant_presence(occ, base, &viewer, codes, false);
    send_to_occupant(viewer, *p);
  }
}

// Sends occ's presence to every occupant; the occupant itself gets `self_codes` (110 and
// friends) added, on all its sessions or only on `self_session` when given.
void Room::broadcast_presence(const MucOccupant& occ, const Element& base,
                              std::initializer_list<int> codes, std::string_view self_session,
                              std::initializer_list<int> self_codes) {
  presence_to_others(occ, base, codes);
  std::vector<int> all(codes);
  all.insert(all.end(), self_codes);
  for (const auto& [full, last] : occ.sessions) {
    if (!self_session.empty() && full != self_session) continue;
    Element p = occupant_presence(occ, base, &occ, {}, true);
    Element* x = p.child("x", ns::kMucUser);
    for (int c : all) x->add_child("status", kUserNs).set_attr("code", std::to_string(c));
    p.set_attr("to", full);
    ctx_->send(std::move(p));
  }
}

// ------------------------------------------------------------------------- IQs

void Room::iq(const Element& stanza, const Jid& from, const std::string& nick) {
  auto type = stanza.attr("type");
  if (type != "get" && type != "set") return;
  const Element* q = stanza.first_child();
  if (!nick.empty()) {
    // XEP-0410: a ping to one's own occupant JID tells a client whether it is still joined.
    MucOccupant* occ = occupant_by_real(from);
    if (!occ) return reply_error(stanza, StanzaError::kNotAcceptable, "You are not in this room");
    auto target = occupants_.find(nick);
    if (target == occupants_.end())
      return reply_error(stanza, StanzaError::kItemNotFound, "No such occupant");
    if (q && q->is("ping", xml::ns::kPing) && type == "get" && occ->room_nick == nick)
      return ctx_->send(xml::make_iq_result(stanza));
    return forward_iq(stanza, from, *occ, target->second);
  }
  if (!q) return reply_error(stanza, StanzaError::kBadRequest);
  if (type == "get" && q->is("query", xml::ns::kDiscoInfo)) return ctx_->send(disco_info(stanza));
  if (type == "get" && q->is("query", xml::ns::kDiscoItems)) {
    Element r = xml::make_iq_result(stanza);
    r.add_child("query", std::string(xml::ns::kDiscoItems));
    return ctx_->send(std::move(r));
  }
  if (type == "get" && q->is("ping", xml::ns::kPing))
    return ctx_->send(xml::make_iq_result(stanza));
  if (q->ns() == ns::kMam) return archive_iq(stanza, from);
  if (is_moderation(*q)) return moderate_iq(stanza, from);
  if (q->is("query", ns::kMucOwner)) return owner_iq(stanza, from);
  if (q->is("query", ns::kMucAdmin)) return admin_iq(stanza, from);
  reply_error(stanza, StanzaError::kServiceUnavailable);
}

}  // namespace waddle::muc
