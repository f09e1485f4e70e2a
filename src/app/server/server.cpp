// Wiring of the server: one io_context thread for all network I/O, a worker thread for
// storage, listeners per configured address, graceful shutdown on SIGINT/SIGTERM.
#include "app/server/server.h"

#include <spdlog/spdlog.h>
#include <boost/asio.hpp>

#include <csignal>
#include <map>
#include <optional>

#include "c2s/c2s.h"
#include "core/version.h"
#include "identity/credential.h"
#include "im/im_service.h"
#include "metrics/http_server.h"
#include "metrics/metrics.h"
#include "muc/service.h"
#include "net/listen.h"
#include "net/tls.h"
#include "net/worker.h"
#include "router/router.h"
#include "s2s/s2s.h"
#include "storage/storage.h"

namespace waddle::app {
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, c2s::C2sContext& ctx, bool direct) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
    if (ec) {
      spdlog::warn("accept failed: {}", ec.message());
      continue;
    }
    c2s::start_session(ctx, std::move(socket), direct);
  }
}

asio::awaitable<void> store_room(net::Worker<storage::Storage>& worker, std::string service,
                                 std::string name, std::string data) {
  auto job = [service = std::move(service), name = std::move(name),
              data = std::move(data)](storage::Storage& st) {
    if (data.empty()) return st.room_delete(service, name);
    st.room_put(service, name, data);
    return true;
  };
  co_await worker.run(std::move(job));
}

}  // namespace

int run_server(const core::Config& config) {
  auto storage = storage::open_sqlite(config.storage_path());
  // Persistent rooms, read before the storage worker owns the database.
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> saved_rooms;
  for (const auto& d : config.server.domains)
    if (auto m = config.muc_domain(d); !m.empty()) saved_rooms[m] = storage->room_list(m);
  std::optional<identity::SigningKey> identity_key;
  if (config.identity.enabled)
    identity_key.emplace(identity::SigningKey::load_or_create(config.identity_key_path()));
  net::TlsContexts tls(config);
  asio::io_context io(1);
  net::Worker<storage::Storage> worker(*storage);
  router::Router router(config.server.domains);
  metrics::Registry registry;
  metrics::S2sMetrics s2s_metrics(registry, config.metrics.max_domains);
  metrics::C2sMetrics c2s_metrics(registry);
  metrics::MucMetrics muc_metrics(registry);
  im::ImService im(config, router, worker, io.get_executor(), &c2s_metrics,
                   identity_key ? &*identity_key : nullptr);
  router.set_local_handler(&im);

  // Room services (XEP-0045), one per served domain.
  std::vector<std::unique_ptr<muc::MucService>> rooms;
  for (auto& [domain, saved] : saved_rooms) {
    muc::Env env;
    // Posted, not routed in place: an immediate bounce (a queue full, a session gone) must
    // not come back into the room while it is still iterating its occupants. One thread,
    // FIFO: the order of the room's stanzas is kept.
    env.send = [&router, &io](xml::Element e) {
      asio::post(io, [&router, e = std::move(e)]() mutable { router.route(std::move(e)); });
    };
    env.now = [] {
      return std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
          .count();
    };
    env.store = [&worker, &io, service = domain](const std::string& room, const std::string& data) {
      net::spawn_logged(io.get_executor(), store_room(worker, service, room, data), "room storage");
    };
    env.after = [&io](std::chrono::milliseconds delay, std::function<void()> fn) {
      auto timer = std::make_shared<asio::steady_timer>(io, delay);
      timer->async_wait([timer, fn = std::move(fn)](boost::system::error_code ec) {
        if (!ec) fn();
      });
    };
    env.is_local_domain = [&router](std::string_view d) { return router.is_user_domain(d); };
    env.log = [](const std::string& line) { spdlog::info("{}", line); };
    auto service = std::make_unique<muc::MucService>(config.muc, domain, std::move(env));
    service->load(saved);
    router.add_component(domain, service.get());
    spdlog::info("room service {} ({} persistent rooms)", domain, saved.size());
    rooms.push_back(std::move(service));
  }
  s2s::S2sService s2s(config, router, tls, io, &s2s_metrics);
  if (config.s2s.enabled) {
    router.set_remote(&s2s);
    s2s.start();
  }
  c2s::C2sContext ctx{config, router, im, worker, tls.c2s(), &c2s_metrics, &tls};

  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  auto add_listeners = [&](std::uint16_t port, bool direct) {
    for (auto& acc : net::listen_all(io, config.server.listen, port)) {
      spdlog::info("listening for clients on {} port {}{}",
                   acc->local_endpoint().address().to_string(), port,
                   direct ? " (direct TLS)" : "");
      net::spawn_logged(io.get_executor(), accept_loop(*acc, ctx, direct), "c2s accept loop");
      acceptors.push_back(std::move(acc));
    }
  };
  if (config.c2s.enabled) {
    add_listeners(config.c2s.port, false);
    if (config.c2s.direct_tls_port) add_listeners(config.c2s.direct_tls_port, true);
  }
  std::unique_ptr<metrics::HttpServer> http;
  if (config.metrics.enabled) {
    http = std::make_unique<metrics::HttpServer>(
        io, config.metrics.address, config.metrics.port,
        [&] {
          muc::MucStats total;
          std::uint64_t valid = 0, refused = 0;
          for (const auto& r : rooms) {
            auto s = r->stats();
            total.rooms += s.rooms;
            total.occupants_local += s.occupants_local;
            total.occupants_remote += s.occupants_remote;
            valid += r->credentials_verified();
            refused += r->credentials_rejected();
          }
          muc_metrics.rooms.set(static_cast<double>(total.rooms));
          muc_metrics.occupants_local.set(static_cast<double>(total.occupants_local));
          muc_metrics.occupants_remote.set(static_cast<double>(total.occupants_remote));
          muc_metrics.credentials_valid.inc(valid - muc_metrics.credentials_valid.value());
          muc_metrics.credentials_refused.inc(refused - muc_metrics.credentials_refused.value());
          return registry.render();
        },
        [&] { return !io.stopped(); });
    http->start();
  }
  for (const auto& d : config.hosted_domains())
    spdlog::info("serving {} (certificate {})", d, tls.describe(d));
  spdlog::info("waddle {} started; storage {}", WADDLE_VERSION, config.storage_path());

  asio::signal_set signals(io, SIGINT, SIGTERM);
  asio::signal_set hup(io, SIGHUP);
  bool stopping = false;
  asio::steady_timer stop_timer(io);
  std::function<void()> wait_sessions;
  auto deadline = std::chrono::steady_clock::time_point::max();
  wait_sessions = [&] {
    auto live = c2s::live_sessions() + s2s.live_streams();
    if (live == 0 || std::chrono::steady_clock::now() >= deadline) {
      if (live != 0) spdlog::warn("shutdown: {} streams did not close in time", live);
      io.stop();
      return;
    }
    stop_timer.expires_after(std::chrono::milliseconds(20));
    stop_timer.async_wait([&](boost::system::error_code) { wait_sessions(); });
  };
  signals.async_wait([&](boost::system::error_code ec, int sig) {
    if (ec || stopping) return;
    stopping = true;
    spdlog::info("received signal {}: shutting down", sig);
    for (auto& acc : acceptors) acc->close();
    for (auto& r : rooms) r->shutdown();
    // Posted behind the rooms' goodbyes (which the rooms post), so that they are routed
    // before the streams that carry them close.
    asio::post(io, [&] {
      for (auto* s : router.all()) s->close_with(core::StreamError::kSystemShutdown);
      s2s.stop();
      hup.cancel();
      if (http) http->stop();
      deadline = std::chrono::steady_clock::now() + config.server.shutdown_timeout;
      wait_sessions();
    });
  });

  // SIGHUP: re-read the configuration file; the federation policy, rate limits and log
  // level take effect without dropping connections that remain allowed.
  std::function<void()> wait_hup = [&] {
    hup.async_wait([&](boost::system::error_code ec, int) {
      if (ec) return;
      if (config.source.empty()) {
        spdlog::warn("SIGHUP: running on the embedded default, there is no file to reload");
      } else {
        try {
          core::Config fresh = core::load_config(config.source);
          spdlog::set_level(spdlog::level::from_str(fresh.server.log_level));
          s2s.reload(fresh);
          spdlog::info("SIGHUP: reloaded {}", config.source);
        } catch (const std::exception& e) {
          spdlog::error("SIGHUP: configuration not reloaded: {}", e.what());
        }
      }
      wait_hup();
    });
  };
  wait_hup();

  io.run();
  worker.stop();
  spdlog::info("waddle stopped");
  return 0;
}

}  // namespace waddle::app
