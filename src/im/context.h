// What every part of the local IM service shares: configuration, the router, the storage
// worker, the reactor's executor, and a few questions about a user's sessions (RFC 6121).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/jid.h"
#include "router/router.h"
#include "xml/element.h"

namespace waddle::net {
template <class Context>
class Worker;
}
namespace waddle::storage {
class Storage;
}
namespace waddle::metrics {
struct C2sMetrics;
}
namespace waddle::identity {
class HomeServer;
}

namespace waddle::im {

class Blocking;
class Caps;
class Pep;
class UploadSlots;

struct Context {
  const core::Config& config;
  router::Router& router;
  net::Worker<storage::Storage>& worker;
  boost::asio::any_io_executor executor;
  metrics::C2sMetrics* metrics;       // may be null
  identity::HomeServer* home_server;  // null when federated identity is off
  Blocking* blocking;                 // XEP-0191 blocklists (im/blocking.h)
  Caps* caps;                         // XEP-0115 entity capabilities (im/caps.h)
  Pep* pep;                           // XEP-0163 personal eventing (im/pep.h)
  UploadSlots* upload = nullptr;      // XEP-0363 file upload (null when off)

  // Runs a handler coroutine on the reactor; a failure is logged.
  void spawn(boost::asio::awaitable<void> task) const;
  // Routes a stanza a local user sends; joins to rooms on other servers may carry (and wait
  // for) a credential, see identity::HomeServer.
  void route_from_user(xml::Element stanza) const;
  // The account's sessions that sent available presence (with priority >= 0 if asked).
  std::vector<router::LocalSession*> available(const core::Jid& bare, bool non_negative) const;
  // Delivers `stanza` to the session bound to `full`, if there is one.
  void deliver_to(const core::Jid& full, const xml::Element& stanza) const;
  // A copy of `stanza` addressed to each available resource of `bare`.
  void deliver_to_available(const core::Jid& bare, const xml::Element& stanza) const;
  // The current presence of each available resource of `user`, routed to `to`.
  void send_presence_of(const core::Jid& user, const std::string& to) const;
  // A bound session or a stored account.
  boost::asio::awaitable<bool> account_exists(core::Jid bare) const;
};

// <presence type='...' from='...' to='...'/>; an empty type is available presence.
xml::Element presence(std::string_view type, const std::string& from, const std::string& to);
// subscribe, subscribed, unsubscribe, unsubscribed (RFC 6121 §3).
bool is_subscription_type(std::string_view type);

}  // namespace waddle::im
