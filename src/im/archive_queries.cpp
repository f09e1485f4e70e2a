// Message archives (XEP-0313), the reading side: an account's queries, preferences and
// metadata, answered to its own clients (the writing side is archive.cpp).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <utility>
#include <variant>

#include "core/timestamp.h"
#include "im/archive.h"
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
  auto job = [batch = std::move(taken.batch), mode = ctx_.config.mam.default_mode, owner,
              filter = q.filter](storage::Storage& st) {
    const std::size_t stored = batch.empty() ? 0 : st.archive_append(batch, mode);
    return std::make_pair(stored, st.archive_query(owner, filter));
  };
  std::pair<std::size_t, storage::ArchivePage> done;
  try {
    done = co_await ctx_.worker.run(std::move(job));
  } catch (...) {
    settle(taken, std::nullopt);  // the batch went with the failed job
    throw;
  }
  settle(taken, done.first);
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
    settle(taken, std::nullopt);  // the batch went with the failed job
    throw;
  }
  settle(taken, done.first);
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

}  // namespace waddle::im
