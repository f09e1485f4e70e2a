// Local IM (RFC 6121): roster, presence and subscriptions, message delivery rules (§8),
// offline messages (XEP-0160), and the server's own IQs: disco (XEP-0030), ping
// (XEP-0199), version (XEP-0092). With an identity key it also runs the home server side of
// federated identity (identity/home_server.h).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <memory>
#include <string>

#include "core/config.h"
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
class SigningKey;
}

namespace waddle::im {

class Archive;
class UploadSlots;

class ImService : public router::LocalHandler {
 public:
  ImService(const core::Config& config, router::Router& router,
            net::Worker<storage::Storage>& worker, boost::asio::any_io_executor executor,
            metrics::C2sMetrics* metrics = nullptr,
            const identity::SigningKey* identity_key = nullptr);
  ~ImService() override;

  // A stanza sent by a bound local session; 'from' is its full JID (stamped). Handles the
  // sender-side rules (presence broadcast, outbound subscriptions, own-account IQs) and
  // routes the rest.
  void from_client(xml::Element stanza);
  // A stanza for a local domain (from a local session or, later, from S2S).
  void to_local(xml::Element stanza) override;
  // A message accepted once and not written to the session it was delivered to (the session
  // ended first): delivered again by the same rules, and offline storage takes it even past
  // c2s.max_offline_pending (what one session held is bounded by its write queue).
  void to_local_again(xml::Element stanza);
  // Called when a bound session goes away, before it leaves the router: unavailable
  // presence is broadcast for it if it was available.
  void session_ended(router::LocalSession& session);
  // The message archives (XEP-0313), which also keep the room services' archives.
  Archive& archive();
  // Called when a session is bound to `full` or resumed (XEP-0198).
  void session_bound(const core::Jid& full);
  // The server's entity capabilities (XEP-0115 <c/>) for the stream features of `domain`.
  xml::Element server_caps(std::string_view domain) const;
  // The file upload service (XEP-0363) that slot requests to a served domain go to, and
  // whose limit the domain's disco#info shows; none (the default) when uploads are off.
  void set_upload(UploadSlots* upload);
  // Called when the account `bare` has been removed (XEP-0077 §3.2).
  void account_removed(const core::Jid& bare);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace waddle::im
