#include "component/service.h"

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "component/rules.h"
#include "core/config.h"
#include "core/ids.h"
#include "core/jid.h"
#include "metrics/metrics.h"
#include "net/listen.h"
#include "router/router.h"
#include "stream/event_reader.h"
#include "stream/negotiation.h"
#include "stream/xml_stream.h"
#include "xml/stanza.h"

namespace waddle::component {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using stream::XmlStream;
namespace ns = waddle::ns;

namespace {

// A connection has this long to complete its handshake.
constexpr auto kHandshakeTimeout = std::chrono::seconds(30);
// Connections that have not completed their handshake, at most; more are refused.
constexpr std::size_t kMaxHandshaking = 32;

}  // namespace

struct ComponentService::Impl {
  // One configured component domain: the router's handler for it.
  struct Slot final : router::LocalHandler {
    Slot(Impl& impl, std::string domain, std::string secret)
        : impl(impl), domain(std::move(domain)), secret(std::move(secret)) {}

    void to_local(xml::Element stanza) override {
      if (!stream || stream->closed() || stream->write_limit() != stream::WriteLimit::kNone) {
        if (impl.metrics) impl.metrics->bounced.get({domain}).inc();
        impl.router.bounce(stanza, core::StanzaError::kServiceUnavailable,
                           "The component is not connected");
        return;
      }
      stream->send(xml::serialize_stanza(stanza, ns::kComponentAccept));
      if (stream->write_limit() != stream::WriteLimit::kNone) {
        // This stanza tripped the bound (the component stopped reading) and was not queued:
        // it is answered, as the ones after it will be.
        if (impl.metrics) impl.metrics->bounced.get({domain}).inc();
        impl.router.bounce(stanza, core::StanzaError::kServiceUnavailable,
                           "The component is not reading");
        return;
      }
      if (impl.metrics) impl.metrics->stanzas.get({domain, "out"}).inc();
    }

    Impl& impl;
    const std::string domain;
    const std::string secret;
    std::shared_ptr<XmlStream> stream;  // while connected
  };

  Impl(const core::Config& config, router::Router& router, asio::io_context& io,
       asio::ssl::context& tls, metrics::ComponentMetrics* metrics)
      : config(config), router(router), io(io), tls(tls), metrics(metrics) {
    for (const auto& [domain, secret] : config.components.secrets)
      slots.emplace(domain, std::make_unique<Slot>(*this, domain, secret));
  }

  asio::awaitable<void> accept_loop(tcp::acceptor& acceptor) {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      if (ec) {
        spdlog::warn("component accept failed: {}", ec.message());
        continue;
      }
      if (stopping || handshaking >= kMaxHandshaking) {
        net::refuse_connection(socket, stream::stream_error_close(
                                           stopping ? core::StreamError::kSystemShutdown
                                                    : core::StreamError::kPolicyViolation,
                                           stopping ? "" : "Too many component handshakes at once",
                                           stream::component_header({}, core::random_hex(8))));
        continue;
      }
      auto xs = std::make_shared<XmlStream>(
          std::move(socket), tls,
          stream::before_authentication(stream::server_parser_limits(config), config));
      // A component that stops reading is disconnected (the stream closes past the bounds).
      xs->set_write_limits({config.s2s_write_queue(), config.s2s.write_stall_timeout});
      net::spawn_logged(io.get_executor(), serve(xs), "component stream");
    }
  }

  // One connection, from its header to its end.
  asio::awaitable<void> serve(std::shared_ptr<XmlStream> xs) {
    streams.insert(xs);
    ++handshaking;
    bool counted = true;
    auto done_handshaking = [&] {
      if (counted) --handshaking;
      counted = false;
    };
    asio::steady_timer deadline(io, kHandshakeTimeout);
    deadline.async_wait([weak = std::weak_ptr<XmlStream>(xs)](boost::system::error_code ec) {
      if (auto s = weak.lock(); s && !ec) s->close();
    });
    stream::EventReader reader(xs);
    Slot* slot = co_await handshake(xs, reader);
    deadline.cancel();
    done_handshaking();
    if (slot) co_await read_stanzas(xs, reader, *slot);
    if (slot && slot->stream == xs) {
      slot->stream.reset();
      if (metrics) metrics->connected.get({slot->domain}).set(0);
      spdlog::info("component {} disconnected ({})", slot->domain, xs->remote_address());
    }
    co_await xs->flush();  // bounded: the write limits close a stream that is not read
    xs->close();
    streams.erase(xs);
  }

  // XEP-0114 §3: the header names the component's domain, the handshake proves the secret.
  // The slot it connected, or nullptr when the stream is to end (its error queued).
  asio::awaitable<Slot*> handshake(const std::shared_ptr<XmlStream>& xs,
                                   stream::EventReader& reader) {
    const std::string id = core::random_hex(16);
    auto ev = co_await reader.next();
    if (!ev) {
      if (reader.error())
        xs->send(stream::stream_error_close(*reader.error(), {}, stream::component_header({}, id)));
      co_return nullptr;
    }
    const xml::Element& h = ev->element;
    if (ev->kind != xml::StreamEvent::Kind::kStreamOpen || !h.is("stream", ns::kStream) ||
        ev->default_ns != ns::kComponentAccept) {
      xs->send(stream::stream_error_close(core::StreamError::kInvalidNamespace, {},
                                          stream::component_header({}, id)));
      co_return nullptr;
    }
    const auto domain = core::nameprep_domain(h.attr("to"));
    auto it = domain ? slots.find(*domain) : slots.end();
    if (it == slots.end()) {
      xs->send(stream::stream_error_close(core::StreamError::kHostUnknown,
                                          "No component of that domain is configured here",
                                          stream::component_header({}, id)));
      co_return nullptr;
    }
    Slot& slot = *it->second;
    xs->send(stream::component_header(slot.domain, id));
    ev = co_await reader.next();
    if (!ev) {
      if (reader.error()) xs->send(stream::stream_error_close(*reader.error(), {}));
      co_return nullptr;
    }
    if (ev->kind != xml::StreamEvent::Kind::kElement ||
        !ev->element.is("handshake", ns::kComponentAccept) ||
        !handshake_matches(ev->element.text(), id, slot.secret)) {
      if (metrics) metrics->handshakes.get({slot.domain, "not_authorized"}).inc();
      spdlog::warn("component {}: handshake refused ({})", slot.domain, xs->remote_address());
      xs->send(stream::stream_error_close(core::StreamError::kNotAuthorized, {}));
      co_return nullptr;
    }
    if (slot.stream) {
      if (metrics) metrics->handshakes.get({slot.domain, "conflict"}).inc();
      spdlog::warn("component {}: already connected, second connection refused ({})", slot.domain,
                   xs->remote_address());
      xs->send(stream::stream_error_close(core::StreamError::kConflict,
                                          "This component is connected already"));
      co_return nullptr;
    }
    slot.stream = xs;
    xs->set_max_stanza_size(config.s2s.max_stanza_size);
    xs->send("<handshake/>");
    if (metrics) {
      metrics->handshakes.get({slot.domain, "ok"}).inc();
      metrics->connected.get({slot.domain}).set(1);
    }
    spdlog::info("component {} connected ({})", slot.domain, xs->remote_address());
    co_return &slot;
  }

  asio::awaitable<void> read_stanzas(const std::shared_ptr<XmlStream>& xs,
                                     stream::EventReader& reader, Slot& slot) {
    for (;;) {
      auto ev = co_await reader.next();
      if (!ev) {
        if (reader.error()) xs->send(stream::stream_error_close(*reader.error(), {}));
        co_return;
      }
      if (ev->kind == xml::StreamEvent::Kind::kStreamClose) {
        xs->send(stream::kStreamEnd);
        co_return;
      }
      if (ev->kind != xml::StreamEvent::Kind::kElement) continue;
      const Verdict v = check(ev->element, slot.domain);
      if (v.kind == Verdict::Kind::kClose) {
        spdlog::warn("component {}: {} ({})", slot.domain, core::to_string(v.stream_error), v.text);
        xs->send(stream::stream_error_close(v.stream_error, v.text));
        co_return;
      }
      xml::Element stanza = to_server_namespace(ev->element);
      if (v.kind == Verdict::Kind::kAnswer) {
        if (xml::may_bounce(stanza))
          xs->send(xml::serialize_stanza(xml::make_error_reply(stanza, v.error, v.text),
                                         ns::kComponentAccept));
        continue;
      }
      if (metrics) metrics->stanzas.get({slot.domain, "in"}).inc();
      router.route(std::move(stanza));
    }
  }

  const core::Config& config;
  router::Router& router;
  asio::io_context& io;
  asio::ssl::context& tls;
  metrics::ComponentMetrics* metrics;
  std::map<std::string, std::unique_ptr<Slot>, std::less<>> slots;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::set<std::shared_ptr<XmlStream>> streams;  // every open connection
  std::size_t handshaking = 0;
  bool stopping = false;
};

ComponentService::ComponentService(const core::Config& config, router::Router& router,
                                   asio::io_context& io, asio::ssl::context& tls,
                                   metrics::ComponentMetrics* metrics)
    : impl_(std::make_unique<Impl>(config, router, io, tls, metrics)) {}

ComponentService::~ComponentService() = default;

void ComponentService::register_domains() {
  for (auto& [domain, slot] : impl_->slots) {
    impl_->router.add_component(domain, slot.get());
    if (impl_->metrics) impl_->metrics->connected.get({domain}).set(0);
  }
}

void ComponentService::start() {
  if (impl_->slots.empty()) return;
  const auto& c = impl_->config.components;
  for (auto& acc : net::listen_all(impl_->io, c.listen, c.port)) {
    spdlog::info("listening for components on {} port {}",
                 acc->local_endpoint().address().to_string(), c.port);
    net::spawn_logged(impl_->io.get_executor(), impl_->accept_loop(*acc), "component listener");
    impl_->acceptors.push_back(std::move(acc));
  }
}

void ComponentService::stop() {
  impl_->stopping = true;
  for (auto& acc : impl_->acceptors) acc->close();
  // Each connection's own coroutine ends once its socket closes; the end of the stream is
  // queued first and written when the socket lets it.
  for (const auto& xs : std::vector(impl_->streams.begin(), impl_->streams.end())) {
    xs->send(stream::stream_error_close(core::StreamError::kSystemShutdown, {}));
    auto flush_then_close = [](std::shared_ptr<XmlStream> s) -> asio::awaitable<void> {
      co_await s->flush();
      s->close();
    };
    net::spawn_logged(impl_->io.get_executor(), flush_then_close(xs), "component stream end");
  }
}

}  // namespace waddle::component
