// Push notifications (XEP-0357) for local accounts: the enable and disable commands of an
// account's own clients (§5, §6), the registrations (read from storage once per account, then
// cached), and the notifications (§7) sent through the router to each registered app server,
// local or remote, when a message arrives while every client of the account is away: its
// sessions all wait to be resumed (XEP-0198), or it has none and the message went to offline
// storage. At most one notification per registration is in flight; the ones due meanwhile
// coalesce into one sent when it is answered. An error of type cancel or auth, or no answer
// within push.notify_timeout, removes the registration.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/jid.h"
#include "im/context.h"
#include "im/logic/push.h"
#include "storage/storage.h"
#include "xml/element.h"

namespace waddle::im {

class Push {
 public:
  explicit Push(const Context& ctx) : ctx_(ctx) {}

  bool enabled() const { return ctx_.config.push.enabled; }
  // An <enable/> or <disable/> IQ (sent by a client to its own account).
  static bool handles(const xml::Element& iq) { return logic::is_push_command(iq); }
  boost::asio::awaitable<void> own_iq(xml::Element iq, core::Jid from);

  // A message worth keeping for the local account `user` that none of its clients sees now.
  void message_waiting(const core::Jid& user, const xml::Element& message);
  // An IQ result or error for a local account: true when it answers one of our notifications.
  bool take_answer(const xml::Element& iq);
  // A session of `user` was bound or resumed: the user is back, the count starts again.
  void session_bound(const core::Jid& user);
  // The account is gone (its registrations went with it in storage).
  void account_removed(const core::Jid& user);

 private:
  struct Account {
    bool loaded = false;
    bool loading = false;
    std::vector<storage::PushRegistration> regs;
    logic::PushSummary summary;  // what waits since the user's last session
  };
  struct Pending {  // a notification waiting for its answer
    std::string account;
    std::string jid;
    std::string node;
    std::shared_ptr<boost::asio::steady_timer> timer;
  };
  enum class Outcome { kAnswered, kFailed, kDisabled };

  boost::asio::awaitable<void> load(core::Jid user);
  void set_registrations(const std::string& account, std::vector<storage::PushRegistration> regs);
  void notify_all(const std::string& account);
  void send(const std::string& account, const storage::PushRegistration& reg);
  void finished(const std::string& id, Outcome outcome);
  boost::asio::awaitable<void> expire(std::string id,
                                      std::shared_ptr<boost::asio::steady_timer> timer);
  boost::asio::awaitable<void> remove(core::Jid user, std::string jid, std::string node);
  void count(std::string_view outcome) const;

  const Context& ctx_;
  std::unordered_map<std::string, Account> accounts_;  // by bare JID
  std::unordered_map<std::string, Pending> pending_;   // by IQ id
  logic::PushFlights flights_;
  std::size_t registrations_ = 0;  // in accounts_ (the waddle_push_registrations gauge)
  std::uint64_t sent_ = 0;
};

}  // namespace waddle::im
