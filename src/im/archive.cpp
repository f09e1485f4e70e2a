// Message archives (XEP-0313), the writing side: what is archived and its stanza ids, the
// batches written from the storage thread, pacing, retention (queries: archive_queries.cpp).
#include "im/archive.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <chrono>
#include <utility>
#include <variant>

#include "core/ids.h"
#include "core/timestamp.h"
#include "im/logic/mam_query.h"
#include "metrics/metrics.h"
#include "net/worker.h"
#include "xml/parser.h"
#include "xml/stanza.h"

namespace waddle::im {
namespace asio = boost::asio;
using core::Jid;
using core::StanzaError;
using xml::Element;

namespace {

// Entries waiting for (or being written by) the storage thread, at most, in count and in
// bytes: past either the archive copy of a message is not kept (the message itself is
// delivered) rather than the server holding what the disk cannot take.
constexpr std::uint64_t kMaxPendingBytes = 8 * 1024 * 1024;
// The largest batch buffer kept once the archive is idle.
constexpr std::size_t kKeptBatchBytes = 256 * 1024;
constexpr std::size_t kKeptBatchEntries = 2048;
// A batch waits for more while it has fewer entries than this, at most this many turns.
constexpr std::size_t kGatherEntries = 512;
constexpr int kGatherTurns = 16;

}  // namespace

std::uint64_t Archive::weight(const storage::ArchiveBatch& batch) {
  return batch.stanza_bytes() + 128 * std::uint64_t{batch.size()};
}

std::int64_t Archive::now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {

// The bare and the full form of `jid` (empty when it is bare), into reused strings.
void write_jids(const Jid& jid, std::string& bare, std::string& full) {
  bare.clear();
  if (!jid.local().empty()) bare.append(jid.local()).append(1, '@');
  bare.append(jid.domain());
  full.clear();
  if (!jid.resource().empty()) full.append(bare).append(1, '/').append(jid.resource());
}

// XEP-0359 §3.1: a <stanza-id/> that claims to come from the archiving entity is not to be
// believed (the sender made it up); it is removed.
void strip_claims(Element& message, std::string_view by) {
  bool found = false;
  for (const auto& node : message.nodes())
    if (node.is_element() && node.element->is("stanza-id", ns::kSid) &&
        node.element->attr("by") == by)
      found = true;
  if (!found) return;
  Element kept(message.name(), message.ns());
  for (const auto& a : message.attrs()) kept.set_attr(a.name, a.value);
  for (const auto& node : message.nodes()) {
    if (!node.is_element()) continue;
    if (node.element->is("stanza-id", ns::kSid) && node.element->attr("by") == by) continue;
    kept.add_child(*node.element);
  }
  message = std::move(kept);
}

}  // namespace

Archive::Archive(const Context& ctx)
    : ctx_(ctx),
      enabled_(ctx.config.mam.enabled),
      max_pending_(ctx.config.mam.max_pending),
      cleanup_(ctx.executor) {}

void Archive::incoming(Element& message, const Jid& from, const Jid& owner, bool again) {
  if (again) return;  // archived (and stamped) the first time
  std::string by = owner.bare_str();
  strip_claims(message, by);
  if (!enabled_ || !worth_keeping(message)) return;
  const std::int64_t now = now_us();
  std::string id = core::ordered_id(now);
  write_jids(from, bare_, full_);
  append(by, id, now, bare_, full_, false, message);
  message.add_child("stanza-id", std::string(ns::kSid)).set_attr("id", id).set_attr("by", by);
}

void Archive::outgoing(const Element& message, const Jid& from) {
  if (!enabled_ || !worth_keeping(message)) return;
  auto to = Jid::parse(message.attr("to"));
  if (!to || to->bare() == from.bare()) return;  // to oneself: archived as it arrives
  const std::int64_t now = now_us();
  const std::string owner = from.bare_str();
  write_jids(*to, bare_, full_);
  append(owner, core::ordered_id(now), now, bare_, full_, false, message);
}

void Archive::append(std::string_view owner, std::string_view id, std::int64_t time_us,
                     std::string_view with_bare, std::string_view with_full, bool room,
                     const Element& message) {
  // A new batch (not a reused one) starts with room for as much as the last one had, not
  // growing entry by entry.
  if (pending_.capacity() == 0)
    pending_.reserve(std::clamp<std::size_t>(last_batch_, 1, max_pending_), last_batch_bytes_);
  // Written into the batch first (its size is known then), taken back if over the bounds.
  pending_.add(owner, id, time_us, with_bare, with_full, room,
               [&](std::string& out) { message.serialize(out, ns::kClient); });
  const std::uint64_t size = pending_[pending_.size() - 1].stanza.size() + 128;
  if (pending_.size() > max_pending_ ||
      (pending_bytes_ > 0 && pending_bytes_ + size > kMaxPendingBytes)) {
    pending_.pop_back();
    if (ctx_.metrics) {
      if (room)
        ctx_.metrics->room_archive("dropped");
      else
        ctx_.metrics->archive("dropped");
    }
    return;
  }
  // Past half of either bound, the stanza's source (a client, an inbound server stream, a
  // room's work) is read more slowly until the storage thread has caught up: pacing, not loss.
  // A source that cannot wait (a timer's work) goes on, up to the bounds.
  if (pending_.size() > max_pending_ / 2 || pending_bytes_ + size > kMaxPendingBytes / 2) {
    if (router::Flow::slow_down(congestion_, router::Wait::kBrief) && ctx_.metrics)
      ctx_.metrics->archive_paced_source();
  }
  pending_bytes_ += size;
  if (writing_) return;
  writing_ = true;
  ctx_.spawn(write_batches());
}

// One batch at a time, one transaction each: what arrives while a batch is written waits for
// the next, so that a busy server writes larger batches, not more of them.
asio::awaitable<void> Archive::write_batches() {
  while (!pending_.empty()) {
    co_await gather();
    if (pending_.empty()) break;  // a query took what waited (and wrote it) meanwhile
    Taken taken = take_pending();
    // The batch comes back with the count, to be freed here: its strings were allocated on
    // this thread, and freeing them on the storage thread cost that thread a lock on this
    // thread's heap for each one (an eighth of its time under load).
    auto job = [batch = std::move(taken.batch),
                mode = ctx_.config.mam.default_mode](storage::Storage& st) mutable {
      const std::size_t stored = st.archive_append(batch, mode);
      return std::make_pair(stored, std::move(batch));
    };
    try {
      auto done = co_await ctx_.worker.run(std::move(job));
      settle(taken, done.first);
      reuse(std::move(done.second));
    } catch (const std::exception& e) {
      spdlog::error("im: archiving {} messages failed: {}", taken.count, e.what());
      settle(taken, std::nullopt);
    }
  }
  writing_ = false;
  if (idle_) idle_->cancel();  // flush() is waiting for this
  // Idle: neither the empty pending batch nor the spare keeps a flood's worth of memory.
  auto too_big = [](const storage::ArchiveBatch& b) {
    return b.text_capacity() > kKeptBatchBytes || b.capacity() > kKeptBatchEntries;
  };
  if (too_big(pending_)) pending_ = {};
  if (too_big(spare_)) spare_ = {};
}

// Each transaction costs the writes of the pages it touches, however few entries it adds: a
// batch of one read's worth of messages (64) cost the storage thread a third more per message
// than one of hundreds. So while messages keep arriving, a small batch waits a few turns of the
// reactor (no timer: when a turn brings nothing, it goes at once; when stopping, it never waits).
asio::awaitable<void> Archive::gather() {
  for (int turn = 0; turn < kGatherTurns && pending_.size() < kGatherEntries && !hurry_; ++turn) {
    const std::size_t before = pending_.size();
    co_await asio::post(ctx_.executor, asio::use_awaitable);
    if (pending_.size() == before) co_return;
  }
}

asio::awaitable<void> Archive::flush() {
  hurry_ = true;
  if (!writing_) co_return;
  // Woken by write_batches when it ends (bounded by server.shutdown_timeout, which stops the
  // reactor if the disk does not keep up).
  asio::steady_timer idle(ctx_.executor, asio::steady_timer::time_point::max());
  idle_ = &idle;
  while (writing_) co_await idle.async_wait(asio::as_tuple(asio::use_awaitable));
  idle_ = nullptr;
}

Archive::Taken Archive::take_pending() {
  Taken t;
  t.bytes = weight(pending_);
  t.rooms = pending_.rooms();
  t.batch = std::exchange(pending_, std::exchange(spare_, {}));
  t.count = last_batch_ = t.batch.size();
  last_batch_bytes_ = t.batch.text_bytes();
  return t;
}

// A written batch's memory becomes the next one's: a fresh buffer of hundreds of kilobytes
// came from the kernel each time, and its pages faulted in as messages were written into it.
// When the archive falls idle, buffers larger than kKeptBatchBytes (or kKeptBatchEntries) are
// let go, so that an idle server does not keep a flood's worth.
void Archive::reuse(storage::ArchiveBatch batch) {
  if (spare_.text_capacity() > 0) return;
  batch.clear();
  spare_ = std::move(batch);
}

// Room entries are always stored: what was not stored is an account's.
void Archive::settle(const Taken& taken, std::optional<std::size_t> stored) {
  pending_bytes_ -= taken.bytes;
  // Every job that takes the backlog settles here, so that none leaves a source waiting.
  if (pending_.size() < max_pending_ / 2 && pending_bytes_ <= kMaxPendingBytes / 2)
    congestion_.relieve();
  const std::size_t count = taken.count, rooms = taken.rooms;
  if (!ctx_.metrics || count == 0) return;
  if (!stored) {
    if (count > rooms) ctx_.metrics->archive("dropped", count - rooms);
    if (rooms > 0) ctx_.metrics->room_archive("dropped", rooms);
    return;
  }
  ctx_.metrics->archive("archived", *stored - std::min(*stored, rooms));
  ctx_.metrics->archive("skipped", count - std::max(*stored, rooms));
  if (rooms > 0) ctx_.metrics->room_archive("archived", rooms);
}

void Archive::start_cleanup() {
  const auto& mam = ctx_.config.mam;
  if (!enabled_ || (mam.retention.count() == 0 && mam.max_messages_per_account == 0)) return;
  ctx_.spawn(cleanup_loop());
}

void Archive::stop() {
  stopped_ = true;
  cleanup_.cancel();
}

asio::awaitable<void> Archive::cleanup_loop() {
  const auto& mam = ctx_.config.mam;
  while (!stopped_) {
    const std::int64_t before =
        mam.retention.count() > 0 ? now_us() - std::int64_t{mam.retention.count()} * 1000 : 0;
    auto job = [before, max = mam.max_messages_per_account](storage::Storage& st) {
      return st.archive_expire(before, max);
    };
    const std::uint64_t removed = co_await ctx_.worker.run(std::move(job));
    if (ctx_.metrics && removed > 0) ctx_.metrics->archive("expired", removed);
    cleanup_.expires_after(mam.cleanup_interval);
    auto [ec] = co_await cleanup_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
  }
}

}  // namespace waddle::im
