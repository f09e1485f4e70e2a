// STARTTLS on the receiving side and the bounded graceful close, for every stream.
#include "stream/receiving.h"

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <string>

#include "xml/element.h"

namespace waddle::stream {
namespace asio = boost::asio;

namespace {
std::string proceed() {
  return xml::Element("proceed", std::string(ns::kTls)).str();
}
}  // namespace

asio::awaitable<bool> accept_starttls(XmlStream& stream, EventReader& reader, SSL_CTX* context) {
  const std::string tag = proceed();  // built outside the coroutine frame (GCC 12)
  stream.send(tag);
  co_await stream.flush();
  stream.use_tls_context(context);
  reader.clear();
  if (!co_await stream.server_handshake()) {
    stream.close();
    co_return false;
  }
  stream.reset_parser();
  co_return true;
}

asio::awaitable<void> close_stream(std::shared_ptr<XmlStream> stream,
                                   std::chrono::milliseconds limit) {
  using namespace asio::experimental::awaitable_operators;
  asio::steady_timer timer(co_await asio::this_coro::executor);
  timer.expires_after(limit);
  co_await (stream->flush() || timer.async_wait(asio::use_awaitable));
  stream->close();
}

}  // namespace waddle::stream
