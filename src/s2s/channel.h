// A negotiated server stream as the pool and the authenticators use it: send bytes, read the
// next event, close. StreamChannel is the real one, over stream::XmlStream; tests of the pool
// substitute their own.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/errors.h"
#include "stream/event_reader.h"
#include "xml/parser.h"

namespace waddle::stream {
class XmlStream;
}

namespace waddle::s2s {

class Channel {
 public:
  virtual ~Channel() = default;
  virtual void send(std::string_view bytes) = 0;
  // The next stream event; nullopt once the stream has ended (end of file, a socket or TLS
  // error, a close here, or input the parser refused: read_error() then says which error).
  virtual boost::asio::awaitable<std::optional<xml::StreamEvent>> next() = 0;
  virtual std::optional<core::StreamError> read_error() const = 0;
  // Writes what was sent (for a bounded time) and closes.
  virtual boost::asio::awaitable<void> close_gracefully() = 0;
  // Closes at once; pending reads end.
  virtual void close() = 0;
  virtual bool closed() const = 0;
  virtual std::string tls_description() const = 0;  // "TLSv1.3 TLS_AES_256_GCM_SHA384"
  // Why reading ended when it was not an ordinary close ("socket error: ..."), else empty.
  virtual std::string end_reason() const = 0;
  // Bytes handed to send() so far, and how many of them have been written to the socket: a
  // ping is only waited for once what was sent before it has left.
  virtual std::uint64_t bytes_sent() const { return 0; }
  virtual std::uint64_t bytes_written() const { return 0; }
  // The write bound that closed the stream ("queue_full", "stalled"), or empty.
  virtual std::string_view write_limit() const { return {}; }
};

class StreamChannel final : public Channel {
 public:
  explicit StreamChannel(std::shared_ptr<stream::XmlStream> stream);

  void send(std::string_view bytes) override;
  boost::asio::awaitable<std::optional<xml::StreamEvent>> next() override;
  std::optional<core::StreamError> read_error() const override { return reader_.error(); }
  boost::asio::awaitable<void> close_gracefully() override;
  void close() override;
  bool closed() const override;
  std::string tls_description() const override;
  std::string end_reason() const override;
  std::uint64_t bytes_sent() const override;
  std::uint64_t bytes_written() const override;
  std::string_view write_limit() const override;

  stream::XmlStream& stream() { return *stream_; }
  stream::EventReader& reader() { return reader_; }
  // After STARTTLS or SASL success the peer opens a new stream: parse from scratch and
  // forget events read before.
  void restart();

 private:
  std::shared_ptr<stream::XmlStream> stream_;
  stream::EventReader reader_;
};

}  // namespace waddle::s2s
