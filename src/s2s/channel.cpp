// StreamChannel: a server stream's events one at a time, and its bounded graceful close.
#include "s2s/channel.h"

#include "stream/receiving.h"
#include "stream/xml_stream.h"

namespace waddle::s2s {
namespace asio = boost::asio;

StreamChannel::StreamChannel(std::shared_ptr<stream::XmlStream> stream)
    : stream_(stream), reader_(stream) {}

void StreamChannel::send(std::string_view bytes) {
  stream_->send(bytes);
}

asio::awaitable<std::optional<xml::StreamEvent>> StreamChannel::next() {
  return reader_.next();
}

asio::awaitable<void> StreamChannel::close_gracefully() {
  return stream::close_stream(stream_);
}

void StreamChannel::close() {
  stream_->close();
}

bool StreamChannel::closed() const {
  return stream_->closed();
}

std::string StreamChannel::tls_description() const {
  return stream_->tls_description();
}

std::string StreamChannel::end_reason() const {
  return stream_->end_reason();
}

std::uint64_t StreamChannel::bytes_sent() const {
  return stream_->bytes_queued();
}

std::uint64_t StreamChannel::bytes_written() const {
  return stream_->bytes_out();
}

std::string_view StreamChannel::write_limit() const {
  const auto w = stream_->write_limit();
  return w == stream::WriteLimit::kNone ? std::string_view() : stream::to_string(w);
}

void StreamChannel::restart() {
  stream_->reset_parser();
  reader_.clear();
}

}  // namespace waddle::s2s
