// Multiplexing local domains on one outbound stream; see multiplex.h.
#include "s2s/multiplex.h"

#include <spdlog/spdlog.h>

#include "s2s/dialback.h"
#include "s2s/wire.h"

namespace waddle::s2s {
namespace asio = boost::asio;

Multiplexer::Multiplexer(const LinkTable& links, TimeSource& time, const DialbackKeys& keys,
                         core::Duration connect_timeout)
    : links_(links), time_(time), keys_(keys), connect_timeout_(connect_timeout) {}

std::shared_ptr<Link> Multiplexer::find_carrier(const Link& link) const {
  for (const auto& [k, l] : links_) {
    if (k.second != link.remote || l.get() == &link || l->state != Link::State::kReady) continue;
    const auto& out = l->out;
    if (!out || !out->usable() || !out->multiplexable || out->waiting.contains(link.local))
      continue;
    return l;
  }
  return nullptr;
}

bool Multiplexer::other_dialing(const Link& link) const {
  for (const auto& [k, l] : links_)
    if (k.second == link.remote && l.get() != &link && l->dialing) return true;
  return false;
}

// Another local domain is opening a stream to this peer right now (say both answer the same
// peer's presence probes): wait for it, up to connect_timeout in all, and share it. A link
// that waits is not dialing, so two links never wait for each other; when the stream failed
// and another waiter dials next, wait for that one too.
asio::awaitable<std::shared_ptr<Link>> Multiplexer::wait_for_carrier(std::shared_ptr<Link> link) {
  std::shared_ptr<Link> carrier = find_carrier(*link);
  auto known = peer_shares_.find(link->remote);
  const bool may_share = known == peer_shares_.end() || known->second;
  const auto give_up = time_.now() + connect_timeout_;
  while (!carrier && may_share && other_dialing(*link) && time_.now() < give_up) {
    std::shared_ptr<Timer> t = time_.make_timer();
    auto it = dial_waiters_.emplace(link->remote, t);
    co_await t->wait_until(give_up);
    dial_waiters_.erase(it);
    if (stopping_) co_return nullptr;
    carrier = find_carrier(*link);
  }
  co_return carrier;
}

// Sends our key for link.local on `out` and waits (connect_timeout) for the peer's answer.
asio::awaitable<std::optional<std::pair<bool, std::string>>> Multiplexer::ask(const Link& link,
                                                                              OutboundStream& out) {
  out.channel->send(
      wire::db_result(link.local, link.remote, keys_.key(link.remote, link.local, out.stream_id)));
  std::shared_ptr<Timer> wait = time_.make_timer();
  std::optional<std::pair<bool, std::string>> answer;
  auto on_answer = [&answer, wait](bool ok, std::string why) {
    answer.emplace(ok, std::move(why));
    wait->cancel();
  };
  out.waiting[link.local] = on_answer;
  co_await wait->wait_until(time_.now() + connect_timeout_);
  out.waiting.erase(link.local);
  co_return answer;
}

asio::awaitable<std::optional<Multiplexer::Joined>> Multiplexer::join(std::shared_ptr<Link> link) {
  const LinkKey pair{link->local, link->remote};
  if (auto r = refused_.find(pair); r != refused_.end()) {
    if (time_.now() < r->second) co_return std::nullopt;
    refused_.erase(r);
  }
  std::shared_ptr<Link> carrier = co_await wait_for_carrier(link);
  if (!carrier) co_return std::nullopt;
  std::shared_ptr<OutboundStream> out = carrier->out;
  auto answer = co_await ask(*link, *out);
  if (!answer || !answer->first) {
    // Not tried again for a while, on this stream or the next one.
    refused_[pair] = time_.now() + std::chrono::minutes(10);
    spdlog::info(
        "s2s {} -> {}: not multiplexed on the stream of {} -> {} ({}); opening a "
        "stream of its own",
        link->local, link->remote, carrier->local, carrier->remote,
        answer ? answer->second : std::string("no answer in time"));
    co_return std::nullopt;
  }
  if (!out->usable()) co_return std::nullopt;  // accepted, but the stream ended
  co_return Joined{out, carrier->local};
}

void Multiplexer::dial_ended(const std::string& remote) {
  auto [first, last] = dial_waiters_.equal_range(remote);
  for (auto w = first; w != last; ++w) w->second->cancel();
}

void Multiplexer::on_answer(OutboundStream& out, const std::string& remote,
                            const xml::Element& result) {
  auto it = out.waiting.find(std::string(result.attr("to")));
  // Only the peer asked may answer (its 'from').
  if (it == out.waiting.end() || result.attr("from") != remote) return;
  auto callback = it->second;
  callback(result.attr("type") == "valid", wire::dialback_answer(result));
}

void Multiplexer::ended(OutboundStream& out) {
  out.done = true;
  auto waiting = std::move(out.waiting);
  out.waiting.clear();
  for (auto& [local, callback] : waiting) callback(false, "the stream closed");
  if (out.closed) out.closed->cancel();
}

void Multiplexer::stop() {
  stopping_ = true;
  for (auto& [remote, waiter] : dial_waiters_) waiter->cancel();
}

}  // namespace waddle::s2s
