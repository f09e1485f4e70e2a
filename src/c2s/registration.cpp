// XEP-0077 for client streams: account creation, password change, removal.
#include "c2s/registration.h"

#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <variant>

#include "core/jid.h"
#include "net/worker.h"
#include "sasl/scram.h"
#include "storage/storage.h"
#include "xml/stanza.h"

namespace waddle::c2s {
namespace asio = boost::asio;
using core::StanzaError;
using xml::Element;

namespace {

// A reply on a stream that has no addresses yet.
Element unaddressed(Element reply) {
  reply.remove_attr("to");
  reply.remove_attr("from");
  return reply;
}

Element local_error(const Element& iq, StanzaError cond, std::string_view text = {}) {
  return unaddressed(xml::make_error_reply(iq, cond, text));
}

Element register_form(const Element& iq) {
  Element r = unaddressed(xml::make_iq_result(iq));
  auto& q = r.add_child("query", std::string(xml::ns::kRegister));
  q.add_child("instructions", std::string(xml::ns::kRegister))
      .add_text("Choose a username and password to register with this server.");
  q.add_child("username", std::string(xml::ns::kRegister));
  q.add_child("password", std::string(xml::ns::kRegister));
  return r;
}

Element registration_of(const Element& iq, const std::string& username) {
  Element r = xml::make_iq_result(iq);
  auto& q = r.add_child("query", std::string(xml::ns::kRegister));
  q.add_child("registered", std::string(xml::ns::kRegister));
  q.add_child("username", std::string(xml::ns::kRegister)).add_text(username);
  return r;
}

struct NewAccount {
  std::string username;
  std::string password;  // SASLprepped; hashed on the worker thread
};

// The account a registration request asks for, or the reply refusing it.
std::variant<NewAccount, Element> account_requested(C2sContext& ctx, const Element& iq) {
  if (!ctx.config.c2s.allow_registration)
    return local_error(iq, StanzaError::kServiceUnavailable, "Registration is disabled");
  auto type = iq.attr("type");
  if (type == "get") return register_form(iq);
  if (type != "set") return local_error(iq, StanzaError::kBadRequest);
  const Element* q = iq.child("query", xml::ns::kRegister);
  auto user = core::nodeprep(q->child_text("username"));
  auto password = core::saslprep(q->child_text("password"));
  if (!user || user->empty() || !password || password->empty())
    return local_error(iq, StanzaError::kNotAcceptable, "A username and password are required");
  return NewAccount{*user, *password};
}

}  // namespace

asio::awaitable<Element> register_new_account(C2sContext& ctx, const Element& iq,
                                              const std::string& domain,
                                              const std::string& remote) {
  auto requested = account_requested(ctx, iq);
  if (auto* refusal = std::get_if<Element>(&requested)) co_return std::move(*refusal);
  storage::Account acct;
  acct.domain = domain;
  acct.username = std::get<NewAccount>(requested).username;
  std::string pw = std::get<NewAccount>(requested).password;
  auto create_account = [acct, pw](storage::Storage& st) mutable {
    acct.sha1 = sasl::make_credentials(sasl::ScramHash::kSha1, pw);
    acct.sha256 = sasl::make_credentials(sasl::ScramHash::kSha256, pw);
    return st.create_account(acct);
  };
  bool created = co_await ctx.worker.run(std::move(create_account));
  if (!created) co_return local_error(iq, StanzaError::kConflict, "The username is taken");
  spdlog::info("c2s {}: registered {}@{}", remote, acct.username, domain);
  co_return unaddressed(xml::make_iq_result(iq));
}

asio::awaitable<OwnAccountReply> manage_own_account(C2sContext& ctx, const Element& iq,
                                                    const std::string& domain,
                                                    const std::string& username,
                                                    const std::string& remote) {
  const Element* q = iq.child("query", xml::ns::kRegister);
  if (iq.attr("type") == "get") co_return OwnAccountReply{registration_of(iq, username)};
  std::string d = domain, u = username;
  if (q->child("remove", xml::ns::kRegister)) {
    auto delete_account = [=](storage::Storage& st) { return st.delete_account(d, u); };
    bool removed = co_await ctx.worker.run(std::move(delete_account));
    if (!removed) co_return OwnAccountReply{xml::make_error_reply(iq, StanzaError::kItemNotFound)};
    spdlog::info("c2s {}: account {}@{} removed by its owner", remote, u, d);
    co_return OwnAccountReply{xml::make_iq_result(iq), true};
  }
  auto user = core::nodeprep(q->child_text("username"));
  auto password = core::saslprep(q->child_text("password"));
  if (!user || *user != username || !password || password->empty())
    co_return OwnAccountReply{xml::make_error_reply(iq, StanzaError::kBadRequest)};
  std::string pw = *password;
  auto set_password = [=](storage::Storage& st) {
    return st.set_credentials(d, u, sasl::make_credentials(sasl::ScramHash::kSha1, pw),
                              sasl::make_credentials(sasl::ScramHash::kSha256, pw));
  };
  bool changed = co_await ctx.worker.run(std::move(set_password));
  if (!changed) co_return OwnAccountReply{xml::make_error_reply(iq, StanzaError::kItemNotFound)};
  spdlog::info("c2s {}: password changed for {}@{}", remote, u, d);
  co_return OwnAccountReply{xml::make_iq_result(iq)};
}

}  // namespace waddle::c2s
