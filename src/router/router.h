// The router: one decision point for every stanza. User domains go to the local handler (IM
// rules, the server itself), component domains to their handler (a room service); anything
// else goes to the remote delivery interface that S2S implements. Also the registry of bound
// client sessions.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/errors.h"
#include "core/jid.h"
#include "xml/element.h"

namespace waddle::router {

// A bound client session as the router and the IM rules see it. Presence state lives here
// because it belongs to the session's lifetime.
class LocalSession {
 public:
  virtual ~LocalSession() = default;
  virtual const core::Jid& jid() const = 0;  // bound full JID
  // Queues the stanza for writing; never blocks, never fails (a closing session drops).
  virtual void deliver(const xml::Element& stanza) = 0;
  // The same for one stanza of a fan-out (`stanza` serialised once as `shared`) to `to`,
  // this session's JID: a session that writes bytes queues the shared buffer.
  virtual void deliver_shared(const xml::Element& stanza, const xml::SharedStanza& shared,
                              std::string_view to) {
    (void)shared;
    xml::Element copy = stanza;
    copy.set_attr("to", std::string(to));
    deliver(copy);
  }
  // Closes the stream with a stream error (e.g. <conflict/> when a new session takes over).
  virtual void close_with(core::StreamError error, std::string_view text = {}) = 0;
  // Its connection is gone and it waits to be resumed (XEP-0198): what it is given is kept
  // for the client, which does not see it now (push notifications, XEP-0357, tell it).
  virtual bool hibernated() const { return false; }

  bool available = false;  // has sent available presence (RFC 6121 §4.2)
  int priority = 0;
  bool roster_requested = false;      // "interested resource" for roster pushes (§2.1.6)
  xml::Element last_presence;         // last available presence broadcast
  std::set<std::string> directed_to;  // JIDs that got directed presence (§4.6)
  std::string did;                    // ATProto DID of the account, if linked
  bool carbons = false;               // Message Carbons enabled (XEP-0280)
};

// Stanzas for local domains. Implemented by the IM service and by the room services.
class LocalHandler {
 public:
  virtual ~LocalHandler() = default;
  virtual void to_local(xml::Element stanza) = 0;
};

// Stanzas for remote domains. Implemented by S2S; with federation disabled (none set) the
// router bounces them.
class RemoteDelivery {
 public:
  virtual ~RemoteDelivery() = default;
  // Takes ownership; must deliver or bounce (never drop a stanza that may be bounced).
  virtual void send(xml::Element stanza) = 0;
  // The same, with `shared` the stanza serialised once for many recipients (Router::fan_out):
  // what is written is shared.head(to) + *shared.tail, not a serialisation of its own.
  virtual void send_shared(xml::Element stanza, const xml::SharedStanza& shared) {
    (void)shared;
    send(std::move(stanza));
  }
};

struct RouterStats {
  std::uint64_t routed_local = 0;
  std::uint64_t routed_remote = 0;
  std::uint64_t bounced = 0;
};

class Router {
 public:
  explicit Router(std::vector<std::string> local_domains);

  // A domain this server answers for: a user domain or a component (room service).
  bool is_local(std::string_view domain) const;
  // A domain with user accounts (server.domains); clients may only open streams to these.
  bool is_user_domain(std::string_view domain) const;
  const std::vector<std::string>& local_domains() const { return domains_; }
  // Every local domain: user domains, then components.
  std::vector<std::string> hosted_domains() const;
  void set_local_handler(LocalHandler* h) { local_ = h; }
  // Stanzas for `domain` and its JIDs go to `handler` (the room service).
  void add_component(std::string domain, LocalHandler* handler);
  LocalHandler* component(std::string_view domain) const;
  void set_remote(RemoteDelivery* r) { remote_ = r; }

  // Routes a stanza whose 'from' is trustworthy (stamped by the session that received it).
  // A 'to' that is not a valid JID is answered with jid-malformed.
  void route(xml::Element stanza, const xml::SharedStanza* shared = nullptr);
  // Routes `stanza` to each of `recipients` (full JIDs) as if each copy had been routed
  // with its own 'to': local sessions and the links to other servers share one serialisation
  // of it (xml::SharedStanza); the others get a copy through route().
  void fan_out(const xml::Element& stanza, const std::vector<std::string>& recipients);
  // Sends an error reply for `stanza` to its sender, unless it must not be answered.
  void bounce(const xml::Element& stanza, core::StanzaError condition, std::string_view text = {});

  // Session registry. add() returns the session displaced by a resource conflict (the caller
  // closes it), or nullptr.
  LocalSession* add(LocalSession* session);
  void remove(LocalSession* session);
  LocalSession* find(const core::Jid& full) const;
  // Bound sessions of an account (bare JID), ordered by resource (deterministic fan-out).
  std::vector<LocalSession*> sessions_of(const core::Jid& bare) const;
  std::vector<LocalSession*> all() const;
  std::size_t session_count() const { return count_; }

  const RouterStats& stats() const { return stats_; }

 private:
  std::vector<std::string> domains_;
  LocalHandler* local_ = nullptr;
  std::map<std::string, LocalHandler*, std::less<>> components_;
  RemoteDelivery* remote_ = nullptr;
  // bare JID string -> resource -> session
  std::map<std::string, std::map<std::string, LocalSession*>, std::less<>> sessions_;
  std::size_t count_ = 0;
  RouterStats stats_;
};

}  // namespace waddle::router
