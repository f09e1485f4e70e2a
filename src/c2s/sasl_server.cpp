// The SASL exchanges of client streams: PLAIN and SCRAM against stored accounts.
#include "c2s/sasl_server.h"

#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <utility>

#include "core/base64.h"
#include "core/jid.h"
#include "metrics/metrics.h"
#include "net/worker.h"
#include "storage/storage.h"

namespace waddle::c2s {
namespace asio = boost::asio;
using xml::Element;

Element sasl_failure(std::string_view condition, std::string_view text) {
  Element f("failure", std::string(xml::ns::kSasl));
  f.add_child(std::string(condition), std::string(xml::ns::kSasl));
  if (!text.empty()) f.add_child("text", std::string(xml::ns::kSasl)).add_text(text);
  return f;
}

asio::awaitable<SaslServer::Step> SaslServer::on_element(const Element& el,
                                                         const std::string& domain) {
  domain_ = domain;
  if (el.name() == "abort") {
    scram_.reset();
    co_return Step{Outcome::kContinue, sasl_failure("aborted")};
  }
  if (el.name() == "auth") co_return co_await on_auth(el);
  if (el.name() == "response" && scram_) {
    auto data = core::base64_decode(el.text());
    if (!data) co_return fail("incorrect-encoding");
    if (scram_step_ == ScramStep::kClientFirst) co_return co_await scram_first(*data);
    co_return scram_final(*data);
  }
  co_return Step{Outcome::kUnexpected, {}};
}

asio::awaitable<SaslServer::Step> SaslServer::on_auth(const Element& el) {
  scram_.reset();
  scram_step_ = ScramStep::kClientFirst;
  mechanism_ = std::string(el.attr("mechanism"));
  auto data = core::base64_decode(el.text());
  if (!data) co_return fail("incorrect-encoding");
  if (mechanism_ == "PLAIN") co_return co_await plain(*data);
  if (mechanism_ == "SCRAM-SHA-256" || mechanism_ == "SCRAM-SHA-1") {
    scram_hash_ = mechanism_ == "SCRAM-SHA-1" ? sasl::ScramHash::kSha1 : sasl::ScramHash::kSha256;
    scram_.emplace(scram_hash_);
    if (data->empty()) co_return challenge({});  // no initial response: ask for it
    co_return co_await scram_first(*data);
  }
  co_return Step{Outcome::kContinue, sasl_failure("invalid-mechanism")};
}

SaslServer::Step SaslServer::challenge(const std::string& data) {
  Element c("challenge", std::string(xml::ns::kSasl));
  if (!data.empty()) c.add_text(core::base64_encode(data));
  return Step{Outcome::kContinue, std::move(c)};
}

SaslServer::Step SaslServer::fail(std::string_view condition) {
  scram_.reset();
  scram_step_ = ScramStep::kClientFirst;
  ++failures_;
  if (ctx_.metrics) ctx_.metrics->auth_failure();
  spdlog::info("c2s {}: SASL {} failed ({}) for '{}'", remote_, mechanism_, condition,
               attempted_user_);
  const bool too_many = failures_ >= ctx_.config.c2s.max_auth_failures;
  return Step{too_many ? Outcome::kTooManyFailures : Outcome::kContinue, sasl_failure(condition)};
}

bool SaslServer::authzid_ok(std::string_view authzid, const std::string& user) const {
  if (authzid.empty()) return true;
  auto j = core::Jid::parse(authzid);
  return j && j->is_bare() && j->local() == user && j->domain() == domain_;
}

asio::awaitable<SaslServer::Step> SaslServer::plain(const std::string& data) {
  auto msg = sasl::parse_plain(data);
  if (!msg) co_return fail("malformed-request");
  auto user = core::nodeprep(msg->authcid);
  attempted_user_ = msg->authcid;
  if (!user) co_return fail("not-authorized");
  if (!authzid_ok(msg->authzid, *user)) co_return fail("invalid-authzid");
  std::string domain = domain_, password = msg->password, username = *user;
  auto did_if_password_right = [=](storage::Storage& st) {
    std::optional<std::string> did;
    auto acct = st.get_account(domain, username);
    if (!acct || acct->sha256.empty())  // as long as a wrong password for an account
      sasl::verify_password_unknown_account(sasl::ScramHash::kSha256, password);
    else if (sasl::verify_password(sasl::ScramHash::kSha256, acct->sha256, password))
      did = acct->did;
    return did;
  };
  auto did = co_await ctx_.worker.run(std::move(did_if_password_right));
  if (!did) co_return fail("not-authorized");
  account_did_ = *did;
  co_return succeed(username, {});
}

asio::awaitable<SaslServer::Step> SaslServer::scram_first(const std::string& data) {
  scram_step_ = ScramStep::kClientFinal;
  auto user = scram_->client_first(data);
  if (!user) co_return fail(scram_->error());
  attempted_user_ = *user;
  auto node = core::nodeprep(*user);
  std::optional<sasl::ScramCredentials> creds;  // none: the exchange fails at the proof
  if (node && authzid_ok(scram_->authzid(), *node)) {
    std::string domain = domain_, username = *node;
    auto hash = scram_hash_;
    auto credentials_and_did = [=](storage::Storage& st) {
      std::pair<std::optional<sasl::ScramCredentials>, std::string> c;
      if (auto acct = st.get_account(domain, username)) {
        c.first = hash == sasl::ScramHash::kSha1 ? acct->sha1 : acct->sha256;
        c.second = acct->did;
      }
      if (c.first && c.first->empty()) c.first.reset();
      return c;
    };
    auto found = co_await ctx_.worker.run(std::move(credentials_and_did));
    creds = std::move(found.first);
    account_did_ = std::move(found.second);
  }
  co_return challenge(scram_->server_first(creds));
}

SaslServer::Step SaslServer::scram_final(const std::string& data) {
  auto fin = scram_->client_final(data);
  if (!fin) return fail(scram_->error());
  // The proof verified, so client_first's username was a valid node.
  return succeed(*core::nodeprep(attempted_user_), fin->server_final);
}

SaslServer::Step SaslServer::succeed(const std::string& username, const std::string& additional) {
  scram_.reset();
  username_ = username;
  Element s("success", std::string(xml::ns::kSasl));
  if (!additional.empty()) s.add_text(core::base64_encode(additional));
  return Step{Outcome::kAuthenticated, std::move(s)};
}

}  // namespace waddle::c2s
