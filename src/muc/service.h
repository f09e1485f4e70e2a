// The room service of one domain ("conference.example.org"): XEP-0045 rooms hosted here,
// joined by local users and by users of other servers over S2S (spec "Federated MUC"), with
// the federated identity check of remote users (spec "Identity Verification"). No I/O of its
// own: stanzas leave through Env::send (the router), persistence and timers through Env.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "muc/room.h"
#include "router/router.h"

namespace waddle::muc {

struct Env {
  // Must not call back into the service before returning (the server posts to the reactor).
  std::function<void(xml::Element)> send;
  // One stanza to many recipients (Context::broadcast); may be empty.
  std::function<void(xml::Element, std::vector<std::string>)> broadcast;
  std::function<std::int64_t()> now;  // Unix seconds
  // Saves a persistent room (data = Room::save() as text) or deletes it (data empty).
  std::function<void(const std::string& room, const std::string& data)> store;
  // Runs `fn` after `delay` on the same thread (verification timeouts).
  std::function<void(std::chrono::milliseconds delay, std::function<void()> fn)> after;
  std::function<bool(std::string_view)> is_local_domain;
  // Operator-facing log lines (identity checks, room creation); may be empty.
  std::function<void(const std::string&)> log;
  // Room archives (Context::archive, Context::archive_query); unset: rooms archive nothing.
  // `archive_drop` deletes the archive of a room that went away (destroyed, or temporary and
  // left by its last occupant).
  std::function<void(const core::Jid& room, ArchivedMessage)> archive;
  std::function<void(const core::Jid& room, const xml::Element& iq)> archive_query;
  std::function<void(const core::Jid& room)> archive_drop;
  // Context::archive_retract (XEP-0425); unset: only the room's history is looked in.
  std::function<void(const core::Jid& room, std::string id,
                     std::function<xml::Element(const xml::Element&)> tombstone,
                     std::function<void(bool found)> done)>
      archive_retract;
};

struct MucStats {
  std::size_t rooms = 0;
  std::size_t occupants_local = 0;
  std::size_t occupants_remote = 0;
};

// A room with occupants from other servers (the operator's status page).
struct RemoteRoomSummary {
  std::string room;  // bare JID
  std::size_t occupants_local = 0;
  std::size_t occupants_remote = 0;
  std::vector<std::string> servers;  // the remote occupants' home servers, sorted
};

class MucService : public router::LocalHandler {
 public:
  MucService(const core::MucConfig& config, std::string domain, Env env);
  ~MucService() override;

  const std::string& domain() const { return domain_; }
  // Persistent rooms read at start-up: (room name, saved data).
  void load(const std::vector<std::pair<std::string, std::string>>& rooms);
  void to_local(xml::Element stanza) override;
  // Server shutdown: occupants are told (status 332); temporary rooms go away.
  void shutdown();
  MucStats stats() const;
  std::vector<RemoteRoomSummary> rooms_with_remote_occupants() const;
  const Room* room(const std::string& name) const;
  std::uint64_t credentials_verified() const { return credentials_verified_; }
  std::uint64_t credentials_rejected() const { return credentials_rejected_; }

 private:
  struct PendingJoin {
    xml::Element stanza;
    core::Jid from;
    std::string room;
    std::string nick;
    std::string token;
    bool creates = false;
  };
  struct KeyEntry {
    std::string key;  // raw Ed25519 public key
    std::string key_id;
    std::int64_t fetched = 0;
  };
  struct Request {  // an IQ this service sent to a home server
    enum Kind { kKey, kVerify } kind;
    std::string domain;
    std::vector<PendingJoin> joins;  // kKey: all joins waiting for that key
  };

  void service_iq(const xml::Element& iq);
  void room_stanza(xml::Element stanza, const core::Jid& from, const core::Jid& to);
  void handle_result(const xml::Element& iq);
  // Credential checks for a remote user's join; calls finish_join when it may proceed.
  void check_credential(PendingJoin join);
  void verify_with_key(PendingJoin join, const KeyEntry& key);
  void finish_join(const PendingJoin& join, bool verified, const std::string& did);
  void refuse_join(const PendingJoin& join, const std::string& why);
  void send_request(Request request, xml::Element payload);
  bool may_create(const core::Jid& from) const;
  void persist(Room& room);
  // Removes a room that went away, with its archive.
  void erase(std::map<std::string, Room, std::less<>>::iterator it);

  core::MucConfig config_;
  std::string domain_;
  Env env_;
  Context ctx_;
  std::map<std::string, Room, std::less<>> rooms_;
  std::map<std::string, KeyEntry> keys_;            // issuer domain -> public key
  std::map<std::string, Request> requests_;         // IQ id -> request
  std::map<std::string, std::string> key_request_;  // issuer domain -> IQ id in flight
  std::uint64_t next_id_ = 0;
  std::uint64_t credentials_verified_ = 0;
  std::uint64_t credentials_rejected_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace waddle::muc
