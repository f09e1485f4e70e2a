// XEP-0160 offline messages: store with a XEP-0203 delay stamp, deliver at the next login.
#include "im/offline.h"

#include <spdlog/spdlog.h>
#include <boost/asio.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/timestamp.h"
#include "im/logic/blocklist.h"
#include "metrics/metrics.h"
#include "net/worker.h"
#include "storage/storage.h"
#include "xml/parser.h"

namespace waddle::im {
namespace asio = boost::asio;
using core::Jid;
using core::StanzaError;
using xml::Element;

asio::awaitable<void> Offline::store(Element stanza, Jid bare, bool again) {
  enum class R { kStored, kNoAccount, kFull, kBlocked };
  std::string text;
  {
    Element stored = stanza;
    stored.add_child("delay", std::string(ns::kDelay))
        .set_attr("from", bare.domain())
        .set_attr("stamp", core::format_timestamp(std::chrono::system_clock::to_time_t(
                               std::chrono::system_clock::now())))
        .add_text("Offline Storage");
    text = stored.str();
  }
  // Held until written: the text for the store and the stanza to bounce if it is refused.
  const std::uint64_t size = 2 * text.size();
  // One message always goes through, however large; past the bound the sender hears that
  // the store is busy (a wait-type error: it may send again later) instead of the server
  // holding what it cannot write fast enough.
  if (!again && pending_bytes_ > 0 && pending_bytes_ + size > ctx_.config.c2s.max_offline_pending) {
    if (ctx_.metrics) ctx_.metrics->offline_message_refused("busy");
    ctx_.router.bounce(stanza, StanzaError::kResourceConstraint,
                       "The recipient's offline storage is busy; try again later");
    co_return;
  }
  std::string domain = bare.domain(), user = bare.local();
  auto max = ctx_.config.c2s.max_offline_messages;
  auto max_bytes = ctx_.config.c2s.max_offline_bytes;
  // XEP-0191: a sender the account blocks is refused here, on the storage thread (the
  // blocklist of an account without a session is not cached; see im/blocking.cpp).
  std::string sender;
  if (auto from = Jid::parse(stanza.attr("from"));
      from && !(from->domain() == domain && (from->local().empty() || from->local() == user)))
    sender = from->str();
  auto store_for_account = [domain, user, text = std::move(text), max, max_bytes,
                            sender](storage::Storage& st) {
    if (!st.get_account(domain, user)) return R::kNoAccount;
    if (!sender.empty() && logic::Blocklist(st.blocklist_get(domain, user)).blocks(sender))
      return R::kBlocked;
    return st.offline_store(domain, user, text, max, max_bytes) ? R::kStored : R::kFull;
  };
  pending_bytes_ += size;
  struct Release {
    std::uint64_t& pending;
    std::uint64_t size;
    ~Release() { pending -= size; }
  } release{pending_bytes_, size};
  R r = co_await ctx_.worker.run(std::move(store_for_account));
  if (r == R::kNoAccount) {
    ctx_.router.bounce(stanza, StanzaError::kServiceUnavailable);
    co_return;
  }
  if (r == R::kBlocked) {
    if (ctx_.metrics) ctx_.metrics->blocked("inbound");
    ctx_.router.bounce(stanza, StanzaError::kServiceUnavailable);
    co_return;
  }
  if (r == R::kFull) {
    if (ctx_.metrics) ctx_.metrics->offline_message_refused("full");
    ctx_.router.bounce(stanza, StanzaError::kServiceUnavailable,
                       "The recipient's offline storage is full");
    co_return;
  }
  if (ctx_.metrics) ctx_.metrics->offline_message_stored();
  if (!again && stored_) stored_(bare, stanza);
  // A resource may have become available while we were storing.
  for (auto* s : ctx_.available(bare, true)) {
    if (s->priority >= 0) co_await deliver(s->jid());
    break;
  }
}

asio::awaitable<void> Offline::deliver(Jid full) {
  std::string domain = full.domain(), user = full.local();
  auto take_stored = [=](storage::Storage& st) { return st.offline_take(domain, user); };
  auto messages = co_await ctx_.worker.run(std::move(take_stored));
  if (messages.empty()) co_return;
  auto* s = ctx_.router.find(full);
  std::vector<Element> parsed;
  for (const auto& m : messages) {
    if (auto el = xml::parse_element(m.stanza))
      parsed.push_back(std::move(*el));
    else
      spdlog::warn("im: unreadable offline message {} for {}", m.id, full.bare_str());
  }
  if (!s) {
    // The session went away meanwhile: keep the messages.
    auto store_again = [=](storage::Storage& st) {
      for (const auto& m : messages)
        st.offline_store(domain, user, m.stanza, UINT32_MAX, UINT64_MAX);
      return true;
    };
    co_await ctx_.worker.run(std::move(store_again));
    co_return;
  }
  for (const auto& el : parsed) s->deliver(el);
  spdlog::debug("im: delivered {} offline messages to {}", parsed.size(), full.str());
}

}  // namespace waddle::im
