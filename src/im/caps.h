// Entity capabilities (XEP-0115) of the resources the server sees presence from: local
// clients' own broadcasts, and contacts' presence (local or from other servers) to local
// users. A resource's <c hash='sha-1'/> is remembered by its 'ver'; a 'ver' not seen before is
// asked once, with disco#info to that resource (node#ver), and its features are kept when the
// answer's verification string equals the 'ver' (XEP-0115 §5.4), for every resource that sends
// it later. At most [c2s] caps_cache_size hashes are kept (the oldest goes first), and the
// resources of ten times as many JIDs. What PEP notifications go to is read here (+notify).
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/jid.h"
#include "im/context.h"
#include "xml/element.h"

namespace waddle::im {

class Caps {
 public:
  using Features = std::set<std::string, std::less<>>;

  explicit Caps(const Context& ctx) : ctx_(ctx) {}

  // Available presence from `from` (a full JID): its <c/> is remembered, and asked about
  // when its 'ver' is new, by `asker` (the local user it was sent to, as PEP services ask,
  // or the user's own domain for the user's own resources). Presence without <c/> forgets
  // what `from` had.
  void presence(const core::Jid& from, const xml::Element& presence, std::string_view asker);
  // Unavailable presence, or a local session that ended.
  void forget(const core::Jid& full);
  // The features of `full` as its caps tell, or null (none sent, not answered yet, refused).
  std::shared_ptr<const Features> features(const core::Jid& full) const;
  // A result or error IQ to a local domain: true when it answers one of our questions.
  bool take_answer(const xml::Element& iq);

  // Called with a full JID whose features became known: its first presence, or a changed
  // 'ver', with features cached already, or the answer about its 'ver' (PEP sends the last
  // items such a resource asks for, XEP-0163 §4.3.2).
  std::function<void(const core::Jid& full)> on_features;

  // The <c/> of the server itself (stream features), for the disco#info answer `info` of its
  // domain, which it also gives for the node "urn:waddle:server#VER".
  static xml::Element server_caps(const xml::Element& info);
  static constexpr std::string_view kServerNode = "urn:waddle:server";

 private:
  struct Question {
    std::string key;  // the hash's key in hashes_
    std::string to;   // the resource asked: only its answer counts
    std::chrono::steady_clock::time_point asked;
  };
  void ask(const std::string& key, const core::Jid& to, std::string_view asker,
           std::string_view node);
  void count(std::string_view result);

  const Context& ctx_;
  std::unordered_map<std::string, std::shared_ptr<const Features>> hashes_;  // ver -> features
  std::deque<std::string> order_;                                            // oldest first
  std::unordered_map<std::string, std::string> jids_;                        // full JID -> ver
  std::unordered_map<std::string, Question> questions_;                      // IQ id -> question
  std::uint64_t next_id_ = 0;
};

}  // namespace waddle::im
