// Message archives of accounts (XEP-0313) and the stanza ids that name their messages
// (XEP-0359). Every chat message an account receives or sends is archived (as its preferences
// and [mam] say) in batches written from the storage thread, never blocking the reactor; an
// incoming message gets <stanza-id by='account'/> before delivery, and one a sender put there
// claiming the account is removed. Queries, preferences and metadata are answered to the
// account's own clients; other entities asking get <forbidden/>. Rooms keep their archives
// here too (room_archive.cpp), in the same batches and table.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/jid.h"
#include "im/context.h"
#include "router/flow.h"
#include "storage/storage.h"
#include "xml/element.h"

namespace waddle::im {

class Archive {
 public:
  explicit Archive(const Context& ctx);

  bool enabled() const { return enabled_; }
  // A message from `from` for the local account `owner` (before delivery or offline storage).
  // `again`: routed a second time (its first delivery did not reach the client): already
  // archived.
  void incoming(xml::Element& message, const core::Jid& from, const core::Jid& owner, bool again);
  // A message the local account `from` sends.
  void outgoing(const xml::Element& message, const core::Jid& from);

  // An IQ of the urn:xmpp:mam:2 namespace from a client to its own account.
  static bool handles(const xml::Element& iq);
  boost::asio::awaitable<void> own_iq(xml::Element iq, core::Jid from);

  // Room archives (XEP-0313 on rooms, muc::Env): a groupchat message the room `room` keeps
  // as `id` (its stanza-id), sent by the occupant JID `occupant`; a query the room allowed
  // (answered through the router, to local or remote occupants); a room that went away.
  void room_message(const std::string& room, std::string id, const std::string& occupant,
                    const xml::Element& message);
  boost::asio::awaitable<void> room_query(xml::Element iq, std::string room);
  void room_deleted(std::string room);
  // XEP-0425: the room's archived message `id` replaced by what `tombstone` makes of it (on
  // the storage thread); `done` gets whether there was such a message, on the reactor.
  void room_retract(std::string room, std::string id,
                    std::function<xml::Element(const xml::Element&)> tombstone,
                    std::function<void(bool)> done);

  // Shutting down: what waits is written without gathering more; done once nothing waits for
  // or is being handed to the storage thread.
  boost::asio::awaitable<void> flush();

  // Retention and the per-account limit, now and every [mam] cleanup_interval.
  void start_cleanup();
  void stop();

 private:
  static std::int64_t now_us();
  // In bytes (stanzas plus overhead per entry), as pending_bytes_ counts them.
  static std::uint64_t weight(const storage::ArchiveBatch& batch);
  // The pending entries a storage job takes to write before its own work.
  struct Taken {
    storage::ArchiveBatch batch;
    std::size_t count = 0;
    std::size_t rooms = 0;  // entries of room archives among them
    std::uint64_t bytes = 0;
  };
  Taken take_pending();
  // A taken batch is done, `stored` of it kept (none: the write failed): its bytes no longer
  // wait, it is counted, and the sources held back go on once the backlog is below half.
  void settle(const Taken& taken, std::optional<std::size_t> stored);
  void reuse(storage::ArchiveBatch batch);
  // Adds `message` (as jabber:client) to the pending batch, unless the backlog is full.
  void append(std::string_view owner, std::string_view id, std::int64_t time_us,
              std::string_view with_bare, std::string_view with_full, bool room,
              const xml::Element& message);
  boost::asio::awaitable<void> answer(xml::Element iq, std::string owner, core::Jid from,
                                      bool room);
  // Room archives answer through the router, account archives to the session.
  void reply(const core::Jid& to, const xml::Element& stanza, bool room);
  void count_query(std::string_view result, bool room);
  boost::asio::awaitable<void> drop(std::string room);
  boost::asio::awaitable<void> retract(std::string room, std::string id,
                                       std::function<xml::Element(const xml::Element&)> tombstone,
                                       std::function<void(bool)> done);
  boost::asio::awaitable<void> write_batches();
  boost::asio::awaitable<void> gather();
  boost::asio::awaitable<void> query(xml::Element iq, core::Jid from);
  boost::asio::awaitable<void> prefs(xml::Element iq, core::Jid from);
  boost::asio::awaitable<void> metadata(xml::Element iq, core::Jid from);
  boost::asio::awaitable<void> cleanup_loop();

  const Context& ctx_;
  const bool enabled_;
  const std::size_t max_pending_;     // [mam] max_pending
  storage::ArchiveBatch pending_;     // not yet handed to the storage thread
  storage::ArchiveBatch spare_;       // a written batch's memory, for the next one
  std::uint64_t pending_bytes_ = 0;   // those and the batches being written
  std::size_t last_batch_ = 0;        // entries in the batch written last
  std::size_t last_batch_bytes_ = 0;  // and the bytes of its texts
  std::string bare_, full_;           // scratch for the JIDs of an entry being added
  bool writing_ = false;
  bool hurry_ = false;                         // stopping: batches are written without gathering
  boost::asio::steady_timer* idle_ = nullptr;  // flush() waits on it until writing_ ends
  router::Congestion congestion_;  // the sources waiting for the storage thread to catch up
  boost::asio::steady_timer cleanup_;
  bool stopped_ = false;
};

}  // namespace waddle::im
