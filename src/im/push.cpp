// XEP-0357 on the server (see push.h): commands, the registration cache, notifications and
// their answers.
#include "im/push.h"

#include <spdlog/spdlog.h>

#include <boost/asio.hpp>

#include "core/ids.h"
#include "metrics/metrics.h"
#include "net/worker.h"
#include "xml/stanza.h"

namespace waddle::im {
namespace asio = boost::asio;
using core::Jid;
using core::StanzaError;
using storage::PushRegistration;
using xml::Element;

namespace {

Element command_error(const Element& iq, const logic::PushCommandError& e) {
  return xml::make_error_reply(iq, e.condition, e.text);
}

}  // namespace

void Push::count(std::string_view outcome) const {
  if (ctx_.metrics) ctx_.metrics->push(outcome);
}

asio::awaitable<void> Push::own_iq(Element iq, Jid from) {
  auto type = iq.attr("type");
  if (type != "get" && type != "set") co_return;
  auto cmd = logic::parse_push_command(iq);
  if (const auto* e = std::get_if<logic::PushCommandError>(&cmd)) {
    const Element error = command_error(iq, *e);
    ctx_.deliver_to(from, error);
    co_return;
  }
  std::string domain = from.domain(), user = from.local();
  std::vector<PushRegistration> regs;
  if (auto* enable = std::get_if<logic::PushEnable>(&cmd)) {
    auto job = [domain, user, reg = enable->reg,
                max = ctx_.config.push.max_registrations_per_account](storage::Storage& st) {
      return st.push_put(domain, user, reg, max);
    };
    regs = co_await ctx_.worker.run(std::move(job));
    spdlog::debug("im: {} enabled push notifications to {}", from.bare_str(), enable->reg.jid);
  } else {
    const auto& disable = std::get<logic::PushDisable>(cmd);
    auto job = [domain, user, jid = disable.jid, node = disable.node](storage::Storage& st) {
      return st.push_remove(domain, user, jid, node);
    };
    regs = co_await ctx_.worker.run(std::move(job));
  }
  const std::string account = from.bare_str();
  set_registrations(account, std::move(regs));
  const Element reply = xml::make_iq_result(iq);
  ctx_.deliver_to(from, reply);
}

void Push::message_waiting(const Jid& user, const Element& message) {
  if (!enabled()) return;
  const std::string account = user.bare_str();
  Account& a = accounts_[account];
  ++a.summary.count;
  auto from = Jid::parse(message.attr("from"));
  a.summary.sender = from ? from->bare_str() : std::string();
  // Kept only when it may be sent (a body can be as large as a stanza).
  a.summary.body = ctx_.config.push.allow_body ? message.child_text("body") : std::string();
  if (a.loaded) return notify_all(account);
  if (a.loading) return;  // notified once the registrations are read
  a.loading = true;
  ctx_.spawn(load(user.bare()));
}

asio::awaitable<void> Push::load(Jid user) {
  std::string domain = user.domain(), local = user.local();
  const std::string account = user.str();
  auto job = [domain, local](storage::Storage& st) { return st.push_get(domain, local); };
  std::vector<PushRegistration> regs;
  try {
    regs = co_await ctx_.worker.run(std::move(job));
  } catch (...) {
    if (auto it = accounts_.find(account); it != accounts_.end()) it->second.loading = false;
    throw;
  }
  auto it = accounts_.find(account);
  if (it == accounts_.end()) co_return;  // the account was removed meanwhile
  it->second.loading = false;
  // A command answered meanwhile has set the registrations after its own change.
  if (!it->second.loaded) set_registrations(account, std::move(regs));
  notify_all(account);
}

void Push::set_registrations(const std::string& account, std::vector<PushRegistration> regs) {
  Account& a = accounts_[account];
  registrations_ -= a.regs.size();
  registrations_ += regs.size();
  a.regs = std::move(regs);
  a.loaded = true;
  if (ctx_.metrics) ctx_.metrics->push_registrations.set(static_cast<double>(registrations_));
}

void Push::notify_all(const std::string& account) {
  auto it = accounts_.find(account);
  if (it == accounts_.end() || it->second.summary.count == 0) return;
  // A copy: an answer routed back at once (a local error) may change the list.
  const std::vector<PushRegistration> regs = it->second.regs;
  for (const auto& reg : regs) {
    if (flights_.due(logic::push_key(account, reg.jid, reg.node)))
      send(account, reg);
    else
      count("coalesced");
  }
}

void Push::send(const std::string& account, const PushRegistration& reg) {
  auto it = accounts_.find(account);
  if (it == accounts_.end()) return;
  const std::string id = "push-" + core::random_hex(8) + "-" + std::to_string(++sent_);
  flights_.started(logic::push_key(account, reg.jid, reg.node), id);
  auto timer = std::make_shared<asio::steady_timer>(ctx_.executor);
  timer->expires_after(ctx_.config.push.notify_timeout);
  pending_[id] = Pending{account, reg.jid, reg.node, timer};
  ctx_.spawn(expire(id, timer));
  const bool with_body = ctx_.config.push.allow_body && reg.include_body;
  Element iq = logic::push_notification(reg, account, id, it->second.summary, with_body);
  count("sent");
  ctx_.router.route(std::move(iq));
}

bool Push::take_answer(const Element& iq) {
  auto it = pending_.find(std::string(iq.attr("id")));
  if (it == pending_.end()) return false;
  const Pending& p = it->second;
  auto from = Jid::parse(iq.attr("from"));
  auto to = Jid::parse(iq.attr("to"));
  auto app = Jid::parse(p.jid);
  if (!from || !to || !app || *from != *app || to->bare_str() != p.account) return false;
  Outcome outcome = Outcome::kAnswered;
  if (iq.attr("type") == "error") {
    const Element* error = iq.child("error");
    const auto kind = error ? error->attr("type") : std::string_view();
    // XEP-0357 §8 leaves it to the server; as Prosody does, an app server that refuses for
    // good (or the route to it that fails for good) ends the registration.
    outcome = kind == "cancel" || kind == "auth" ? Outcome::kDisabled : Outcome::kFailed;
  }
  finished(it->first, outcome);
  return true;
}

void Push::finished(const std::string& id, Outcome outcome) {
  auto node = pending_.extract(id);
  if (node.empty()) return;
  Pending p = std::move(node.mapped());
  p.timer->cancel();
  auto done = flights_.finish(id);
  if (outcome == Outcome::kDisabled) {
    count("disabled");
    spdlog::info("im: push notifications of {} to {} (node {}) disabled", p.account, p.jid, p.node);
    // Out of the cache at once (nothing more is sent to it), then out of storage.
    if (auto a = accounts_.find(p.account); a != accounts_.end()) {
      auto regs = a->second.regs;
      std::erase_if(regs,
                    [&p](const PushRegistration& r) { return r.jid == p.jid && r.node == p.node; });
      set_registrations(p.account, std::move(regs));
    }
    if (auto user = Jid::parse(p.account)) ctx_.spawn(remove(*user, p.jid, p.node));
    return;
  }
  count(outcome == Outcome::kAnswered ? "answered" : "failed");
  if (!done || !done->again) return;
  auto a = accounts_.find(p.account);
  if (a == accounts_.end() || a->second.summary.count == 0) return;
  for (const auto& reg : a->second.regs) {
    if (reg.jid != p.jid || reg.node != p.node) continue;
    const PushRegistration copy = reg;
    send(p.account, copy);
    return;
  }
}

asio::awaitable<void> Push::expire(std::string id, std::shared_ptr<asio::steady_timer> timer) {
  auto [ec] = co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
  (void)ec;
  auto it = pending_.find(id);
  if (it == pending_.end() || it->second.timer != timer) co_return;  // answered
  spdlog::info("im: no answer from {} to a push notification of {}", it->second.jid,
               it->second.account);
  finished(id, Outcome::kDisabled);
}

asio::awaitable<void> Push::remove(Jid user, std::string jid, std::string node) {
  std::string domain = user.domain(), local = user.local();
  const std::string account = user.str();
  auto job = [domain, local, jid, node](storage::Storage& st) {
    return st.push_remove(domain, local, jid, node);
  };
  auto regs = co_await ctx_.worker.run(std::move(job));
  if (accounts_.contains(account)) set_registrations(account, std::move(regs));
}

void Push::session_bound(const Jid& user) {
  auto it = accounts_.find(user.bare_str());
  if (it == accounts_.end()) return;
  it->second.summary = {};
  // Without registrations the entry only held the count: read again when it is needed, so
  // that what stays in memory is the accounts that use push or got messages while away.
  if (it->second.loaded && !it->second.loading && it->second.regs.empty()) accounts_.erase(it);
}

void Push::account_removed(const Jid& user) {
  auto it = accounts_.find(user.bare_str());
  if (it == accounts_.end()) return;
  registrations_ -= it->second.regs.size();
  accounts_.erase(it);
  if (ctx_.metrics) ctx_.metrics->push_registrations.set(static_cast<double>(registrations_));
}

}  // namespace waddle::im
