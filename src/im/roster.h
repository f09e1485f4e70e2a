// Roster management (RFC 6121 §2): the client's roster get and set/remove, roster pushes to
// interested resources, and the one read-modify-write path every roster change takes.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "core/jid.h"
#include "im/context.h"
#include "im/logic/subscription.h"
#include "storage/storage.h"
#include "xml/element.h"

namespace waddle::im {

class Roster {
 public:
  // One event on the user's item for one contact: the item before (nullopt: none) in, what to
  // do out (im/logic).
  using Event = std::function<logic::Transition(const std::optional<storage::RosterItem>&)>;

  explicit Roster(const Context& ctx) : ctx_(ctx) {}

  // A roster get or set from the client bound to `from` (RFC 6121 §2.1.3, §2.3, §2.5).
  boost::asio::awaitable<void> handle_iq(xml::Element iq, core::Jid from);
  // Applies `event` to `user`'s item for `contact` on the storage thread and persists the
  // result; the read-modify-write is one job, so concurrent events cannot interleave.
  // `max_hidden`: an event that would add a hidden item (a request from outside the roster)
  // when the user already has this many is refused (Transition::refused; nothing stored).
  boost::asio::awaitable<logic::Transition> apply(const core::Jid& user, const std::string& contact,
                                                  Event event,
                                                  std::uint32_t max_hidden = UINT32_MAX);
  // §2.1.6: pushes the item to the user's resources that asked for the roster, with the
  // roster's version after the change (§2.6; 0: none sent).
  void push(const core::Jid& bare, const storage::RosterItem& item, std::uint64_t version = 0);

 private:
  boost::asio::awaitable<void> get(xml::Element iq, core::Jid from);
  // A roster set (§2.3) or remove (§2.5).
  boost::asio::awaitable<void> change(xml::Element iq, core::Jid from);
  static std::optional<xml::Element> refusal(const xml::Element& iq, const core::Jid& user);
  boost::asio::awaitable<void> remove(xml::Element iq, core::Jid from, std::string contact);
  boost::asio::awaitable<void> set(xml::Element iq, core::Jid from, std::string contact,
                                   xml::Element item);
  void push_element(const core::Jid& bare, const xml::Element& item, std::uint64_t version);

  const Context& ctx_;
  std::uint64_t push_counter_ = 0;
};

}  // namespace waddle::im
