// XEP-0220 §2.6, "piggybacking": a second local domain authenticates with dialback on the
// stream another local domain already has to the same peer, instead of opening its own. The
// waiting rules: while another local domain is opening a stream to that peer, wait for it
// (up to connect_timeout in all) and share it; but not when the peer's last stream could not
// be shared; and a pair the peer refused is not asked again for ten minutes.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "core/duration.h"
#include "s2s/link.h"

namespace waddle::s2s {

class DialbackKeys;

class Multiplexer {
 public:
  Multiplexer(const LinkTable& links, TimeSource& time, const DialbackKeys& keys,
              core::Duration connect_timeout);

  // A stream that `link`'s local domain is now authenticated on, and the local domain whose
  // link opened it; nullopt when there is none to share, the peer offers no dialback with
  // errors there, or it refused: the link then opens a stream of its own.
  struct Joined {
    std::shared_ptr<OutboundStream> out;
    std::string carrier;
  };
  boost::asio::awaitable<std::optional<Joined>> join(std::shared_ptr<Link> link);

  // A link's own dial to `remote` has ended (set up or failed): links waiting for it resume.
  void dial_ended(const std::string& remote);
  // Whether the stream just opened to `remote` can be shared.
  void remember(const std::string& remote, bool shares) { peer_shares_[remote] = shares; }
  // A db:result read on `out`, a stream to `remote`: the answer to one of our requests.
  void on_answer(OutboundStream& out, const std::string& remote, const xml::Element& result);
  // `out` has ended: requests pending on it fail, and links multiplexed on it resume.
  static void ended(OutboundStream& out);
  // Shutdown: waiting links resume (and give up).
  void stop();

 private:
  std::shared_ptr<Link> find_carrier(const Link& link) const;
  bool other_dialing(const Link& link) const;
  boost::asio::awaitable<std::shared_ptr<Link>> wait_for_carrier(std::shared_ptr<Link> link);
  boost::asio::awaitable<std::optional<std::pair<bool, std::string>>> ask(const Link& link,
                                                                          OutboundStream& out);

  const LinkTable& links_;
  TimeSource& time_;
  const DialbackKeys& keys_;
  core::Duration connect_timeout_;
  bool stopping_ = false;
  // (local, remote) pairs a peer refused to multiplex, until when not to ask again.
  std::map<LinkKey, Clock::time_point> refused_;
  // Links waiting, by remote domain, for another local domain's stream to that peer to be
  // opened (or to fail), so as to multiplex on it rather than open a second one meanwhile.
  std::multimap<std::string, std::shared_ptr<Timer>> dial_waiters_;
  // Whether each peer's last stream allowed multiplexing (dialback with errors): where it did
  // not, a second local domain opens its own stream at once instead of waiting.
  std::map<std::string, bool> peer_shares_;
};

}  // namespace waddle::s2s
