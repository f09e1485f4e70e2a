// S2sService::stop(all_closed): the caller learns when every S2S stream has ended, without
// polling. A real listener on 127.0.0.1 and a raw TCP peer that opens a stream.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <chrono>
#include <filesystem>
#include <string>

#include "net/tls.h"
#include "router/router.h"
#include "s2s/s2s.h"

namespace waddle::s2s {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

class S2sServiceStopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("waddle-s2s-stop-test-" + std::to_string(::getpid()));
    config_.server.domains = {"a.test"};
    config_.server.listen = {"127.0.0.1"};
    config_.server.data_dir = dir_.string();
    config_.muc.enabled = false;
    config_.s2s.dialback_secret = "secret";
    config_.s2s.port = free_port();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static std::uint16_t free_port() {
    asio::io_context io;
    tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
    return a.local_endpoint().port();
  }

  // Runs the loop until `done` holds (bounded).
  template <class Pred>
  bool run_until(Pred done, std::chrono::milliseconds limit = 3000ms) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io_.restart();
      io_.run_for(5ms);
    }
    return done();
  }

  std::filesystem::path dir_;
  core::Config config_;
  asio::io_context io_;
};

TEST_F(S2sServiceStopTest, NothingOpen_AllClosedIsPostedNotCalledInline) {
  router::Router router(config_.server.domains);
  net::TlsContexts tls(config_);
  S2sService s2s(config_, router, tls, io_);
  s2s.start();
  int calls = 0;
  s2s.stop([&] { ++calls; });
  EXPECT_EQ(calls, 0);
  EXPECT_TRUE(run_until([&] { return calls > 0; }));
  EXPECT_EQ(calls, 1);
}

TEST_F(S2sServiceStopTest, OpenInboundStream_AllClosedOnceItHasEnded) {
  router::Router router(config_.server.domains);
  net::TlsContexts tls(config_);
  S2sService s2s(config_, router, tls, io_);
  s2s.start();
  tcp::socket peer(io_);
  peer.connect({asio::ip::make_address("127.0.0.1"), config_.s2s.port});
  const std::string header =
      "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
      "xmlns:stream='http://etherx.jabber.org/streams' from='b.test' to='a.test' version='1.0'>";
  asio::write(peer, asio::buffer(header));
  ASSERT_TRUE(run_until([&] { return s2s.live_streams() == 1; }));
  int calls = 0;
  std::size_t live_then = 99;
  s2s.stop([&] {
    ++calls;
    live_then = s2s.live_streams();
  });
  EXPECT_EQ(calls, 0);
  ASSERT_TRUE(run_until([&] { return calls > 0; }));
  EXPECT_EQ(live_then, 0u);
  // The peer sees the connection end (reads bounded by a receive timeout).
  peer.non_blocking(false);
  timeval timeout{2, 0};
  ::setsockopt(peer.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  std::string got(4096, '\0');
  boost::system::error_code ec;
  for (int i = 0; i < 100 && !ec; ++i) peer.read_some(asio::buffer(got), ec);
  EXPECT_TRUE(ec) << "the stream stayed open";
  run_until([] { return false; }, 20ms);
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace waddle::s2s
