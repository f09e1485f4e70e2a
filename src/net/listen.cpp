// Listening sockets (see listen.h).
#include "net/listen.h"

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

}  // namespace waddle::net
