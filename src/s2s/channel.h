// A negotiated server stream as the pool and the authenticators use it: send bytes, read the
// next event, flush, close. StreamChannel is the real one, over stream::XmlStream; tests of
// the pool substitute their own.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/errors.h"
#include "xml/parser.h"

namespace waddle::stream {
class XmlStream;
}

namespace waddle::s2s {

class TimeSource;

class Channel {
 public:
  virtual ~Channel() = default;
  virtual void send(std::string_view bytes) = 0;
  // The next stream event; nullopt once the stream has ended (end of file, a socket or TLS
  // error, a close here, or input the parser refused: read_error() then says which error).
  virtual boost::asio::awaitable<std::optional<xml::StreamEvent>> next() = 0;
  virtual std::optional<core::StreamError> read_error() const = 0;
  // Completes when everything sent so far has been written (or the stream failed).
  virtual boost::asio::awaitable<void> flush() = 0;
  // Closes at once; pending reads end.
  virtual void close() = 0;
  virtual bool closed() const = 0;
  virtual std::string tls_description() const = 0;  // "TLSv1.3 TLS_AES_256_GCM_SHA384"
  // Why reading ended when it was not an ordinary close ("socket error: ..."), else empty.
  virtual std::string end_reason() const = 0;
};

// Flushes what was sent (at most two seconds) and closes.
boost::asio::awaitable<void> close_gracefully(std::shared_ptr<Channel> channel, TimeSource& time);

class StreamChannel final : public Channel {
 public:
  explicit StreamChannel(std::shared_ptr<stream::XmlStream> stream);

  void send(std::string_view bytes) override;
  boost::asio::awaitable<std::optional<xml::StreamEvent>> next() override;
  std::optional<core::StreamError> read_error() const override { return read_error_; }
  boost::asio::awaitable<void> flush() override;
  void close() override;
  bool closed() const override;
  std::string tls_description() const override;
  std::string end_reason() const override;

  stream::XmlStream& stream() { return *stream_; }
  const std::shared_ptr<stream::XmlStream>& stream_ptr() const { return stream_; }
  // After STARTTLS or SASL success the peer opens a new stream: parse from scratch and
  // forget events read before.
  void restart();

 private:
  std::shared_ptr<stream::XmlStream> stream_;
  std::deque<xml::StreamEvent> events_;
  std::optional<core::StreamError> read_error_;
};

}  // namespace waddle::s2s
