// Offline storage (XEP-0160, stamped per XEP-0203): messages for an account without an
// available resource are kept and delivered when the user comes online.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <functional>

#include "core/jid.h"
#include "im/context.h"
#include "xml/element.h"

namespace waddle::im {

class Offline {
 public:
  // Told about each message stored that was not stored before (not `again`).
  using Stored = std::function<void(const core::Jid& bare, const xml::Element& stanza)>;
  Offline(const Context& ctx, Stored stored) : ctx_(ctx), stored_(std::move(stored)) {}

  // Stores a message for `bare`; bounces it when there is no such account or the store is
  // full. Delivers at once if a resource became available meanwhile.
  // `again`: a message already accepted once (see ImService::to_local_again), not refused
  // for c2s.max_offline_pending.
  boost::asio::awaitable<void> store(xml::Element stanza, core::Jid bare, bool again = false);
  // Hands the stored messages to the session bound to `full`.
  boost::asio::awaitable<void> deliver(core::Jid full);

 private:
  const Context& ctx_;
  Stored stored_;
  // Bytes of stored-to-be messages handed to the storage worker and not yet written: a
  // sender faster than the disk would otherwise queue without bound (config
  // c2s.max_offline_pending).
  std::uint64_t pending_bytes_ = 0;
};

}  // namespace waddle::im
