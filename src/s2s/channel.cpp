// StreamChannel: events read one at a time from an XmlStream; the bounded graceful close.
#include "s2s/channel.h"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <vector>

#include "s2s/time_source.h"
#include "stream/xml_stream.h"

namespace waddle::s2s {
namespace asio = boost::asio;

asio::awaitable<void> close_gracefully(std::shared_ptr<Channel> channel, TimeSource& time) {
  auto timer = time.make_timer();
  using namespace asio::experimental::awaitable_operators;
  co_await (channel->flush() || timer->wait_until(time.now() + std::chrono::seconds(2)));
  channel->close();
}

StreamChannel::StreamChannel(std::shared_ptr<stream::XmlStream> stream)
    : stream_(std::move(stream)) {}

void StreamChannel::send(std::string_view bytes) {
  stream_->send(bytes);
}

asio::awaitable<std::optional<xml::StreamEvent>> StreamChannel::next() {
  while (events_.empty()) {
    std::vector<xml::StreamEvent> events;
    bool eof = false;
    auto err = co_await stream_->read(events, eof);
    for (auto& e : events) events_.push_back(std::move(e));
    if (err) read_error_ = err;
    if (events_.empty() && (eof || err)) co_return std::nullopt;
  }
  auto ev = std::move(events_.front());
  events_.pop_front();
  co_return ev;
}

asio::awaitable<void> StreamChannel::flush() {
  return stream_->flush();
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

void StreamChannel::restart() {
  stream_->reset_parser();
  events_.clear();
}

}  // namespace waddle::s2s
