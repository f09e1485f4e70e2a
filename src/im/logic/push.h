// Push notifications (XEP-0357) without I/O: reading the enable and disable commands (§5, §6),
// building the notification a registration is sent (§7, with the urn:xmpp:push:summary form),
// and the bookkeeping of notifications in flight (at most one per registration; the ones due
// meanwhile coalesce into one sent when it is answered).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>

#include "core/errors.h"
#include "storage/storage.h"
#include "xml/element.h"

namespace waddle::im::logic {

// Bounds on what a client may register: longer nodes and larger publish-options are refused.
inline constexpr std::size_t kMaxPushNode = 1024;
inline constexpr std::size_t kMaxPushOptions = 4096;

struct PushEnable {
  storage::PushRegistration reg;
};
struct PushDisable {
  std::string jid;
  std::string node;  // empty: every node of `jid`
};
struct PushCommandError {
  core::StanzaError condition;
  std::string text;
};
using PushCommand = std::variant<PushEnable, PushDisable, PushCommandError>;

// An IQ whose payload is <enable/> or <disable/> in urn:xmpp:push:0.
bool is_push_command(const xml::Element& iq);
// Reads the command of such an IQ of type set. The opt-in to bodies (the form's field
// ns::kPushIncludeBody, true or 1) is taken out of the publish-options, which are kept only
// when fields other than FORM_TYPE remain.
PushCommand parse_push_command(const xml::Element& iq);

// What a notification says: messages waiting since the user's last session, the last one's
// sender (bare JID) and body.
struct PushSummary {
  std::uint64_t count = 0;
  std::string sender;
  std::string body;
};

// <iq type='set' from=`from` to=reg.jid id=`id`><pubsub><publish node=reg.node><item>
// <notification><x type='submit'>summary</x></notification></item></publish>
// [<publish-options>reg.options</publish-options>]</pubsub></iq>; the body only `with_body`.
xml::Element push_notification(const storage::PushRegistration& reg, const std::string& from,
                               const std::string& id, const PushSummary& summary, bool with_body);

// The key of a registration of an account in PushFlights.
std::string push_key(std::string_view account, std::string_view jid, std::string_view node);

// Notifications in flight, by registration key and by IQ id.
class PushFlights {
 public:
  // A notification is due for `key`: true when it may be sent now (then call started());
  // false when one is in flight, and this one waits for its answer.
  bool due(const std::string& key);
  void started(const std::string& key, const std::string& id);
  struct Finished {
    std::string key;
    bool again = false;  // notifications became due meanwhile: send one more
  };
  // The notification `id` was answered (or timed out); nullopt when unknown.
  std::optional<Finished> finish(const std::string& id);
  // The key `id` is in flight for, if it is.
  const std::string* key_of(const std::string& id) const;
  std::size_t size() const { return by_id_.size(); }

 private:
  struct Flight {
    std::string id;
    bool again = false;
  };
  std::map<std::string, Flight> by_key_;
  std::unordered_map<std::string, std::string> by_id_;  // id -> key
};

}  // namespace waddle::im::logic
