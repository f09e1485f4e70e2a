// The shared part of the local IM service: session questions and small stanza builders.
#include "im/context.h"

#include <spdlog/spdlog.h>

#include <boost/asio.hpp>

#include "identity/home_server.h"
#include "net/worker.h"
#include "router/handling.h"
#include "storage/storage.h"

namespace waddle::im {
using core::Jid;
using xml::Element;

void Context::spawn(boost::asio::awaitable<void> task) const {
  // A stanza whose handling continues here is not handled (router/handling.h) until the
  // task has finished: the completion keeps the hold.
  boost::asio::co_spawn(executor, std::move(task),
                        [hold = router::Handling::hold()](std::exception_ptr e) {
                          if (!e) return;
                          try {
                            std::rethrow_exception(e);
                          } catch (const std::exception& ex) {
                            spdlog::error("im handler failed: {}", ex.what());
                          }
                        });
}

void Context::route_from_user(Element stanza) const {
  if (home_server) return home_server->route_from_user(std::move(stanza));
  router.route(std::move(stanza));
}

std::vector<router::LocalSession*> Context::available(const Jid& bare, bool non_negative) const {
  std::vector<router::LocalSession*> out;
  for (auto* s : router.sessions_of(bare))
    if (s->available && (!non_negative || s->priority >= 0)) out.push_back(s);
  return out;
}

void Context::deliver_to(const Jid& full, const Element& stanza) const {
  if (auto* s = router.find(full)) s->deliver(stanza);
}

void Context::deliver_to_available(const Jid& bare, const Element& stanza) const {
  for (auto* s : available(bare, false)) {
    Element copy = stanza;
    copy.set_attr("to", s->jid().str());
    s->deliver(copy);
  }
}

void Context::send_presence_of(const Jid& user, const std::string& to) const {
  for (auto* s : available(user, false)) {
    Element p = s->last_presence;
    p.set_attr("to", to);
    router.route(std::move(p));
  }
}

boost::asio::awaitable<bool> Context::account_exists(Jid bare) const {
  if (!router.sessions_of(bare).empty()) co_return true;
  std::string domain = bare.domain(), user = bare.local();
  auto has_account = [=](storage::Storage& st) { return st.get_account(domain, user).has_value(); };
  bool found = co_await worker.run(std::move(has_account));
  co_return found;
}

Element presence(std::string_view type, const std::string& from, const std::string& to) {
  Element p("presence", std::string(ns::kClient));
  if (!type.empty()) p.set_attr("type", type);
  p.set_attr("from", from);
  p.set_attr("to", to);
  return p;
}

bool is_subscription_type(std::string_view t) {
  return t == "subscribe" || t == "subscribed" || t == "unsubscribe" || t == "unsubscribed";
}

}  // namespace waddle::im
