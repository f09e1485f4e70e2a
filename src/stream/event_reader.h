// Hands out the events of an XmlStream one at a time: the stream header, each top-level
// element, the stream's end. Used by the negotiation and read loops of client and server
// streams.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <deque>
#include <memory>
#include <optional>

#include "core/errors.h"
#include "stream/xml_stream.h"
#include "xml/parser.h"

namespace waddle::stream {

class EventReader {
 public:
  explicit EventReader(std::shared_ptr<XmlStream> stream) : stream_(std::move(stream)) {}

  // The next event, or nullopt once the stream has ended: the peer closed, the socket
  // failed, or the parser refused the input (then error() says with which stream error).
  // Events read before the end are all handed out first; the end is final.
  boost::asio::awaitable<std::optional<xml::StreamEvent>> next();
  const std::optional<core::StreamError>& error() const { return error_; }

  // Drops events already read: after a stream restart (STARTTLS, SASL) they belonged to the
  // stream that ended.
  void clear() { queue_.clear(); }

 private:
  std::shared_ptr<XmlStream> stream_;
  std::deque<xml::StreamEvent> queue_;
  std::optional<core::StreamError> error_;
  bool ended_ = false;
};

}  // namespace waddle::stream
