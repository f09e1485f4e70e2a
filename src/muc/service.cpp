// The room service: dispatch to rooms, room creation, the service's disco, persistence, and
// the federated identity check of remote users joining (spec "Identity Verification").
#include "muc/service.h"

#include <set>

#include "identity/credential.h"
#include "xml/parser.h"
#include "xml/stanza.h"

namespace waddle::muc {

using core::Jid;
using core::StanzaError;
using xml::Element;

namespace {
const std::string kClientNs(xml::ns::kClient);
const std::string kIdentityNs(ns::kIdentity);
constexpr std::int64_t kKeyCacheSeconds = 3600;
constexpr std::size_t kMaxRequests = 1000;  // identity checks in flight (and joins per key)
}  // namespace

MucService::MucService(const core::MucConfig& config, std::string domain, Env env)
    : config_(config), domain_(std::move(domain)), env_(std::move(env)) {
  ctx_.send = env_.send;
  ctx_.broadcast = env_.broadcast;
  ctx_.now = env_.now;
  ctx_.is_local_domain = env_.is_local_domain;
  ctx_.history_size = config_.history_size;
  ctx_.history_bytes = config_.history_bytes;
  ctx_.max_users = config_.max_occupants;
  ctx_.limits.rejoin_history_interval =
      std::chrono::duration_cast<std::chrono::seconds>(config_.rejoin_history_interval).count();
  ctx_.limits.invites_per_stanza = config_.invitations_per_message;
  ctx_.limits.invites_per_minute = config_.invitations_per_minute;
  ctx_.limits.affiliations_by_invitation = config_.max_affiliations_by_invitation;
  ctx_.archive = env_.archive;
  ctx_.archive_query = env_.archive_query;
  ctx_.archive_by_default = config_.archive_by_default;
  ctx_.archive_retract = env_.archive_retract;
  ctx_.find_room = [this](const Jid& room) -> Room* {
    if (room.domain() != domain_) return nullptr;
    auto it = rooms_.find(room.local());
    return it == rooms_.end() ? nullptr : &it->second;
  };
  ctx_.alive = alive_;
}

MucService::~MucService() {
  *alive_ = false;
}

void MucService::load(const std::vector<std::pair<std::string, std::string>>& rooms) {
  for (const auto& [name, data] : rooms) {
    auto jid = Jid::from_parts(name, domain_, "");
    auto el = xml::parse_element(data);
    if (!jid || !el) continue;
    if (auto room = Room::load(*jid, *el, ctx_)) {
      auto& r = rooms_.emplace(name, std::move(*room)).first->second;
      persist(r);  // rooms saved by an older version get their occupant-id secret stored
    }
  }
}

const Room* MucService::room(const std::string& name) const {
  auto it = rooms_.find(name);
  return it == rooms_.end() ? nullptr : &it->second;
}

MucStats MucService::stats() const {
  MucStats s;
  s.rooms = rooms_.size();
  for (const auto& [name, room] : rooms_)
    for (const auto& [nick, occ] : room.occupants())
      ++(occ.is_remote ? s.occupants_remote : s.occupants_local);
  return s;
}

std::vector<RemoteRoomSummary> MucService::rooms_with_remote_occupants() const {
  std::vector<RemoteRoomSummary> out;
  for (const auto& [name, room] : rooms_) {
    RemoteRoomSummary r;
    std::set<std::string> servers;
    for (const auto& [nick, occ] : room.occupants()) {
      if (occ.is_remote) {
        ++r.occupants_remote;
        servers.insert(occ.home_server);
      } else {
        ++r.occupants_local;
      }
    }
    if (r.occupants_remote == 0) continue;
    r.room = room.jid().bare_str();
    r.servers.assign(servers.begin(), servers.end());
    out.push_back(std::move(r));
  }
  return out;
}

bool MucService::may_create(const Jid& from) const {
  return config_.room_creation == "anyone" ||
         (env_.is_local_domain && env_.is_local_domain(from.domain()));
}

void MucService::persist(Room& room) {
  if (!room.dirty) return;
  room.dirty = false;
  if (!env_.store) return;
  const std::string& name = room.jid().local();
  if (room.config().persistent && !room.destroyed()) {
    env_.store(name, room.save().str());
  } else {
    env_.store(name, "");
  }
}

void MucService::erase(std::map<std::string, Room, std::less<>>::iterator it) {
  if (env_.archive_drop && it->second.may_have_archive()) env_.archive_drop(it->second.jid());
  rooms_.erase(it);
}

void MucService::shutdown() {
  for (auto& [id, request] : requests_)
    for (const auto& j : request.joins)
      env_.send(xml::make_error_reply(j.stanza, StanzaError::kServiceUnavailable,
                                      "The server is shutting down"));
  requests_.clear();
  key_request_.clear();
  for (auto& [name, room] : rooms_) room.shutdown();
  for (auto it = rooms_.begin(); it != rooms_.end();) {
    auto next = std::next(it);
    if (!it->second.config().persistent) erase(it);
    it = next;
  }
}

void MucService::to_local(Element stanza) {
  auto from = Jid::parse(stanza.attr("from"));
  if (!from) return;
  auto to = stanza.has_attr("to") ? Jid::parse(stanza.attr("to")) : Jid::parse(domain_);
  if (!to) return;
  if (to->local().empty()) {
    if (stanza.name() == "iq") return service_iq(stanza);
    if (stanza.name() == "message" && stanza.attr("type") != "error")
      env_.send(xml::make_error_reply(stanza, StanzaError::kServiceUnavailable));
    return;
  }
  room_stanza(std::move(stanza), *from, *to);
}

void MucService::service_iq(const Element& iq) {
  auto type = iq.attr("type");
  if (type == "result" || type == "error") return handle_result(iq);
  const Element* q = iq.first_child();
  if (type == "get" && q && q->is("query", xml::ns::kDiscoInfo)) {
    Element r = xml::make_iq_result(iq);
    const std::string info_ns(xml::ns::kDiscoInfo);
    Element& rq = r.add_child("query", info_ns);
    rq.add_child("identity", info_ns)
        .set_attr("category", "conference")
        .set_attr("type", "text")
        .set_attr("name", "Chatrooms");
    // urn:waddle:identity: this service checks federated credentials (and may require them),
    // so home servers attach one to their users' joins.
    std::vector<std::string_view> features{ns::kMuc, xml::ns::kDiscoInfo, xml::ns::kDiscoItems,
                                           xml::ns::kPing, ns::kIdentity};
    for (auto f : features) rq.add_child("feature", info_ns).set_attr("var", f);
    return env_.send(std::move(r));
  }
  if (type == "get" && q && q->is("query", xml::ns::kDiscoItems)) {
    // The room directory: public rooms.
    Element r = xml::make_iq_result(iq);
    const std::string items_ns(xml::ns::kDiscoItems);
    Element& rq = r.add_child("query", items_ns);
    for (const auto& [name, room] : rooms_) {
      if (!room.config().public_room) continue;
      rq.add_child("item", items_ns)
          .set_attr("jid", room.jid().bare_str())
          .set_attr("name", room.config().name.empty() ? name : room.config().name);
    }
    return env_.send(std::move(r));
  }
  if (type == "get" && q && q->is("ping", xml::ns::kPing))
    return env_.send(xml::make_iq_result(iq));
  env_.send(xml::make_error_reply(iq, StanzaError::kServiceUnavailable));
}

void MucService::room_stanza(Element stanza, const Jid& from, const Jid& to) {
  const std::string name = to.local();
  const std::string nick = to.resource();
  auto type = stanza.attr("type");
  auto it = rooms_.find(name);
  const std::string kind = stanza.name();

  if (kind == "presence") {
    const bool joining = type.empty() && (it == rooms_.end() || !it->second.is_session(from));
    if (joining) {
      if (nick.empty())
        return env_.send(
            xml::make_error_reply(stanza, StanzaError::kJidMalformed, "A nickname is required"));
      PendingJoin join{stanza, from, name, nick, {}, it == rooms_.end()};
      if (join.creates && !may_create(from))
        return env_.send(xml::make_error_reply(
            stanza, StanzaError::kNotAllowed,
            "Rooms on this service can only be created by users of this server"));
      if (!join.creates) {
        if (auto refusal = it->second.join_refusal(from, nick, stanza))
          return env_.send(xml::make_error_reply(stanza, refusal->first, refusal->second));
      }
      const bool remote = !env_.is_local_domain || !env_.is_local_domain(from.domain());
      if (const Element* c = stanza.child("credential", ns::kIdentity)) join.token = c->text();
      if (remote && (config_.require_credential || !join.token.empty()))
        return check_credential(std::move(join));
      return finish_join(join, false, {});
    }
    if (it == rooms_.end()) return;  // unavailable or error for a room that is gone
    it->second.presence(stanza, from, nick, {});
  } else if (kind == "message") {
    if (it == rooms_.end()) {
      if (type != "error")
        env_.send(xml::make_error_reply(stanza, StanzaError::kItemNotFound, "No such room"));
      return;
    }
    it->second.message(stanza, from, nick);
  } else if (kind == "iq") {
    if (type == "result" || type == "error") {
      // Answers to IQs a room forwarded to an occupant come to the asker's occupant JID.
      if (it != rooms_.end() && !nick.empty()) it->second.iq_response(stanza, from, nick);
      return;
    }
    if (it == rooms_.end())
      return env_.send(xml::make_error_reply(stanza, StanzaError::kItemNotFound, "No such room"));
    it->second.iq(stanza, from, nick);
  } else {
    return;
  }
  Room& room = it->second;
  persist(room);
  if (room.destroyed() || (room.empty() && !room.config().persistent)) erase(it);
}

void MucService::finish_join(const PendingJoin& join, bool verified, const std::string& did) {
  if (verified) {
    ++credentials_verified_;
    if (env_.log)
      env_.log("muc " + domain_ + ": identity of " + join.from.bare_str() +
               " verified with its home server's credential" +
               (did.empty() ? "" : " (" + did + ")"));
  }
  auto it = rooms_.find(join.room);
  bool created = false;
  if (it == rooms_.end()) {
    if (!may_create(join.from))
      return env_.send(xml::make_error_reply(
          join.stanza, StanzaError::kNotAllowed,
          "Rooms on this service can only be created by users of this server"));
    auto jid = Jid::from_parts(join.room, domain_, "");
    if (!jid) return env_.send(xml::make_error_reply(join.stanza, StanzaError::kJidMalformed));
    RoomConfig config;
    config.max_users = config_.max_occupants;
    config.archiving = config_.archive_by_default;
    it = rooms_.emplace(join.room, Room(*jid, config, ctx_)).first;
    it->second.set_affiliation(join.from.bare_str(), Affiliation::kOwner);
    created = true;
    if (env_.log)
      env_.log("muc " + domain_ + ": room " + join.room + " created by " + join.from.bare_str());
  }
  Room& room = it->second;
  room.presence(join.stanza, join.from, join.nick, JoinInfo{created, verified, did});
  persist(room);
  if (room.empty() && !room.config().persistent) erase(it);
}

void MucService::refuse_join(const PendingJoin& join, const std::string& why) {
  ++credentials_rejected_;
  if (!config_.require_credential && !join.token.empty()) {
    // Credentials are optional here: one that cannot be checked (clock skew, the home server
    // unreachable) must not keep out a user who could have joined without it.
    if (env_.log)
      env_.log("muc " + domain_ + ": " + join.from.bare_str() +
               " joins unverified, its credential was not accepted: " + why);
    return finish_join(join, false, {});
  }
  if (env_.log) env_.log("muc " + domain_ + ": " + join.from.bare_str() + " refused: " + why);
  env_.send(xml::make_error_reply(join.stanza, StanzaError::kNotAuthorized, why));
}

void MucService::check_credential(PendingJoin join) {
  if (join.token.empty()) {
    return refuse_join(join,
                       "This room requires a federated identity credential from your home "
                       "server (urn:waddle:identity)");
  }
  auto claims = identity::peek(join.token);
  if (!claims) return refuse_join(join, "The identity credential is malformed");
  if (claims->issuer != join.from.domain())
    return refuse_join(join, "The identity credential was not issued by " + join.from.domain());
  auto k = keys_.find(claims->issuer);
  if (k != keys_.end() && k->second.key_id == claims->key_id &&
      env_.now() - k->second.fetched < kKeyCacheSeconds) {
    return verify_with_key(std::move(join), k->second);
  }
  // Fetch the home server's key over S2S (the stream is authenticated for that domain).
  const std::string domain = claims->issuer;
  if (requests_.size() >= kMaxRequests)
    return refuse_join(join, "Too many identity checks are in progress; try again later");
  if (auto in_flight = key_request_.find(domain); in_flight != key_request_.end()) {
    if (auto r = requests_.find(in_flight->second); r != requests_.end()) {
      if (r->second.joins.size() >= kMaxRequests)
        return refuse_join(join, "Too many identity checks are in progress; try again later");
      r->second.joins.push_back(std::move(join));
      return;
    }
  }
  Request request{Request::kKey, domain, {}};
  request.joins.push_back(std::move(join));
  send_request(std::move(request), Element("key", kIdentityNs));
}

void MucService::verify_with_key(PendingJoin join, const KeyEntry& key) {
  auto claims = identity::peek(join.token);
  if (!claims) return refuse_join(join, "The identity credential is malformed");
  const std::string audience = claims->audience.empty() ? std::string() : domain_;
  auto result = identity::verify(join.token, key.key, join.from.domain(), join.from.bare_str(),
                                 audience, env_.now());
  if (result.verdict != identity::Verdict::kValid)
    return refuse_join(
        join, "Identity credential refused: " + std::string(identity::describe(result.verdict)));
  if (!config_.verify_with_home_server) return finish_join(join, true, result.claims.did);
  if (requests_.size() >= kMaxRequests)
    return refuse_join(join, "Too many identity checks are in progress; try again later");
  Element verify("verify", kIdentityNs);
  verify.add_child("jid", kIdentityNs).add_text(join.from.bare_str());
  verify.add_child("credential", kIdentityNs).add_text(join.token);
  Request request{Request::kVerify, join.from.domain(), {}};
  request.joins.push_back(std::move(join));
  send_request(std::move(request), std::move(verify));
}

void MucService::send_request(Request request, Element payload) {
  const std::string id = "muc-id-" + std::to_string(++next_id_);
  Element iq("iq", kClientNs);
  iq.set_attr("type", "get");
  iq.set_attr("id", id);
  iq.set_attr("from", domain_);
  iq.set_attr("to", request.domain);
  iq.add_child(std::move(payload));
  if (request.kind == Request::kKey) key_request_[request.domain] = id;
  requests_.emplace(id, std::move(request));
  env_.send(std::move(iq));
  if (!env_.after) return;
  auto alive = alive_;
  env_.after(config_.verify_timeout, [this, alive, id] {
    if (!*alive) return;
    auto it = requests_.find(id);
    if (it == requests_.end()) return;
    Request r = std::move(it->second);
    requests_.erase(it);
    if (r.kind == Request::kKey) key_request_.erase(r.domain);
    for (const auto& j : r.joins)
      refuse_join(j, "The home server " + r.domain + " did not answer the identity check in time");
  });
}

void MucService::handle_result(const Element& iq) {
  auto it = requests_.find(std::string(iq.attr("id")));
  if (it == requests_.end()) return;
  auto from = Jid::parse(iq.attr("from"));
  // Only the home server asked may answer (S2S guarantees the 'from' domain).
  if (!from || from->str() != it->second.domain) return;
  Request r = std::move(it->second);
  requests_.erase(it);
  if (r.kind == Request::kKey) key_request_.erase(r.domain);

  if (iq.attr("type") == "error") {
    std::string why;
    if (const Element* e = iq.child("error")) {
      if (const Element* c = e->first_child()) why = c->name();
      if (auto t = e->child_text("text", ns::kStanzas); !t.empty()) why += ": " + t;
    }
    for (const auto& j : r.joins) {
      refuse_join(
          j, r.kind == Request::kKey
                 ? "The home server " + r.domain + " offers no identity key (" + why + ")"
                 : "The home server " + r.domain + " did not confirm the identity (" + why + ")");
    }
    return;
  }
  if (r.kind == Request::kKey) {
    const Element* k = iq.child("key", ns::kIdentity);
    auto raw = k ? identity::decode_public_key_b64(k->text()) : std::nullopt;
    if (!raw) {
      for (const auto& j : r.joins)
        refuse_join(j, "The home server " + r.domain + " sent an unusable identity key");
      return;
    }
    KeyEntry& entry = keys_[r.domain];
    entry.key = *raw;
    entry.key_id = std::string(k->attr("id"));
    entry.fetched = env_.now();
    const KeyEntry copy = entry;
    for (auto& j : r.joins) verify_with_key(std::move(j), copy);
    return;
  }
  const Element* id = iq.child("identity", ns::kIdentity);
  for (const auto& j : r.joins) {
    if (!id || id->attr("jid") != j.from.bare_str()) {
      refuse_join(j, "The home server " + r.domain + " did not confirm the identity");
      continue;
    }
    finish_join(j, true, std::string(id->attr("did")));
  }
}

}  // namespace waddle::muc
