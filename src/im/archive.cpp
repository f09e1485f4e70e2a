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

}  // namespace

std::uint64_t Archive::weight(const std::vector<storage::ArchiveEntry>& batch) {
  std::uint64_t n = 0;
  for (const auto& e : batch) n += e.stanza.size() + 128;
  return n;
}

std::int64_t Archive::now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {

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

Element jid_list(std::string_view name, const std::vector<std::string>& jids) {
  Element list(std::string(name), std::string(ns::kMam));
  for (const auto& j : jids) list.add_child("jid", std::string(ns::kMam)).add_text(j);
  return list;
}

Element prefs_element(const storage::ArchivePrefs& p) {
  Element e("prefs", std::string(ns::kMam));
  e.set_attr("default", p.default_mode);
  e.add_child(jid_list("always", p.always));
  e.add_child(jid_list("never", p.never));
  return e;
}

std::optional<std::vector<std::string>> read_jids(const Element* list) {
  std::vector<std::string> out;
  if (!list) return out;
  for (const Element* j : list->children("jid", ns::kMam)) {
    auto jid = Jid::parse(j->text());
    if (!jid) return std::nullopt;
    out.push_back(jid->bare_str());
  }
  return out;
}

Element result_message(const storage::ArchiveEntry& e, const std::string& to,
                       const std::string& queryid) {
  Element m("message", std::string(ns::kClient));
  m.set_attr("to", to);
  m.set_attr("from", e.owner);
  auto& result = m.add_child("result", std::string(ns::kMam));
  if (!queryid.empty()) result.set_attr("queryid", queryid);
  result.set_attr("id", e.id);
  auto& fwd = result.add_child("forwarded", std::string(ns::kForward));
  fwd.add_child("delay", std::string(ns::kDelay))
      .set_attr("stamp", core::format_timestamp(e.time_us / 1'000'000));
  if (auto original = xml::parse_element(e.stanza, ns::kClient))
    fwd.add_child(std::move(*original));
  return m;
}

Element fin(const Element& iq, const storage::ArchivePage& page) {
  Element reply = xml::make_iq_result(iq);
  auto& fin = reply.add_child("fin", std::string(ns::kMam));
  if (page.complete) fin.set_attr("complete", "true");
  auto& set = fin.add_child("set", std::string(ns::kRsm));
  if (page.items.empty()) {
    set.add_child("count", std::string(ns::kRsm)).add_text("0");
  } else {
    set.add_child("first", std::string(ns::kRsm)).add_text(page.items.front().id);
    set.add_child("last", std::string(ns::kRsm)).add_text(page.items.back().id);
  }
  return reply;
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
  append({by, id, now, from.bare_str(), from.is_bare() ? std::string() : from.str(),
          message.str(ns::kClient)});
  message.add_child("stanza-id", std::string(ns::kSid)).set_attr("id", id).set_attr("by", by);
}

void Archive::outgoing(const Element& message, const Jid& from) {
  if (!enabled_ || !worth_keeping(message)) return;
  auto to = Jid::parse(message.attr("to"));
  if (!to || to->bare() == from.bare()) return;  // to oneself: archived as it arrives
  const std::int64_t now = now_us();
  append({from.bare_str(), core::ordered_id(now), now, to->bare_str(),
          to->is_bare() ? std::string() : to->str(), message.str(ns::kClient)});
}

void Archive::append(storage::ArchiveEntry entry) {
  const std::uint64_t size = entry.stanza.size() + 128;
  if (pending_.size() >= max_pending_ ||
      (pending_bytes_ > 0 && pending_bytes_ + size > kMaxPendingBytes)) {
    if (ctx_.metrics) {
      if (entry.room)
        ctx_.metrics->room_archive("dropped");
      else
        ctx_.metrics->archive("dropped");
    }
    return;
  }
  // Past half of either bound, the stanza's source (a client, an inbound server stream, a
  // room's work) is read more slowly until the storage thread has caught up: pacing, not loss.
  // A source that cannot wait (a timer's work) goes on, up to the bounds.
  if (pending_.size() >= max_pending_ / 2 || pending_bytes_ + size > kMaxPendingBytes / 2) {
    if (router::Flow::slow_down(congestion_, router::Wait::kBrief) && ctx_.metrics)
      ctx_.metrics->archive_paced_source();
  }
  pending_bytes_ += size;
  // A new batch starts with room for as many as the last one had, not growing entry by entry.
  if (pending_.capacity() == 0)
    pending_.reserve(std::clamp<std::size_t>(last_batch_, 1, max_pending_));
  pending_.push_back(std::move(entry));
  if (writing_) return;
  writing_ = true;
  ctx_.spawn(write_batches());
}

// One batch at a time, one transaction each: what arrives while a batch is written waits for
// the next, so that a busy server writes larger batches, not more of them.
asio::awaitable<void> Archive::write_batches() {
  while (!pending_.empty()) {
    Taken taken = take_pending();
    const std::size_t count = taken.batch.size();
    auto job = [batch = std::move(taken.batch), mode = ctx_.config.mam.default_mode](
                   storage::Storage& st) { return st.archive_append(batch, mode); };
    try {
      const std::size_t stored = co_await ctx_.worker.run(std::move(job));
      written(count, taken.rooms, stored);
    } catch (const std::exception& e) {
      spdlog::error("im: archiving {} messages failed: {}", count, e.what());
      written(count, taken.rooms, std::nullopt);
    }
    pending_bytes_ -= taken.bytes;
    if (pending_.size() < max_pending_ / 2 && pending_bytes_ <= kMaxPendingBytes / 2)
      congestion_.relieve();  // the sources held back go on
  }
  writing_ = false;
}

Archive::Taken Archive::take_pending() {
  Taken t;
  t.bytes = weight(pending_);
  t.rooms = static_cast<std::size_t>(
      std::count_if(pending_.begin(), pending_.end(), [](const auto& e) { return e.room; }));
  t.batch = std::exchange(pending_, {});
  last_batch_ = t.batch.size();
  return t;
}

// Room entries are always stored: what was not stored is an account's.
void Archive::written(std::size_t count, std::size_t rooms, std::optional<std::size_t> stored) {
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

bool Archive::handles(const Element& iq) {
  const Element* q = iq.first_child();
  return q && q->ns() == ns::kMam;
}

asio::awaitable<void> Archive::own_iq(Element iq, Jid from) {
  const auto type = iq.attr("type");
  const Element* q = iq.first_child();
  if (!enabled_ || (type != "get" && type != "set")) {
    ctx_.deliver_to(from, xml::make_error_reply(iq, StanzaError::kServiceUnavailable));
    co_return;
  }
  if (q->name() == "query") {
    co_await query(std::move(iq), std::move(from));
  } else if (q->name() == "prefs") {
    co_await prefs(std::move(iq), std::move(from));
  } else if (q->name() == "metadata" && type == "get") {
    co_await metadata(std::move(iq), std::move(from));
  } else {
    ctx_.deliver_to(from, xml::make_error_reply(iq, StanzaError::kFeatureNotImplemented));
  }
}

asio::awaitable<void> Archive::query(Element iq, Jid from) {
  const std::string owner = from.bare_str();
  co_await answer(std::move(iq), owner, std::move(from), false);
}

void Archive::reply(const Jid& to, const Element& stanza, bool room) {
  if (room)
    ctx_.router.route(stanza);
  else
    ctx_.deliver_to(to, stanza);
}

void Archive::count_query(std::string_view result, bool room) {
  if (!ctx_.metrics) return;
  if (room)
    ctx_.metrics->room_archive_query(result);
  else
    ctx_.metrics->archive_query(result);
}

// A query of the archive `owner` from `from` (its own account's client, or one a room let
// in): the results, then the IQ result with <fin/> (XEP-0313 §4.2).
asio::awaitable<void> Archive::answer(Element iq, std::string owner, Jid from, bool room) {
  if (iq.attr("type") == "get") {  // the form (XEP-0313 §4.1.5)
    Element form = xml::make_iq_result(iq);
    form.add_child("query", std::string(ns::kMam)).add_child(mam_query_form());
    reply(from, form, room);
    co_return;
  }
  auto parsed = parse_mam_query(*iq.first_child(), ctx_.config.mam.max_page_size);
  if (room)
    if (auto* q = std::get_if<MamQuery>(&parsed))
      if (auto err = room_with_error(q->filter.with, owner)) parsed = std::move(*err);
  if (auto* err = std::get_if<MamQueryError>(&parsed)) {
    count_query("error", room);
    reply(from, xml::make_error_reply(iq, err->condition, err->text), room);
    co_return;
  }
  MamQuery q = std::get<MamQuery>(std::move(parsed));
  // What waits to be written goes first, so that the query sees every message so far.
  Taken taken = take_pending();
  const std::size_t count = taken.batch.size();
  auto job = [batch = std::move(taken.batch), mode = ctx_.config.mam.default_mode, owner,
              filter = q.filter](storage::Storage& st) {
    const std::size_t stored = batch.empty() ? 0 : st.archive_append(batch, mode);
    return std::make_pair(stored, st.archive_query(owner, filter));
  };
  std::pair<std::size_t, storage::ArchivePage> done;
  try {
    done = co_await ctx_.worker.run(std::move(job));
  } catch (...) {
    pending_bytes_ -= taken.bytes;  // the batch went with the failed job
    written(count, taken.rooms, std::nullopt);
    throw;
  }
  pending_bytes_ -= taken.bytes;
  written(count, taken.rooms, done.first);
  const storage::ArchivePage& page = done.second;
  if (page.unknown_id) {
    count_query("error", room);
    reply(from,
          xml::make_error_reply(iq, StanzaError::kItemNotFound, "No such message in the archive"),
          room);
    co_return;
  }
  count_query("ok", room);
  auto send = [&](const storage::ArchiveEntry& e) {
    reply(from, result_message(e, from.str(), q.queryid), room);
  };
  if (q.flip_page)
    std::for_each(page.items.rbegin(), page.items.rend(), send);
  else
    std::for_each(page.items.begin(), page.items.end(), send);
  reply(from, fin(iq, page), room);
}

// XEP-0313 §6: archiving preferences.
asio::awaitable<void> Archive::prefs(Element iq, Jid from) {
  const Element* p = iq.first_child();
  std::optional<storage::ArchivePrefs> wanted;
  if (iq.attr("type") == "set") {
    const auto mode = p->attr("default");
    auto always = read_jids(p->child("always", ns::kMam));
    auto never = read_jids(p->child("never", ns::kMam));
    if (mode != "always" && mode != "never" && mode != "roster") {
      ctx_.deliver_to(from, xml::make_error_reply(iq, StanzaError::kBadRequest,
                                                  "default is always, never or roster"));
      co_return;
    }
    if (!always || !never) {
      ctx_.deliver_to(from, xml::make_error_reply(iq, StanzaError::kJidMalformed));
      co_return;
    }
    wanted = storage::ArchivePrefs{std::string(mode), std::move(*always), std::move(*never)};
  }
  auto job = [owner = from.bare_str(), wanted,
              fallback = ctx_.config.mam.default_mode](storage::Storage& st) {
    if (wanted) st.archive_set_prefs(owner, *wanted);
    auto stored = st.archive_prefs(owner);
    return stored ? *stored : storage::ArchivePrefs{fallback, {}, {}};
  };
  storage::ArchivePrefs now = co_await ctx_.worker.run(std::move(job));
  Element reply = xml::make_iq_result(iq);
  reply.add_child(prefs_element(now));
  ctx_.deliver_to(from, reply);
}

// The oldest and newest message (XEP-0313 §7.1), so that a client knows where to start.
asio::awaitable<void> Archive::metadata(Element iq, Jid from) {
  Taken taken = take_pending();
  const std::size_t count = taken.batch.size();
  auto job = [batch = std::move(taken.batch), mode = ctx_.config.mam.default_mode,
              owner = from.bare_str()](storage::Storage& st) {
    const std::size_t stored = batch.empty() ? 0 : st.archive_append(batch, mode);
    return std::make_pair(stored, st.archive_bounds(owner));
  };
  std::pair<std::size_t, std::optional<std::pair<storage::ArchiveEntry, storage::ArchiveEntry>>>
      done;
  try {
    done = co_await ctx_.worker.run(std::move(job));
  } catch (...) {
    pending_bytes_ -= taken.bytes;  // the batch went with the failed job
    written(count, taken.rooms, std::nullopt);
    throw;
  }
  pending_bytes_ -= taken.bytes;
  written(count, taken.rooms, done.first);
  const auto& bounds = done.second;
  Element reply = xml::make_iq_result(iq);
  auto& md = reply.add_child("metadata", std::string(ns::kMam));
  if (bounds) {
    for (const auto* e : {&bounds->first, &bounds->second})
      md.add_child(e == &bounds->first ? "start" : "end", std::string(ns::kMam))
          .set_attr("id", e->id)
          .set_attr("timestamp", core::format_timestamp(e->time_us / 1'000'000));
  }
  ctx_.deliver_to(from, reply);
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
