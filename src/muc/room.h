// One multi-user chat room (XEP-0045): occupants with their roles and affiliations, presence
// broadcast, groupchat and private messages, history, subject, owner configuration and admin
// lists. Occupants are local or remote (spec "Federated MUC"): a remote occupant's stanzas
// arrive over S2S and the room's stanzas to it go back out through the router. No I/O here:
// everything the room sends goes through Context::send.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "core/jid.h"
#include "core/namespaces.h"
#include "xml/element.h"

namespace waddle::muc {

namespace ns = waddle::ns;

enum class Affiliation { kOwner, kAdmin, kMember, kNone, kOutcast };
enum class Role { kModerator, kParticipant, kVisitor, kNone };
std::string_view to_string(Affiliation a);
std::string_view to_string(Role r);
std::optional<Affiliation> affiliation_from(std::string_view s);
std::optional<Role> role_from(std::string_view s);

// Why a request is refused: the stanza error and a text for the user.
using Refusal = std::pair<core::StanzaError, std::string>;

// The specification's MucOccupant: one nickname in one room, with the real JID behind it.
// A user may be joined from several of its resources under the same nickname (sessions).
struct MucOccupant {
  core::Jid real_jid;  // bare: dave@alice.dev
  std::string room_nick;
  Affiliation affiliation = Affiliation::kNone;
  Role role = Role::kParticipant;
  bool is_remote = false;            // its home server is another server, reached over S2S
  std::string home_server;           // alice.dev
  bool credential_verified = false;  // presented a valid federated credential
  std::string did;                   // ATProto DID from that credential, if any
  // XEP-0421 occupant id (an HMAC), computed once at join: N users joining a room send it
  // in about N^2 presences.
  std::string occupant_id;
  // Real full JID -> the last presence received from that resource.
  std::map<std::string, xml::Element> sessions;
  // Real full JID -> when the room last replayed its history to that resource.
  std::map<std::string, std::int64_t> history_sent;
  // When it last asked for voice (XEP-0045 §7.13), to forward one request a minute at most.
  std::int64_t voice_requested = 0;
};

// What one user can make a room send or keep (docs/security.md).
struct RoomLimits {
  // A join from a resource already joined replays the history at most once in this many
  // seconds; within it the resource gets the room state without the history.
  std::int64_t rejoin_history_interval = 60;
  std::size_t invites_per_stanza = 10;
  std::size_t invites_per_minute = 20;  // per user (bare JID), whatever its nicks
  // Invitations to a members-only room grant membership only while the room has fewer
  // affiliations than this; beyond, an admin adds members.
  std::size_t affiliations_by_invitation = 1000;
  // Invitations remembered so that a decline reaches the inviter, and for how long.
  std::size_t pending_invitations = 1000;
  std::int64_t invitation_lifetime = 24 * 3600;
  // IQs forwarded to occupants (XEP-0045 §17.4) waiting for their answer, and for how long.
  std::size_t forwarded_iqs = 256;
  std::int64_t forwarded_iq_lifetime = 60;
};

struct RoomConfig {
  std::string name;
  std::string description;
  bool persistent = false;
  bool public_room = true;
  bool members_only = false;
  bool moderated = false;
  std::string password;         // empty = not password-protected
  bool non_anonymous = false;   // whois: anyone (true) or moderators (false)
  bool change_subject = false;  // participants may change the subject
  bool allow_invites = true;    // participants may invite (members-only: grants membership)
  std::uint32_t max_users = 200;
  bool archiving = true;  // XEP-0313: groupchat messages go to the room's archive
  // XEP-0317 hats the configuration names: affiliation ("owner", "admin", "member") -> the
  // title its occupants wear (none: no hat).
  std::map<std::string, std::string, std::less<>> hats;
  friend bool operator==(const RoomConfig&, const RoomConfig&) = default;
};

// A groupchat message the room archives (XEP-0313 on rooms): its stanza-id (XEP-0359, the
// same as on every occupant's copy), the occupant JID that sent it, and the message as
// broadcast (without 'to' and without the stanza-id).
struct ArchivedMessage {
  std::string id;
  std::string occupant;  // room@service/nick
  xml::Element message;
};

class Room;

// A moderator's retraction of a message (XEP-0425, room_moderation.cpp).
struct Moderation {
  xml::Element iq;
  std::string id;  // the stanza-id of the message
  std::string by;  // room@service/nick of the moderator
  std::string occupant_id;
  std::string reason;
};

// Whether an IQ payload asks for a message moderation (XEP-0425, room_moderation.cpp).
bool is_moderation(const xml::Element& payload);

// What a room needs from its service.
struct Context {
  std::function<void(xml::Element)> send;                 // to the router
  std::function<std::int64_t()> now;                      // Unix seconds
  std::function<bool(std::string_view)> is_local_domain;  // the user's home is this server
  std::size_t history_size = 20;                          // groupchat messages kept for joiners
  std::size_t history_bytes = 256 * 1024;                 // and their total size
  std::uint32_t max_users = 200;                          // the most occupants an owner may allow
  RoomLimits limits;
  // One stanza to many full JIDs, serialised once for all (Router::fan_out); unset: send().
  std::function<void(xml::Element, std::vector<std::string>)> broadcast;
  // Room archives (XEP-0313), kept by the server; both unset: rooms archive nothing.
  // `archive` keeps one message; `archive_query` answers a <query xmlns='urn:xmpp:mam:2'/>
  // IQ the room allowed (results and the IQ result go to the IQ's 'from').
  std::function<void(const core::Jid& room, ArchivedMessage)> archive;
  std::function<void(const core::Jid& room, const xml::Element& iq)> archive_query;
  bool archive_by_default = true;  // a new room's (and an older saved room's) archiving
  // XEP-0425: replaces the archived message `id` with what `tombstone` makes of it; `done`
  // runs later (found or not), while `alive` is true, with the room looked up by `find_room`.
  std::function<void(const core::Jid& room, std::string id,
                     std::function<xml::Element(const xml::Element&)> tombstone,
                     std::function<void(bool found)> done)>
      archive_retract;
  std::function<Room*(const core::Jid& room)> find_room;
  std::shared_ptr<bool> alive;
};

// Facts about a joining user established before the room sees it (credential checks).
struct JoinInfo {
  bool created = false;  // the room was created by this join (status 201)
  bool credential_verified = false;
  std::string did;
};

class Room {
 public:
  Room(core::Jid jid, RoomConfig config, Context& ctx);

  const core::Jid& jid() const { return jid_; }
  const RoomConfig& config() const { return config_; }
  const std::map<std::string, MucOccupant, std::less<>>& occupants() const { return occupants_; }
  Affiliation affiliation_of(const core::Jid& real) const;
  void set_affiliation(const std::string& bare, Affiliation a);
  const std::string& subject() const { return subject_; }

  // `from` is the sender's real full JID, `nick` the resource of 'to' (may be empty).
  void presence(const xml::Element& stanza, const core::Jid& from, const std::string& nick,
                const JoinInfo& info);
  void message(const xml::Element& stanza, const core::Jid& from, const std::string& nick);
  void iq(const xml::Element& stanza, const core::Jid& from, const std::string& nick);
  // A result or error addressed to an occupant JID: the answer to an IQ the room forwarded.
  void iq_response(const xml::Element& stanza, const core::Jid& from, const std::string& nick);

  // Whether a join by `from` as `nick` would be refused, and why (checked before slow
  // credential verification so that a refused user is told at once).
  std::optional<Refusal> join_refusal(const core::Jid& from, const std::string& nick,
                                      const xml::Element& stanza) const;
  bool is_session(const core::Jid& real_full) const { return by_real_.contains(real_full.str()); }
  // XEP-0313 on rooms: whether groupchat messages are archived now, and why `from` may not
  // read the archive (as Prosody's mod_muc_mam: outcasts never; a members-only room only its
  // members and occupants; an open room anyone; and, beyond Prosody, a password-protected
  // room only its members and occupants, who gave the password).
  bool archives() const { return config_.archiving && ctx_->archive && ctx_->archive_query; }
  std::optional<Refusal> archive_refusal(const core::Jid& from) const;
  // Whether the room may have archived messages (it did since it was made, or it was loaded
  // from storage): when it goes away its archive is deleted.
  bool may_have_archive() const { return may_have_archive_; }

  // The server is stopping: every occupant is told it left (status 332) and removed.
  void shutdown();
  bool empty() const { return occupants_.empty(); }
  bool destroyed() const { return destroyed_; }
  // Set when configuration, affiliations or subject changed and a persistent room must be
  // saved; the service clears it after saving.
  bool dirty = false;

  // Persistent state as XML (configuration, affiliations, subject), and back.
  xml::Element save() const;
  static std::optional<Room> load(const core::Jid& jid, const xml::Element& saved, Context& ctx);

  xml::Element disco_info(const xml::Element& iq) const;
  // XEP-0421: a stable, opaque id of the user behind an occupant (same across nick changes
  // and rejoins, different in every room).
  std::string occupant_id(const core::Jid& real_bare) const;

 private:
  struct HistoryEntry {
    xml::Element message;  // as broadcast, without 'to'
    std::int64_t time = 0;
    std::size_t size = 0;  // bytes, serialized
  };
  // An invitation the room sent: a decline from the invitee goes back to the inviter.
  struct Invitation {
    std::string invitee;  // bare JIDs
    std::string inviter;
    std::int64_t time = 0;
  };
  // An IQ forwarded to an occupant, waiting for its answer.
  struct ForwardedIq {
    std::string id;           // the id the room gave it
    std::string original_id;  // the asker's
    std::string asker;        // real full JID
    std::string asker_nick;   // the answer comes to room/asker_nick
    std::string target;       // real JID asked: full, or bare for account data
    std::string target_nick;  // the answer goes back from room/target_nick
    std::int64_t time = 0;
  };

  MucOccupant* occupant_by_real(const core::Jid& real_full);
  void join(const xml::Element& stanza, const core::Jid& from, const std::string& nick,
            const JoinInfo& info);
  void send_state(MucOccupant& occ, const core::Jid& from, const xml::Element& stanza,
                  const JoinInfo& info);
  void leave(const core::Jid& from, const xml::Element* stanza, int status_code);
  void change_nick(MucOccupant& occ, const core::Jid& from, const xml::Element& stanza,
                   const std::string& new_nick);
  void remove_occupant(const std::string& nick, std::initializer_list<int> codes,
                       const std::string& actor_reason, const xml::Element* extra = nullptr);

  // The presence of `occ` as seen by `viewer`; codes go into the muc#user x element.
  xml::Element occupant_presence(const MucOccupant& occ, const xml::Element& base,
                                 const MucOccupant* viewer, std::initializer_list<int> codes,
                                 bool self) const;
  bool sees_jid(const MucOccupant* viewer, bool self) const;
  // occ's presence to every other occupant.
  void presence_to_others(const MucOccupant& occ, const xml::Element& base,
                          std::initializer_list<int> codes);
  void broadcast_presence(const MucOccupant& occ, const xml::Element& base,
                          std::initializer_list<int> codes, std::string_view self_session = {},
                          std::initializer_list<int> self_codes = {});
  void send_to_occupant(const MucOccupant& occ, const xml::Element& stanza);
  void broadcast_message(xml::Element stanza);
  void send_history(const std::string& to, const xml::Element& join);
  void remember(const xml::Element& message);
  // Gives a groupchat message its stanza-id and keeps it in the archive (room_archive.cpp).
  void archive(xml::Element& message, const std::string& nick);
  void archive_iq(const xml::Element& iq, const core::Jid& from);
  // XEP-0425 (urn:xmpp:message-moderate:0 and :1): a moderator retracts a message; the room
  // tells its occupants once the message is known (its history or its archive).
  void moderate_iq(const xml::Element& iq, const core::Jid& from);
  void finish_moderation(const Moderation& m, bool archived);
  // The message as kept once retracted: its envelope and ids, the body gone.
  static xml::Element tombstone(const xml::Element& message, const Moderation& m, std::int64_t now);
  void send_subject(const std::string& to);
  void refresh_role(MucOccupant& occ);

  void groupchat(const xml::Element& stanza, MucOccupant& sender);
  void private_message(const xml::Element& stanza, MucOccupant& sender, const std::string& nick);
  // XEP-0045 §7.13 and §8.6: a visitor's request for voice, forwarded to the moderators as a
  // form, and a moderator's approval of one.
  void voice_request(const xml::Element& stanza, MucOccupant* occ, const xml::Element& form);
  void invite(const xml::Element& stanza, const core::Jid& from, const xml::Element& x);
  std::optional<Refusal> invite_refusal(const MucOccupant& inviter, std::size_t count,
                                        std::size_t new_members);
  void remember_invitation(const std::string& invitee, const std::string& inviter);
  void decline(const xml::Element& stanza, const core::Jid& from, const xml::Element& d);
  void forward_iq(const xml::Element& stanza, const core::Jid& from, const MucOccupant& asker,
                  const MucOccupant& target);
  void expire_forwarded_iqs();
  void owner_iq(const xml::Element& iq, const core::Jid& from);
  // muc#admin (room_admin.cpp): read every item, check the sender may make each change,
  // then apply them all and tell the occupants concerned.
  struct AdminChange;
  void admin_iq(const xml::Element& iq, const core::Jid& from);
  void admin_list(const xml::Element& iq, const xml::Element& item, Affiliation mine,
                  bool moderator);
  std::optional<std::string> read_admin_item(const xml::Element& item, AdminChange& c) const;
  std::optional<Refusal> admin_refusal(const AdminChange& c, Affiliation mine,
                                       bool moderator) const;
  bool keeps_an_owner(const std::vector<AdminChange>& changes) const;
  void apply_affiliation(const AdminChange& c);
  void apply_role(const AdminChange& c);
  void announce_occupant(const MucOccupant& occ);
  xml::Element config_form() const;
  std::optional<std::string> apply_config(const xml::Element& form, const core::Jid& from);
  void destroy(const xml::Element* destroy_el);
  void reply_error(const xml::Element& stanza, core::StanzaError e, std::string_view text = {});

  core::Jid jid_;
  RoomConfig config_;
  Context* ctx_;
  std::map<std::string, Affiliation> affiliations_;  // bare real JID -> affiliation (not none)
  std::map<std::string, MucOccupant, std::less<>> occupants_;  // by nick
  std::map<std::string, std::string> by_real_;                 // real full JID -> nick
  std::deque<HistoryEntry> history_;
  std::size_t history_bytes_ = 0;
  std::deque<Invitation> invitations_;  // oldest first
  // Inviter's bare JID -> (start of its current minute, invitations sent in it); kept per
  // user so that leaving and joining again, or another nick, starts no new minute.
  std::map<std::string, std::pair<std::int64_t, std::size_t>> invite_windows_;
  std::deque<ForwardedIq> forwarded_;  // oldest first
  std::string subject_;
  std::string subject_nick_;
  bool destroyed_ = false;
  std::string secret_;  // keys occupant ids; saved with persistent rooms
  bool may_have_archive_ = false;
};

}  // namespace waddle::muc
