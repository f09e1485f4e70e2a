// Tests for the /metrics and /health HTTP endpoint, spoken to over a plain TCP socket on
// 127.0.0.1 with an ephemeral port; every wait is bounded.
#include "metrics/http_server.h"

#include <gtest/gtest.h>

#include <array>
#include <boost/asio.hpp>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>

namespace waddle::metrics {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

constexpr const char* kExposition =
    "# HELP waddle_test_total Test.\n# TYPE waddle_test_total counter\nwaddle_test_total 1\n";

struct Exchange {
  std::string received;
  bool connected = false;
  bool done = false;
};

// Connects, sends `request` (may hold several pipelined requests), optionally half-closes, then
// reads until the server closes the connection.
asio::awaitable<void> raw_client(std::uint16_t port, std::string request, bool half_close,
                                 Exchange* x) {
  tcp::socket socket(co_await asio::this_coro::executor);
  auto [ec] = co_await socket.async_connect({asio::ip::make_address("127.0.0.1"), port},
                                            asio::as_tuple(asio::use_awaitable));
  if (!ec) {
    x->connected = true;
    if (!request.empty())
      co_await asio::async_write(socket, asio::buffer(request),
                                 asio::as_tuple(asio::use_awaitable));
    boost::system::error_code ignored;
    if (half_close) socket.shutdown(tcp::socket::shutdown_send, ignored);
    std::array<char, 4096> buf;
    for (;;) {
      auto [rec, n] =
          co_await socket.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
      if (rec) break;
      x->received.append(buf.data(), n);
    }
  }
  x->done = true;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<HttpServer>(
        io_, "127.0.0.1", 0,
        [this] {
          ++renders_;
          return std::string(kExposition);
        },
        [this] { return healthy_; });
    server_->start();
    ASSERT_NE(server_->port(), 0);
  }

  void TearDown() override {
    server_.reset();
    io_.restart();
    io_.run_for(200ms);  // let the coroutines see the closed sockets and end
  }

  // Runs the io_context until `done` is set or `limit` has passed; returns `done`.
  bool run_until(const bool& done, std::chrono::milliseconds limit = 5000ms) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done && std::chrono::steady_clock::now() < deadline) {
      if (io_.stopped()) io_.restart();
      io_.run_one_for(20ms);
    }
    return done;
  }

  std::string exchange(std::string request, bool half_close = false) {
    Exchange x;
    asio::co_spawn(io_, raw_client(server_->port(), std::move(request), half_close, &x),
                   asio::detached);
    EXPECT_TRUE(run_until(x.done)) << "no answer within the deadline";
    return x.received;
  }

  asio::io_context io_;
  bool healthy_ = true;
  int renders_ = 0;
  std::unique_ptr<HttpServer> server_;
};

std::string body_of(const std::string& response) {
  auto pos = response.find("\r\n\r\n");
  return pos == std::string::npos ? std::string() : response.substr(pos + 4);
}

TEST_F(HttpServerTest, Metrics_ServesExpositionWithPrometheusContentType) {
  std::string r = exchange("GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 200 OK\r\n")) << r;
  EXPECT_NE(r.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << r;
  EXPECT_NE(r.find("Content-Length: " + std::to_string(std::string(kExposition).size())),
            std::string::npos)
      << r;
  EXPECT_EQ(body_of(r), kExposition);
  EXPECT_EQ(renders_, 1);
}

TEST_F(HttpServerTest, Metrics_QueryStringIgnored) {
  std::string r = exchange("GET /metrics?x=1 HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 200 OK\r\n")) << r;
}

TEST_F(HttpServerTest, Health_OkWhenHealthy) {
  std::string r = exchange("GET /health HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 200 OK\r\n")) << r;
  EXPECT_EQ(body_of(r), "ok");
}

TEST_F(HttpServerTest, Health_503WhenUnhealthy) {
  healthy_ = false;
  std::string r = exchange("GET /health HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 503 Service Unavailable\r\n")) << r;
}

TEST_F(HttpServerTest, UnknownPath_404) {
  std::string r = exchange("GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 404 Not Found\r\n")) << r;
  EXPECT_EQ(renders_, 0);
}

TEST_F(HttpServerTest, NonGet_405WithAllow) {
  std::string r =
      exchange("POST /metrics HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n")) << r;
  EXPECT_NE(r.find("Allow: GET\r\n"), std::string::npos) << r;
  EXPECT_EQ(renders_, 0);
}

TEST_F(HttpServerTest, KeepAlive_SeveralRequestsOnOneConnection) {
  std::string r = exchange(
      "GET /health HTTP/1.1\r\n\r\n"
      "GET /metrics HTTP/1.1\r\n\r\n"
      "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n");
  std::size_t answers = 0;
  for (auto pos = r.find("HTTP/1.1 200 OK"); pos != std::string::npos;
       pos = r.find("HTTP/1.1 200 OK", pos + 1))
    ++answers;
  EXPECT_EQ(answers, 3u) << r;
  EXPECT_EQ(renders_, 1);
}

TEST_F(HttpServerTest, OversizedHeader_RefusedAndClosed) {
  std::string r =
      exchange("GET /metrics HTTP/1.1\r\nX-Filler: " + std::string(20000, 'a') + "\r\n\r\n", true);
  EXPECT_TRUE(r.starts_with("HTTP/1.1 431 ")) << r.substr(0, 200);
  EXPECT_EQ(renders_, 0);
}

TEST_F(HttpServerTest, OversizedBody_RefusedAndClosed) {
  std::string r = exchange(
      "POST /metrics HTTP/1.1\r\nContent-Length: 100000\r\n\r\n" + std::string(100000, 'a'), true);
  EXPECT_TRUE(r.starts_with("HTTP/1.1 413 ")) << r.substr(0, 200);
}

TEST_F(HttpServerTest, Garbage_400) {
  std::string r = exchange("\x01\x02 not http\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 400 ")) << r.substr(0, 200);
}

TEST_F(HttpServerTest, SilentClient_ClosedAfterReadTimeout) {
  server_->set_read_timeout(200ms);
  auto start = std::chrono::steady_clock::now();
  std::string r = exchange("");  // connects and never sends a request
  EXPECT_EQ(r, "");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

TEST_F(HttpServerTest, SlowRequest_ClosedAfterReadTimeout) {
  server_->set_read_timeout(200ms);
  std::string r = exchange("GET /metrics HTTP/1.1\r\n");  // headers never finish
  EXPECT_EQ(r, "");
  EXPECT_EQ(renders_, 0);
}

TEST_F(HttpServerTest, Stop_ClosesIdleConnectionsAndCallsNothingMore) {
  Exchange x;
  asio::co_spawn(io_, raw_client(server_->port(), "GET /health HTTP/1.1\r\n\r\n", false, &x),
                 asio::detached);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (x.received.find("ok") == std::string::npos && std::chrono::steady_clock::now() < deadline)
    io_.run_one_for(20ms);
  ASSERT_NE(x.received.find("ok"), std::string::npos);
  server_->stop();
  EXPECT_TRUE(run_until(x.done, 2000ms)) << "stop() left a keep-alive connection open";
}

TEST_F(HttpServerTest, BindFailure_ThrowsWithAddressAndPort) {
  HttpServer second(
      io_, "127.0.0.1", server_->port(), [] { return std::string(); }, [] { return true; });
  try {
    second.start();
    FAIL() << "second bind on the same port succeeded";
  } catch (const std::runtime_error& e) {
    std::string expected =
        "cannot listen on 127.0.0.1 port " + std::to_string(server_->port()) + ": ";
    EXPECT_TRUE(std::string(e.what()).starts_with(expected)) << e.what();
  }
}

TEST_F(HttpServerTest, BadAddress_Throws) {
  HttpServer bad(
      io_, "not-an-address", 0, [] { return std::string(); }, [] { return true; });
  EXPECT_THROW(bad.start(), std::runtime_error);
}

}  // namespace
}  // namespace waddle::metrics
