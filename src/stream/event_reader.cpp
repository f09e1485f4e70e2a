// One event at a time from an XmlStream.
#include "stream/event_reader.h"

#include <vector>

namespace waddle::stream {

boost::asio::awaitable<std::optional<xml::StreamEvent>> EventReader::next() {
  std::vector<xml::StreamEvent> events;
  while (queue_.empty() && !ended_) {
    bool eof = false;
    auto err = co_await stream_->read(events, eof);
    for (auto& e : events) queue_.push_back(std::move(e));
    events.clear();
    if (err) error_ = err;
    // A parser error ends the stream: reading on would wait for bytes nobody will parse.
    ended_ = eof || err.has_value();
  }
  if (queue_.empty()) co_return std::nullopt;
  auto ev = std::move(queue_.front());
  queue_.pop_front();
  co_return ev;
}

}  // namespace waddle::stream
