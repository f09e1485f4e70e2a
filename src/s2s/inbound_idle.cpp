// Silent inbound server streams (docs/security.md "Correctness"): a stream from which nothing,
// not even whitespace, has been read for [s2s] idle_timeout is closed with connection-timeout
// (RFC 6120 §4.9.3.4), so that a peer that authenticated and went silent keeps nothing here.
#include <boost/asio.hpp>

#include "s2s/inbound_stream.h"
#include "s2s/time_source.h"
#include "stream/receiving.h"
#include "stream/xml_stream.h"

namespace waddle::s2s {
namespace asio = boost::asio;

asio::awaitable<void> InboundStream::watch_idle(std::shared_ptr<Timer> timer) {
  auto self = shared_from_this();
  const auto limit = ctx_.config.s2s.idle_timeout;
  std::uint64_t seen = stream_->bytes_in();
  auto since = ctx_.time.now();
  while (!closing()) {
    if (!co_await timer->wait_until(since + limit) || closing()) co_return;
    if (stream_->bytes_in() != seen) {  // something arrived meanwhile: idle from now on
      seen = stream_->bytes_in();
      since = ctx_.time.now();
      continue;
    }
    close_with(core::StreamError::kConnectionTimeout, "Nothing received for a while",
               metrics::CloseReason::kIdle);
    // run() may be parked in a read: the error is written, then the socket closes (bounded).
    co_await stream::close_stream(stream_);
    co_return;
  }
}

}  // namespace waddle::s2s
