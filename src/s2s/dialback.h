// Server Dialback (XEP-0220) with keys per XEP-0185, in its three roles: originating (we
// send our key on a stream we opened), receiving (a peer sends its key on a stream it opened
// to us, and we ask the peer's authoritative server over a verification stream) and
// authoritative (we answer a db:verify about a key we generated).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <cstddef>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "core/config.h"
#include "core/live_count.h"
#include "metrics/metrics.h"
#include "s2s/attempts.h"
#include "s2s/authenticator.h"

namespace waddle::router {
class Router;
}

namespace waddle::s2s {

class Admission;
class Channel;
class Connector;

// This server's dialback keys and the authoritative role (XEP-0220 §2.4).
class DialbackKeys {
 public:
  DialbackKeys(std::string secret, const router::Router& router, metrics::S2sMetrics* metrics);
  // [s2s] dialback_secret, or one generated once and kept in data_dir/dialback.secret.
  static std::string load_secret(const core::Config& config);

  // The key for a stream with id `stream_id` from `originating` to `receiving`.
  std::string key(std::string_view receiving, std::string_view originating,
                  std::string_view stream_id) const;
  // The db:verify answer to send for a received db:verify (valid only for a key we made).
  std::string answer_verify(const xml::Element& verify) const;

 private:
  std::string secret_;
  const router::Router& router_;
  metrics::S2sMetrics* metrics_;
};

class Dialback final : public Authenticator {
 public:
  Dialback(const core::Config& config, boost::asio::any_io_executor ex, TimeSource& time,
           DialbackKeys& keys, Connector& connector, const router::Router& router,
           const Admission& admission, core::LiveCount& live, metrics::S2sMetrics* metrics);

  std::string_view name() const override { return "dialback"; }
  metrics::AuthMethod counted_as() const override { return metrics::AuthMethod::kDialback; }
  // Originating role.
  bool offered(const xml::Element& features) const override;
  boost::asio::awaitable<AuthStep> authenticate(OutboundNegotiation& n) override;
  // Receiving role (db:result) and authoritative role (db:verify) on inbound streams.
  void offer(xml::Element& features, const InboundStream& in) const override;
  bool handles(const xml::Element& e) const override;
  void handle(const std::shared_ptr<InboundStream>& in, xml::Element e) override;

  // Shutdown: aborts the verification streams still being opened.
  void stop() { attempts_.abort_all(); }

  // Verifications with authoritative servers in flight, from one inbound stream and in all:
  // beyond these, a <db:result/> is refused (resource-constraint) without a connection.
  static constexpr std::size_t kMaxPerStream = 8;
  static constexpr std::size_t kMaxInFlight = 256;

 private:
  boost::asio::awaitable<void> receive(std::shared_ptr<InboundStream> in, xml::Element result);
  boost::asio::awaitable<bool> verify_with_authoritative(std::string local, std::string remote,
                                                         std::string id, std::string key);
  boost::asio::awaitable<bool> ask(Channel& channel, const std::string& local,
                                   const std::string& remote, const std::string& id,
                                   const std::string& key);

  const core::Config& config_;
  boost::asio::any_io_executor ex_;
  TimeSource& time_;
  DialbackKeys& keys_;
  Connector& connector_;
  const router::Router& router_;
  const Admission& admission_;
  core::LiveCount& live_;  // a verification stream counts while it is open
  metrics::S2sMetrics* metrics_;
  AttemptGroup attempts_;
  std::map<std::string, std::size_t> per_stream_;  // verifications in flight by stream id
  std::size_t in_flight_ = 0;
  std::set<std::string> asking_;  // (stream id, local, remote, key) in flight: not asked twice
};

}  // namespace waddle::s2s
