// The steps a receiving entity takes on any stream, client or server: STARTTLS (RFC 6120
// §5.4.2.3, §5.4.3.3), the handshake deadline, and the graceful close whose flush is bounded
// so that a peer that stops reading cannot hold a connection open.
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <memory>

#include "stream/event_reader.h"
#include "stream/xml_stream.h"

namespace waddle::stream {

// How long a closing stream may take to write what is queued before the socket is closed.
inline constexpr std::chrono::milliseconds kCloseFlushLimit{2000};

// Answers <starttls/>: <proceed/>, written out before the handshake, then TLS with `context`
// (the certificate of the domain the header named; null keeps the stream's own). On success
// the stream restarts: a new parser, and what was read ahead is dropped. On failure the
// socket is closed and false returned (tls_error() says why).
boost::asio::awaitable<bool> accept_starttls(XmlStream& stream, EventReader& reader,
                                             SSL_CTX* context);

// Writes what is queued (the closing tag, say) for at most `limit`, then closes the socket.
boost::asio::awaitable<void> close_stream(std::shared_ptr<XmlStream> stream,
                                          std::chrono::milliseconds limit = kCloseFlushLimit);

// A stream must finish negotiating within `limit`: `on_expiry` runs then, unless `timer` was
// cancelled first (it decides whether the stream still has to go).
template <class OnExpiry>
void arm_handshake_deadline(boost::asio::steady_timer& timer,
                            std::chrono::steady_clock::duration limit, OnExpiry on_expiry) {
  timer.expires_after(limit);
  timer.async_wait([on_expiry = std::move(on_expiry)](boost::system::error_code ec) mutable {
    if (!ec) on_expiry();
  });
}

}  // namespace waddle::stream
