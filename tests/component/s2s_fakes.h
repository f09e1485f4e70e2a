// Stand-ins for the pool's environment, on an in-process io_context: a clock the test
// advances by hand, a channel whose peer the test plays, and a connector whose attempts the
// test completes (or lets hang until they are aborted).
#pragma once

#include <boost/asio.hpp>
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "s2s/channel.h"
#include "s2s/connector.h"
#include "s2s/time_source.h"
#include "xml/parser.h"

namespace waddle::s2s::testing {

namespace asio = boost::asio;

class ManualTimeSource;

// Waits on a steady_timer that never expires by itself: advance() or cancel() ends it.
class ManualTimer final : public Timer {
 public:
  ManualTimer(ManualTimeSource& source, asio::any_io_executor ex);
  ~ManualTimer() override;
  asio::awaitable<bool> wait_until(Clock::time_point when) override;
  void cancel() override;
  // Called by the source when its time has come.
  void fire();
  Clock::time_point when() const { return when_; }
  bool armed() const { return armed_; }

 private:
  ManualTimeSource& source_;
  asio::steady_timer signal_;
  Clock::time_point when_{};
  bool armed_ = false;
  bool fired_ = false;
};

class ManualTimeSource final : public TimeSource {
 public:
  explicit ManualTimeSource(asio::io_context& io) : io_(io) {}
  Clock::time_point now() const override { return now_; }
  std::unique_ptr<Timer> make_timer() override {
    return std::make_unique<ManualTimer>(*this, io_.get_executor());
  }
  // Moves the clock forward; timers whose time has come complete (in the next poll).
  void advance(Clock::duration d) {
    now_ += d;
    for (ManualTimer* t : std::set<ManualTimer*>(timers_))
      if (timers_.contains(t) && t->armed() && t->when() <= now_) t->fire();
  }
  void add(ManualTimer* t) { timers_.insert(t); }
  void remove(ManualTimer* t) { timers_.erase(t); }

 private:
  asio::io_context& io_;
  Clock::time_point now_ = Clock::time_point{} + std::chrono::hours(1000);
  std::set<ManualTimer*> timers_;
};

inline ManualTimer::ManualTimer(ManualTimeSource& source, asio::any_io_executor ex)
    : source_(source), signal_(ex, asio::steady_timer::time_point::max()) {
  source_.add(this);
}

inline ManualTimer::~ManualTimer() {
  source_.remove(this);
}

inline asio::awaitable<bool> ManualTimer::wait_until(Clock::time_point when) {
  if (when <= source_.now()) co_return true;
  when_ = when;
  armed_ = true;
  fired_ = false;
  co_await signal_.async_wait(asio::as_tuple(asio::use_awaitable));
  armed_ = false;
  co_return fired_;
}

inline void ManualTimer::cancel() {
  if (!armed_) return;
  armed_ = false;
  fired_ = false;
  signal_.cancel();
}

inline void ManualTimer::fire() {
  armed_ = false;
  fired_ = true;
  signal_.cancel();
}

// The test plays the peer: push() what it sends, read `sent` for what we wrote.
class FakeChannel final : public Channel {
 public:
  explicit FakeChannel(asio::io_context& io) : signal_(io, asio::steady_timer::time_point::max()) {}

  void send(std::string_view bytes) override {
    bytes_sent_ += bytes.size();  // counted even once closed, as stream::XmlStream does
    if (closed_) return;
    sent.emplace_back(bytes);
  }
  std::uint64_t bytes_sent() const override { return bytes_sent_; }
  std::uint64_t bytes_written() const override { return written_upto.value_or(bytes_sent_); }
  // Set: only this many of the bytes sent have been written (a backlog the peer is slow to
  // read); unset: everything sent is written at once.
  std::optional<std::uint64_t> written_upto;
  asio::awaitable<std::optional<xml::StreamEvent>> next() override {
    while (events_.empty() && !closed_ && !ended_)
      co_await signal_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (closed_ || events_.empty()) co_return std::nullopt;
    auto ev = std::move(events_.front());
    events_.pop_front();
    co_return ev;
  }
  std::optional<core::StreamError> read_error() const override { return std::nullopt; }
  asio::awaitable<void> close_gracefully() override {
    close();
    co_return;
  }
  void close() override {
    if (!closed_ && !written_upto) written_upto = bytes_sent_;  // nothing more is written
    closed_ = true;
    signal_.cancel();
  }
  std::string_view write_limit() const override { return limit; }
  // A write bound tripped ("queue_full", "stalled"): the stream closes itself, as
  // stream::XmlStream does.
  void trip(std::string why) {
    limit = std::move(why);
    close();
  }
  std::string limit;
  bool closed() const override { return closed_; }
  std::string tls_description() const override { return "TLSv1.3 (test)"; }
  std::string end_reason() const override { return {}; }

  // The peer sends top-level elements or its closing tag (parsed from `xml`, with db: and
  // stream: declared).
  void push(const std::string& xml) {
    std::string header =
        "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
        "xmlns:db='jabber:server:dialback'>";
    xml::StreamParser parser;
    std::vector<xml::StreamEvent> events;
    parser.feed(header + xml, events);
    for (auto& e : events)  // (our own stream header is not the peer's event)
      if (e.kind != xml::StreamEvent::Kind::kStreamOpen) events_.push_back(std::move(e));
    signal_.cancel();
  }
  // The peer ends the stream (end of file).
  void peer_ends() {
    ended_ = true;
    signal_.cancel();
  }
  // Whether anything we sent contains `text`.
  bool sent_contains(std::string_view text) const {
    for (const auto& s : sent)
      if (s.find(text) != std::string::npos) return true;
    return false;
  }

  std::vector<std::string> sent;

 private:
  asio::steady_timer signal_;
  std::deque<xml::StreamEvent> events_;
  bool closed_ = false;
  std::uint64_t bytes_sent_ = 0;
  bool ended_ = false;
};

// Each connect() is one Call the test completes with succeed() or fail(); an aborted call
// ends as the real connector's would in TCP connect ("Operation canceled", timeout).
class FakeConnector final : public Connector {
 public:
  struct Call {
    ConnectRequest request;
    std::optional<Connected> result;
    bool aborted = false;
    bool finished = false;
    asio::steady_timer done;
    Call(ConnectRequest r, asio::io_context& io)
        : request(std::move(r)), done(io, asio::steady_timer::time_point::max()) {}
  };

  explicit FakeConnector(asio::io_context& io) : io_(io) {}

  asio::awaitable<Connected> connect(ConnectRequest request,
                                     asio::cancellation_slot abort) override {
    auto call = std::make_shared<Call>(std::move(request), io_);
    calls.push_back(call);
    if (abort.is_connected())
      abort.assign([call](asio::cancellation_type) {
        call->aborted = true;
        call->done.cancel();
      });
    while (!call->result && !call->aborted)
      co_await call->done.async_wait(asio::as_tuple(asio::use_awaitable));
    if (abort.is_connected()) abort.clear();
    call->finished = true;
    if (call->result) co_return *call->result;
    Connected c;
    c.outcome = Outcome::fail(Failure::kTimeout, "cannot connect to " + call->request.remote +
                                                     " (127.0.0.1 port 5269): Operation canceled");
    co_return c;
  }

  // Completes call `i` with an authenticated stream on a new FakeChannel.
  // With `sm`, the peer offers stream management (XEP-0198) on it.
  std::shared_ptr<FakeChannel> succeed(std::size_t i, bool multiplexable = true,
                                       std::string stream_id = "stream-1", bool sm = false) {
    auto channel = std::make_shared<FakeChannel>(io_);
    Connected c;
    c.channel = channel;
    c.method = "dialback";
    c.cert_valid = true;
    c.stream_id = std::move(stream_id);
    c.multiplexable = multiplexable;
    c.sm = sm;
    complete(i, std::move(c));
    return channel;
  }
  void fail(std::size_t i, Failure f, std::string text, bool definitive = false) {
    Connected c;
    c.outcome = Outcome::fail(f, std::move(text));
    c.outcome.definitive = definitive;
    complete(i, std::move(c));
  }
  std::size_t pending() const {
    std::size_t n = 0;
    for (const auto& c : calls) n += c->finished ? 0 : 1;
    return n;
  }

  std::vector<std::shared_ptr<Call>> calls;

 private:
  void complete(std::size_t i, Connected c) {
    calls.at(i)->result = std::move(c);
    calls.at(i)->done.cancel();
  }
  asio::io_context& io_;
};

}  // namespace waddle::s2s::testing
