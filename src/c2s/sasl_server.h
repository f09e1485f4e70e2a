// SASL for client streams (RFC 6120 §6), offered only over TLS: SCRAM-SHA-256, SCRAM-SHA-1
// (RFC 5802, RFC 7677) and PLAIN (RFC 4616), checked against the stored accounts on the
// worker thread, with a bound on failed attempts.
#pragma once

#include <array>
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "c2s/c2s.h"
#include "sasl/scram.h"
#include "xml/element.h"

namespace waddle::c2s {

// In the order offered in the stream features.
inline constexpr std::array<std::string_view, 3> kSaslMechanisms = {"SCRAM-SHA-256", "SCRAM-SHA-1",
                                                                    "PLAIN"};

// <failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><CONDITION/>[<text/>]</failure>
xml::Element sasl_failure(std::string_view condition, std::string_view text = {});

class SaslServer {
 public:
  SaslServer(C2sContext& ctx, std::string remote) : ctx_(ctx), remote_(std::move(remote)) {}

  enum class Outcome {
    kContinue,         // send the reply and wait for the client's next step
    kAuthenticated,    // send the <success/>; the stream restarts (RFC 6120 §6.4.6)
    kTooManyFailures,  // send the <failure/>, then close the stream
    kUnexpected,       // not a SASL step now: no reply, the stream closes
  };
  struct Step {
    Outcome outcome = Outcome::kContinue;
    xml::Element reply;  // <challenge/>, <success/> or <failure/>
  };

  // One element in the SASL namespace from a client of `domain`.
  boost::asio::awaitable<Step> on_element(const xml::Element& el, const std::string& domain);

  // After kAuthenticated: the account's username (nodeprepped) and DID, and the mechanism.
  const std::string& username() const { return username_; }
  const std::string& account_did() const { return account_did_; }
  const std::string& mechanism() const { return mechanism_; }

 private:
  boost::asio::awaitable<Step> on_auth(const xml::Element& el);
  boost::asio::awaitable<Step> plain(const std::string& data);
  boost::asio::awaitable<Step> scram_first(const std::string& data);
  Step scram_final(const std::string& data);
  Step challenge(const std::string& data);  // empty: ask for the initial response
  Step fail(std::string_view condition);
  Step succeed(const std::string& username, const std::string& additional);
  bool authzid_ok(std::string_view authzid, const std::string& user) const;

  C2sContext& ctx_;
  const std::string remote_;  // for the log
  std::string domain_;
  std::string mechanism_;
  std::string attempted_user_;  // as the client wrote it, for the log
  std::string username_;
  std::string account_did_;  // read with the credentials
  std::optional<sasl::ScramServer> scram_;
  sasl::ScramHash scram_hash_ = sasl::ScramHash::kSha256;
  // What the next <response/> of a SCRAM exchange carries.
  enum class ScramStep { kClientFirst, kClientFinal } scram_step_ = ScramStep::kClientFirst;
  std::uint32_t failures_ = 0;
};

}  // namespace waddle::c2s
