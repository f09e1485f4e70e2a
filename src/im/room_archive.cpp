// Room archives (XEP-0313 on rooms) kept by the server for its room services: the messages a
// room hands over join the account archives' batches (one table, owner "room@service"), and
// queries the room allowed are answered through the router, so that occupants on other
// servers get their results over S2S like local ones.
#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <utility>

#include "im/archive.h"
#include "metrics/metrics.h"
#include "net/worker.h"
#include "storage/storage.h"
#include "xml/parser.h"
#include "xml/stanza.h"

namespace waddle::im {
namespace asio = boost::asio;
using core::Jid;
using xml::Element;

void Archive::room_message(const std::string& room, std::string id, const std::string& occupant,
                           const Element& message) {
  if (!enabled_) return;
  append(room, id, now_us(), room, occupant, true, message);
}

asio::awaitable<void> Archive::room_query(Element iq, std::string room) {
  auto from = Jid::parse(iq.attr("from"));
  if (!from) co_return;
  co_await answer(std::move(iq), std::move(room), std::move(*from), true);
}

void Archive::room_deleted(std::string room) {
  if (!enabled_) return;
  ctx_.spawn(drop(std::move(room)));
}

// What waits to be written goes first (it may hold the room's last messages), then the
// archive is deleted: nothing of the room is left behind.
asio::awaitable<void> Archive::drop(std::string room) {
  Taken taken = take_pending();
  auto job = [batch = std::move(taken.batch), mode = ctx_.config.mam.default_mode,
              owner = room](storage::Storage& st) {
    const std::size_t stored = batch.empty() ? 0 : st.archive_append(batch, mode);
    return std::make_pair(stored, st.archive_delete(owner));
  };
  std::pair<std::size_t, std::uint64_t> done;
  try {
    done = co_await ctx_.worker.run(std::move(job));
  } catch (const std::exception& e) {
    settle(taken, std::nullopt);
    spdlog::error("im: deleting the archive of {} failed: {}", room, e.what());
    co_return;
  }
  settle(taken, done.first);
  if (done.second > 0 && ctx_.metrics) ctx_.metrics->room_archive("deleted", done.second);
}

void Archive::room_retract(std::string room, std::string id,
                           std::function<Element(const Element&)> tombstone,
                           std::function<void(bool)> done) {
  if (!enabled_) return done(false);
  ctx_.spawn(retract(std::move(room), std::move(id), std::move(tombstone), std::move(done)));
}

// What waits to be written goes first (the message may be among it), then the entry is
// read and replaced, on the storage thread.
asio::awaitable<void> Archive::retract(std::string room, std::string id,
                                       std::function<Element(const Element&)> tombstone,
                                       std::function<void(bool)> done) {
  Taken taken = take_pending();
  auto job = [batch = std::move(taken.batch), mode = ctx_.config.mam.default_mode, room, id,
              tombstone](storage::Storage& st) {
    const std::size_t stored = batch.empty() ? 0 : st.archive_append(batch, mode);
    storage::ArchiveFilter filter;
    filter.ids = {id};
    filter.max = 1;
    bool found = false;
    const auto page = st.archive_query(room, filter);
    if (!page.items.empty())
      if (auto original = xml::parse_element(page.items.front().stanza, ns::kClient))
        found = st.archive_replace(room, id, tombstone(*original).str(ns::kClient));
    return std::make_pair(stored, found);
  };
  std::pair<std::size_t, bool> result{0, false};
  try {
    result = co_await ctx_.worker.run(std::move(job));
  } catch (const std::exception& e) {
    settle(taken, std::nullopt);
    spdlog::error("im: retracting {} in the archive of {} failed: {}", id, room, e.what());
    done(false);
    co_return;
  }
  settle(taken, result.first);
  done(result.second);
}

}  // namespace waddle::im
