// Listening sockets for the server's ports: every configured address, or the dual-stack
// wildcard (falling back to IPv4 on hosts without IPv6); coroutine helpers that log failures.
#pragma once

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace waddle::net {

// One bound, listening acceptor per address in `addresses` (all addresses when empty).
// Throws std::runtime_error("cannot listen on ADDRESS port PORT: reason").
std::vector<std::unique_ptr<boost::asio::ip::tcp::acceptor>> listen_all(
    boost::asio::io_context& io, const std::vector<std::string>& addresses, std::uint16_t port);

// The address a connection counts under for the per-address limits (core/connection_gate.h):
// an IPv4 address (IPv4-mapped IPv6 included) as itself, an IPv6 address by its /64 prefix,
// since one host is commonly given a whole /64. Empty if the peer is already gone.
std::string address_key(const boost::asio::ip::tcp::socket& socket);

// Refuses an accepted connection: writes `bytes` (a stream header with its error) only if the
// socket takes them at once, never waiting for the peer, then closes it.
void refuse_connection(boost::asio::ip::tcp::socket& socket, std::string_view bytes);

// co_spawn whose failures are logged (never swallowed) with `what` naming the task.
template <class Executor, class Awaitable>
void spawn_logged(Executor ex, Awaitable task, const char* what) {
  boost::asio::co_spawn(ex, std::move(task), [what](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      spdlog::error("{} failed: {}", what, ex.what());
    }
  });
}

}  // namespace waddle::net
