// Listening sockets (see listen.h).
#include "net/listen.h"

#include <algorithm>
#include <boost/asio.hpp>
#include <stdexcept>

namespace waddle::net {
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

std::unique_ptr<tcp::acceptor> listen_on(asio::io_context& io, tcp::endpoint ep) {
  auto acc = std::make_unique<tcp::acceptor>(io);
  boost::system::error_code ec;
  acc->open(ep.protocol(), ec);
  if (ec && ep.address().is_v6() && ep.address().is_unspecified()) {
    ep = tcp::endpoint(tcp::v4(), ep.port());  // no IPv6 on this host
    acc->open(ep.protocol(), ec);
  }
  if (!ec) acc->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec && ep.address().is_v6()) acc->set_option(asio::ip::v6_only(false), ec);
  if (!ec) acc->bind(ep, ec);
  if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw std::runtime_error("cannot listen on " + ep.address().to_string() + " port " +
                             std::to_string(ep.port()) + ": " + ec.message());
  }
  return acc;
}

}  // namespace

std::vector<std::unique_ptr<tcp::acceptor>> listen_all(asio::io_context& io,
                                                       const std::vector<std::string>& addresses,
                                                       std::uint16_t port) {
  std::vector<std::unique_ptr<tcp::acceptor>> out;
  if (addresses.empty()) {
    out.push_back(listen_on(io, tcp::endpoint(tcp::v6(), port)));  // dual-stack
  } else {
    for (const auto& a : addresses)
      out.push_back(listen_on(io, tcp::endpoint(asio::ip::make_address(a), port)));
  }
  return out;
}

std::string address_key(const tcp::socket& socket) {
  boost::system::error_code ec;
  const auto ep = socket.remote_endpoint(ec);
  if (ec) return {};
  auto a = ep.address();
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    a = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  if (a.is_v4()) return a.to_string();
  auto bytes = a.to_v6().to_bytes();
  std::fill(bytes.begin() + 8, bytes.end(), 0);
  return asio::ip::address_v6(bytes).to_string() + "/64";
}

void refuse_connection(tcp::socket& socket, std::string_view bytes) {
  boost::system::error_code ec;
  socket.non_blocking(true, ec);
  if (!ec && !bytes.empty()) socket.write_some(asio::buffer(bytes.data(), bytes.size()), ec);
  socket.shutdown(tcp::socket::shutdown_send, ec);
  socket.close(ec);
}

}  // namespace waddle::net
