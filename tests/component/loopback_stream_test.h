// A fixture for stream tests over real TCP on 127.0.0.1 with real TLS: a self-signed
// certificate made for the test, trusted by the client context; connected pairs of streams
// with small socket buffers; a bounded run of the event loop.
#pragma once

#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>

#include "net/tls.h"
#include "stream/xml_stream.h"

namespace waddle::stream::test_support {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

class LoopbackStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("waddle-loopback-stream-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    const auto cert = (dir_ / "cert.pem").string(), key = (dir_ / "key.pem").string();
    net::ensure_self_signed(cert, key, {"stream.test"});
    server_ctx_.use_certificate_chain_file(cert);
    server_ctx_.use_private_key_file(key, ssl::context::pem);
    SSL_CTX_set_min_proto_version(server_ctx_.native_handle(), TLS1_3_VERSION);
    SSL_CTX_set_mode(server_ctx_.native_handle(), SSL_MODE_RELEASE_BUFFERS);
    client_ctx_.load_verify_file(cert);
    SSL_CTX_set_verify(client_ctx_.native_handle(), SSL_VERIFY_PEER, nullptr);
    acceptor_.open(tcp::v4());
    acceptor_.bind({asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A connected pair: (server side, client side). Small socket buffers (64 KiB) make sure
  // a few MiB cannot fit in them, so a writer must wait for room.
  std::pair<std::shared_ptr<XmlStream>, std::shared_ptr<XmlStream>> connect_pair() {
    tcp::socket client(io_);
    client.open(tcp::v4());
    client.set_option(asio::socket_base::send_buffer_size(64 * 1024));
    client.set_option(asio::socket_base::receive_buffer_size(64 * 1024));
    client.connect(acceptor_.local_endpoint());
    tcp::socket server = acceptor_.accept();
    server.set_option(asio::socket_base::send_buffer_size(64 * 1024));
    server.set_option(asio::socket_base::receive_buffer_size(64 * 1024));
    auto s = std::make_shared<XmlStream>(std::move(server), server_ctx_, limits());
    auto c = std::make_shared<XmlStream>(std::move(client), client_ctx_, limits());
    return {s, c};
  }

  static xml::ParserLimits limits() {
    xml::ParserLimits l;
    l.max_stanza_size = 64 * 1024;
    return l;
  }

  // Runs the loop until `done` or the deadline; true when done.
  bool run_until(const bool& done, std::chrono::seconds limit = 30s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done && std::chrono::steady_clock::now() < deadline) {
      io_.run_for(50ms);
      if (io_.stopped()) io_.restart();
    }
    return done;
  }

  std::filesystem::path dir_;
  asio::io_context io_;
  ssl::context server_ctx_{ssl::context::tls_server};
  ssl::context client_ctx_{ssl::context::tls_client};
  tcp::acceptor acceptor_{io_};
};

}  // namespace waddle::stream::test_support
