// The home server's side of urn:waddle:identity (spec "Identity Verification"): issuing
// credentials to its own users, publishing its key (<key/>), confirming credentials to room
// services that ask (<verify/>), and vouching for its users' joins to rooms on other servers.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/jid.h"
#include "identity/credential.h"
#include "router/router.h"
#include "xml/element.h"

namespace waddle::net {
template <class Context>
class Worker;
}
namespace waddle::storage {
class Storage;
}

namespace waddle::identity {

class HomeServer {
 public:
  // Stanzas waiting for one room service's answer (at most 5 s). Sized for every member of a
  // community room joining at once (a restart brings hundreds back), each a few hundred
  // bytes; beyond it, order wins over credentials: what waits leaves without one.
  static constexpr std::size_t kMaxHeld = 10'000;

  // `key` signs the credentials; it and the other references outlive this object.
  HomeServer(const core::Config& config, router::Router& router,
             net::Worker<storage::Storage>& worker, boost::asio::any_io_executor executor,
             const SigningKey& key);

  // Routes a stanza a local user sends. A join to a room on another server gets a credential
  // bound to that room service when the service understands them (disco#info feature
  // urn:waddle:identity, asked once and cached); while the question is open, the join and the
  // user's later stanzas to that service wait, so that a leave cannot overtake its join.
  void route_from_user(xml::Element stanza);
  // A get IQ in urn:waddle:identity addressed to this server: <key/>, <credential/>, <verify/>.
  void handle_iq(xml::Element iq);
  // A result or error IQ addressed to this server: the answer to one of our disco questions
  // releases the stanzas waiting for it; any other is ignored.
  void take_answer(const xml::Element& iq);

 private:
  struct Support {
    bool yes = false;
    std::chrono::steady_clock::time_point until;
  };

  void join_with_credential(xml::Element stanza, const std::string& service);
  void ask_support(const std::string& service, const std::string& from_domain);
  void support_answer(const std::string& id, bool yes);
  void release_held(const std::string& service);
  bool asking(const std::string& service) const;  // a disco question to it is open
  void attach_credential(xml::Element& stanza, const std::string& service);
  std::optional<std::string> issue_credential(const core::Jid& user, const std::string& audience);
  void answer_credential_request(const xml::Element& iq, const xml::Element& q,
                                 const core::Jid& from);
  boost::asio::awaitable<void> verify_credential(xml::Element iq);
  void refuse(const xml::Element& iq, const std::string& asker, const std::string& user,
              std::string_view reason);

  const core::Config& config_;
  router::Router& router_;
  net::Worker<storage::Storage>& worker_;
  boost::asio::any_io_executor executor_;
  const SigningKey& key_;
  std::map<std::string, Support> support_;                 // room service domain -> answer
  std::map<std::string, std::vector<xml::Element>> held_;  // stanzas waiting for that answer
  std::map<std::string, std::string> probes_;              // disco IQ id -> room service domain
};

}  // namespace waddle::identity
