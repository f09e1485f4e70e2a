// Message archives of accounts (XEP-0313) and the stanza ids that name their messages
// (XEP-0359). Every chat message an account receives or sends is archived (as its preferences
// and [mam] say) in batches written from the storage thread, never blocking the reactor; an
// incoming message gets <stanza-id by='account'/> before delivery, and one a sender put there
// claiming the account is removed. Queries, preferences and metadata are answered to the
// account's own clients; other entities asking get <forbidden/>.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <vector>

#include "core/jid.h"
#include "im/context.h"
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

  // Retention and the per-account limit, now and every [mam] cleanup_interval.
  void start_cleanup();
  void stop();

 private:
  void append(storage::ArchiveEntry entry);
  boost::asio::awaitable<void> write_batches();
  boost::asio::awaitable<void> query(xml::Element iq, core::Jid from);
  boost::asio::awaitable<void> prefs(xml::Element iq, core::Jid from);
  boost::asio::awaitable<void> metadata(xml::Element iq, core::Jid from);
  boost::asio::awaitable<void> cleanup_loop();

  const Context& ctx_;
  const bool enabled_;
  std::vector<storage::ArchiveEntry> pending_;  // not yet handed to the storage thread
  std::uint64_t pending_bytes_ = 0;             // those and the batches being written
  std::size_t last_batch_ = 0;                  // entries in the batch written last
  bool writing_ = false;
  boost::asio::steady_timer cleanup_;
  bool stopped_ = false;
};

}  // namespace waddle::im
