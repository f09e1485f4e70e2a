// Wiring of the server: one io_context thread for all network I/O, a worker thread for
// storage, listeners per configured address, graceful shutdown on SIGINT/SIGTERM and a
// configuration reload on SIGHUP.
#include "app/server/server.h"

#include <spdlog/spdlog.h>
#include <boost/asio.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "c2s/c2s.h"
#include "component/service.h"
#include "core/connection_gate.h"
#include "core/timestamp.h"
#include "core/version.h"
#include "identity/credential.h"
#include "im/archive.h"
#include "im/im_service.h"
#include "metrics/http_server.h"
#include "metrics/metrics.h"
#include "muc/service.h"
#include "net/listen.h"
#include "net/tls.h"
#include "net/worker.h"
#include "router/flow.h"
#include "router/router.h"
#include "s2s/s2s.h"
#include "storage/storage.h"
#include "web/logic/status_page.h"
#include "web/web_server.h"

namespace waddle::app {
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

using StorageWorker = net::Worker<storage::Storage>;

// Persistent rooms by room service domain: (room name, saved data).
using SavedRooms = std::map<std::string, std::vector<std::pair<std::string, std::string>>>;

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

asio::awaitable<void> store_room(StorageWorker& worker, std::string service, std::string name,
                                 std::string data) {
  auto job = [service = std::move(service), name = std::move(name),
              data = std::move(data)](storage::Storage& st) {
    if (data.empty()) return st.room_delete(service, name);
    st.room_put(service, name, data);
    return true;
  };
  co_await worker.run(std::move(job));
}

// Read before the storage worker owns the database.
SavedRooms read_saved_rooms(const core::Config& config, storage::Storage& storage) {
  SavedRooms saved;
  for (const auto& d : config.server.domains)
    if (auto m = config.muc_domain(d); !m.empty()) saved[m] = storage.room_list(m);
  return saved;
}

std::optional<identity::SigningKey> load_identity_key(const core::Config& config) {
  if (!config.identity.enabled) return std::nullopt;
  return identity::SigningKey::load_or_create(config.identity_key_path());
}

// Everything the running server owns, declared in the order it is built and torn down in
// reverse. The public steps are called once each, in the order they are declared.
class Server {
 public:
  Server(const core::Config& config, std::unique_ptr<storage::Storage> storage);

  void wire_local_delivery();
  void restore_rooms(const SavedRooms& saved);
  void start_federation();
  void start_listeners();
  void start_metrics_endpoint();
  void log_started() const;
  void handle_signals();
  // Runs the reactor until shutdown has finished, then lets queued storage work complete.
  void run();

 private:
  muc::Env room_env(const std::string& domain);
  void add_listeners(std::uint16_t port, bool direct);
  std::string render_metrics();
  std::string render_status();
  std::map<std::string, web::TrafficHistory::Totals> traffic_totals();
  static asio::awaitable<void> sample_traffic(Server* self);
  void begin_shutdown();
  void wait_for_streams_to_end();
  static asio::awaitable<void> drain_storage_then_stop(Server* self);
  void wait_for_reload();
  void reload_config();

  const core::Config& config_;
  std::unique_ptr<storage::Storage> storage_;
  std::optional<identity::SigningKey> identity_key_;
  net::TlsContexts tls_;
  asio::io_context io_{1};
  StorageWorker worker_;
  router::Router router_;
  metrics::Registry registry_;
  metrics::S2sMetrics s2s_metrics_;
  metrics::C2sMetrics c2s_metrics_;
  metrics::MucMetrics muc_metrics_;
  metrics::ListenerMetrics listener_metrics_;
  metrics::ComponentMetrics component_metrics_;
  metrics::WebMetrics web_metrics_;
  core::ConnectionGate c2s_gate_;  // unauthenticated client connections
  im::ImService im_;
  std::vector<std::unique_ptr<muc::MucService>> rooms_;  // one room service per served domain
  s2s::S2sService s2s_;
  c2s::C2sContext c2s_;
  component::ComponentService components_;  // external components (XEP-0114)
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors_;
  std::unique_ptr<metrics::HttpServer> http_;
  std::unique_ptr<web::WebServer> web_;  // WebSocket clients and host-meta ([web])
  web::TrafficHistory traffic_;          // per-domain counters every 30 s, for /status
  asio::steady_timer traffic_timer_{io_};
  std::int64_t started_at_ = core::unix_now();
  // Signals are added once the server has started; until then they keep their default action.
  asio::signal_set stop_signals_{io_};
  asio::signal_set hup_{io_};
  bool stopping_ = false;
  asio::steady_timer stop_timer_{io_};  // server.shutdown_timeout, once shutting down
};

Server::Server(const core::Config& config, std::unique_ptr<storage::Storage> storage)
    : config_(config),
      storage_(std::move(storage)),
      identity_key_(load_identity_key(config)),
      tls_(config),
      worker_(*storage_, "waddle-storage"),
      router_(config.server.domains),
      s2s_metrics_(registry_, config.metrics.max_domains),
      c2s_metrics_(registry_),
      muc_metrics_(registry_),
      listener_metrics_(registry_),
      component_metrics_(registry_),
      web_metrics_(registry_),
      c2s_gate_({config.c2s.max_unauthenticated, config.c2s.max_unauthenticated_per_address, 0}),
      im_(config, router_, worker_, io_.get_executor(), &c2s_metrics_,
          identity_key_ ? &*identity_key_ : nullptr),
      s2s_(config, router_, tls_, io_, &s2s_metrics_, &listener_metrics_),
      c2s_{config,        router_, im_,        worker_,           tls_.c2s(),
           &c2s_metrics_, &tls_,   &c2s_gate_, &listener_metrics_},
      components_(config, router_, io_, tls_.c2s(), &component_metrics_) {}

void Server::wire_local_delivery() {
  router_.set_local_handler(&im_);
  components_.register_domains();
}

// Room services (XEP-0045), one per served domain, with their persistent rooms.
void Server::restore_rooms(const SavedRooms& saved) {
  for (const auto& [domain, rooms] : saved) {
    auto service = std::make_unique<muc::MucService>(config_.muc, domain, room_env(domain));
    service->load(rooms);
    router_.add_component(domain, service.get());
    spdlog::info("room service {} ({} persistent rooms)", domain, rooms.size());
    rooms_.push_back(std::move(service));
  }
}

muc::Env Server::room_env(const std::string& domain) {
  muc::Env env;
  // Posted, not routed in place: an immediate bounce (a queue full, a session gone) must
  // not come back into the room while it is still iterating its occupants. One thread,
  // FIFO: the order of the room's stanzas is kept.
  // A stanza that a server stream brought in stays that stream's doing (router/flow.h): a
  // full S2S queue holds the stream back rather than bouncing the room's answers.
  env.send = [this](xml::Element e) {
    asio::post(io_, [this, e = std::move(e), source = router::Flow::carry()]() mutable {
      std::optional<router::Flow::Scope> in_its_name;
      if (source) in_its_name.emplace(*source);
      router_.route(std::move(e));
    });
  };
  env.broadcast = [this](xml::Element e, std::vector<std::string> to) {
    asio::post(io_, [this, e = std::move(e), to = std::move(to),
                     source = router::Flow::carry()]() mutable {
      std::optional<router::Flow::Scope> in_its_name;
      if (source) in_its_name.emplace(*source);
      router_.fan_out(e, to);
    });
  };
  env.now = [] {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  env.store = [this, service = domain](const std::string& room, const std::string& data) {
    net::spawn_logged(io_.get_executor(), store_room(worker_, service, room, data), "room storage");
  };
  env.after = [this](std::chrono::milliseconds delay, std::function<void()> fn) {
    auto timer = std::make_shared<asio::steady_timer>(io_, delay);
    timer->async_wait([timer, fn = std::move(fn)](boost::system::error_code ec) {
      if (!ec) fn();
    });
  };
  env.is_local_domain = [this](std::string_view d) { return router_.is_user_domain(d); };
  env.log = [](const std::string& line) { spdlog::info("{}", line); };
  if (config_.mam.enabled) {
    // Room archives (XEP-0313): kept, queried and deleted by the archive of the IM service.
    env.archive = [this](const core::Jid& room, muc::ArchivedMessage m) {
      im_.archive().room_message(room.bare_str(), std::move(m.id), m.occupant, m.message);
    };
    env.archive_query = [this](const core::Jid& room, const xml::Element& iq) {
      net::spawn_logged(io_.get_executor(), im_.archive().room_query(iq, room.bare_str()),
                        "room archive query");
    };
    env.archive_drop = [this](const core::Jid& room) {
      im_.archive().room_deleted(room.bare_str());
    };
    env.archive_retract = [this](const core::Jid& room, std::string id,
                                 std::function<xml::Element(const xml::Element&)> tombstone,
                                 std::function<void(bool)> done) {
      im_.archive().room_retract(room.bare_str(), std::move(id), std::move(tombstone),
                                 std::move(done));
    };
  }
  return env;
}

void Server::start_federation() {
  if (!config_.s2s.enabled) return;
  router_.set_remote(&s2s_);
  s2s_.start();
}

void Server::start_listeners() {
  components_.start();
  if (!config_.c2s.enabled) return;
  if (config_.web.enabled) {
    // Browser clients are clients: the web listener hands its WebSockets to c2s sessions,
    // and its upload service answers slot requests to the served domains.
    web_ = std::make_unique<web::WebServer>(io_, config_, tls_, c2s_, &web_metrics_);
    web_->start();
    im_.set_upload(web_->upload());
  }
  add_listeners(config_.c2s.port, false);
  if (config_.c2s.direct_tls_port) add_listeners(config_.c2s.direct_tls_port, true);
}

void Server::add_listeners(std::uint16_t port, bool direct) {
  for (auto& acc : net::listen_all(io_, config_.server.listen, port)) {
    spdlog::info("listening for clients on {} port {}{}",
                 acc->local_endpoint().address().to_string(), port, direct ? " (direct TLS)" : "");
    net::spawn_logged(io_.get_executor(), accept_loop(*acc, c2s_, direct), "c2s accept loop");
    acceptors_.push_back(std::move(acc));
  }
}

void Server::start_metrics_endpoint() {
  if (!config_.metrics.enabled) return;
  http_ = std::make_unique<metrics::HttpServer>(
      io_, config_.metrics.address, config_.metrics.port, [this] { return render_metrics(); },
      [this] { return !io_.stopped(); });
  http_->set_status([this] { return render_status(); });
  http_->start();
  net::spawn_logged(io_.get_executor(), sample_traffic(this), "status sampling");
}

std::map<std::string, web::TrafficHistory::Totals> Server::traffic_totals() {
  std::map<std::string, web::TrafficHistory::Totals> t;
  s2s_metrics_.stanzas_sent.for_each(
      [&](const auto& v, const metrics::Counter& c) { t[v[0]].sent += c.value(); });
  s2s_metrics_.stanzas_received.for_each(
      [&](const auto& v, const metrics::Counter& c) { t[v[0]].received += c.value(); });
  s2s_metrics_.errors.for_each(
      [&](const auto& v, const metrics::Counter& c) { t[v[0]].errors += c.value(); });
  return t;
}

// The status page's charts: the counters every 30 s, an hour of them.
asio::awaitable<void> Server::sample_traffic(Server* self) {
  self->traffic_.sample(core::unix_now(), self->traffic_totals());
  while (!self->stopping_) {
    self->traffic_timer_.expires_after(std::chrono::seconds(30));
    auto [ec] = co_await self->traffic_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec || self->stopping_) co_return;
    self->traffic_.sample(core::unix_now(), self->traffic_totals());
  }
}

std::string Server::render_status() {
  web::StatusData d;
  d.version = WADDLE_VERSION;
  d.now = core::unix_now();
  d.started = started_at_;
  d.local_domains = config_.server.domains;
  d.client_sessions = c2s_metrics_.sessions_active.value();
  d.websocket_sessions = web_metrics_.websocket_sessions.value();
  const auto& notes = s2s_metrics_.link_notes();
  std::set<std::string> seen;
  s2s_metrics_.connections_active.for_each([&](const auto& v, const metrics::Gauge& g) {
    if (g.value() <= 0) return;
    web::StatusLink l{v[0], v[1], g.value(), "", "", 0};
    if (auto it = notes.find({v[0], v[1]}); it != notes.end()) {
      l.method = it->second.method;
      l.tls = it->second.tls;
      l.since = it->second.since;
    }
    seen.insert(v[0]);
    d.links.push_back(std::move(l));
  });
  std::sort(d.links.begin(), d.links.end(), [](const auto& a, const auto& b) {
    return std::tie(a.domain, a.direction) < std::tie(b.domain, b.direction);
  });
  std::map<std::string, double> queues;
  s2s_metrics_.queue.for_each(
      [&](const auto& v, const metrics::Gauge& g) { queues[v[0]] += g.value(); });
  std::map<std::string, std::int64_t> failed_at;
  for (const auto& f : s2s_metrics_.recent_failures()) {
    d.failures.push_back({f.at, f.domain, f.kind, f.text});
    if (d.now - f.at <= 3600) failed_at[f.domain] = std::max(failed_at[f.domain], f.at);
  }
  std::set<std::string> all = seen;
  for (const auto& [dom, q] : queues) all.insert(dom);
  for (const auto& [dom, t] : traffic_totals()) all.insert(dom);
  for (const auto& [dom, at] : failed_at) all.insert(dom);
  for (const auto& dom : all) {
    web::StatusDomain s;
    s.domain = dom;
    s.queue = queues[dom];
    s.rate = traffic_.rate(dom);
    s.hour = traffic_.window(dom);
    s.series = traffic_.series(dom);
    s.connected = seen.count(dom) > 0;
    if (auto it = failed_at.find(dom); it != failed_at.end()) s.last_failure = it->second;
    d.domains.push_back(std::move(s));
  }
  for (const auto& r : rooms_)
    for (auto& room : r->rooms_with_remote_occupants())
      d.rooms.push_back({room.room, room.occupants_local, room.occupants_remote, room.servers});
  return web::render_status(d);
}

// The room figures are read from the room services when scraped; the rest is kept current
// by the parts that count.
std::string Server::render_metrics() {
  muc::MucStats total;
  std::uint64_t valid = 0, refused = 0;
  for (const auto& r : rooms_) {
    auto s = r->stats();
    total.rooms += s.rooms;
    total.occupants_local += s.occupants_local;
    total.occupants_remote += s.occupants_remote;
    valid += r->credentials_verified();
    refused += r->credentials_rejected();
  }
  muc_metrics_.rooms.set(static_cast<double>(total.rooms));
  muc_metrics_.occupants_local.set(static_cast<double>(total.occupants_local));
  muc_metrics_.occupants_remote.set(static_cast<double>(total.occupants_remote));
  muc_metrics_.credentials_valid.inc(valid - muc_metrics_.credentials_valid.value());
  muc_metrics_.credentials_refused.inc(refused - muc_metrics_.credentials_refused.value());
  return registry_.render();
}

void Server::log_started() const {
  for (const auto& w : config_.warnings) spdlog::warn("configuration: {}", w);
  for (const auto& d : config_.hosted_domains())
    spdlog::info("serving {} (certificate {})", d, tls_.describe(d));
  spdlog::info("waddle {} started; storage {}", WADDLE_VERSION, config_.storage_path());
}

void Server::handle_signals() {
  stop_signals_.add(SIGINT);
  stop_signals_.add(SIGTERM);
  hup_.add(SIGHUP);
  stop_signals_.async_wait([this](boost::system::error_code ec, int sig) {
    if (ec || stopping_) return;
    stopping_ = true;
    spdlog::info("received signal {}: shutting down", sig);
    begin_shutdown();
  });
  wait_for_reload();
}

// Stops accepting, lets the rooms say goodbye, closes every stream and then waits, at most
// server.shutdown_timeout, for the streams to end.
void Server::begin_shutdown() {
  for (auto& acc : acceptors_) acc->close();
  if (web_) web_->stop();
  traffic_timer_.cancel();
  for (auto& r : rooms_) r->shutdown();
  components_.stop();
  // Posted behind the rooms' goodbyes (which the rooms post), so that they are routed
  // before the streams that carry them close.
  asio::post(io_, [this] {
    for (auto* s : router_.all()) s->close_with(core::StreamError::kSystemShutdown);
    hup_.cancel();
    if (http_) http_->stop();
    wait_for_streams_to_end();
  });
}

// Stops the reactor once no client session and no server stream is left (each side says
// when its last one has gone), or at server.shutdown_timeout, whichever comes first.
void Server::wait_for_streams_to_end() {
  stop_timer_.expires_after(config_.server.shutdown_timeout);
  stop_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;  // everything ended in time
    spdlog::warn("shutdown: {} streams did not close in time",
                 c2s::live_sessions() + s2s_.live_streams());
    io_.stop();
  });
  auto sides_left = std::make_shared<int>(2);
  auto one_side_done = [this, sides_left] {
    if (--*sides_left != 0) return;
    net::spawn_logged(io_.get_executor(), drain_storage_then_stop(this), "shutdown");
  };
  c2s::when_no_sessions(one_side_done);
  s2s_.stop(one_side_done);
}

// What the ending sessions handed to the storage thread (offline messages, archive batches) is
// written, and its completion handled on the reactor, before the reactor stops: the worker runs
// jobs in order, so once a job queued now is done, every earlier one is (within
// server.shutdown_timeout, which still stops the reactor if the disk does not keep up).
asio::awaitable<void> Server::drain_storage_then_stop(Server* self) {
  co_await self->im_.archive().flush();  // archive batches still being gathered go first
  auto last = [](storage::Storage&) { return true; };
  co_await self->worker_.run(std::move(last));
  // Completions posted before this one have run; one more turn lets what they spawned start.
  co_await asio::post(self->io_.get_executor(), asio::use_awaitable);
  self->stop_timer_.cancel();
  self->io_.stop();
}

// SIGHUP: re-read the configuration file; the federation policy, rate limits and log
// level take effect without dropping connections that remain allowed.
void Server::wait_for_reload() {
  hup_.async_wait([this](boost::system::error_code ec, int) {
    if (ec) return;
    reload_config();
    wait_for_reload();
  });
}

void Server::reload_config() {
  if (config_.source.empty()) {
    spdlog::warn("SIGHUP: running on the embedded default, there is no file to reload");
  } else {
    try {
      core::Config fresh = core::load_config(config_.source);
      for (const auto& w : fresh.warnings) spdlog::warn("SIGHUP: configuration: {}", w);
      spdlog::set_level(spdlog::level::from_str(fresh.server.log_level));
      s2s_.reload(fresh);
      c2s_gate_.set_limits(
          {fresh.c2s.max_unauthenticated, fresh.c2s.max_unauthenticated_per_address, 0});
      spdlog::info("SIGHUP: reloaded {}", config_.source);
      listener_metrics_.reloads.get({"config", "ok"}).inc();
    } catch (const std::exception& e) {
      spdlog::error("SIGHUP: configuration not reloaded: {}", e.what());
      listener_metrics_.reloads.get({"config", "failed"}).inc();
    }
  }
  // Certificates are read again from their files (a renewal by certbot or the like), for the
  // connections that come from now on.
  try {
    const std::size_t n = tls_.reload_certificates();
    spdlog::info("SIGHUP: certificates reloaded ({} TLS contexts)", n);
    listener_metrics_.reloads.get({"certificates", "ok"}).inc();
  } catch (const std::exception& e) {
    spdlog::error("SIGHUP: certificates not reloaded, the ones in use stay: {}", e.what());
    listener_metrics_.reloads.get({"certificates", "failed"}).inc();
  }
}

void Server::run() {
  io_.run();
  worker_.stop();
}

}  // namespace

int run_server(const core::Config& config) {
  auto storage = storage::open_sqlite(config.storage_path());
  const SavedRooms saved_rooms = read_saved_rooms(config, *storage);
  Server server(config, std::move(storage));
  server.wire_local_delivery();
  server.restore_rooms(saved_rooms);
  server.start_federation();
  server.start_listeners();
  server.start_metrics_endpoint();
  // SIGTERM and SIGINT are handled before "started" is logged: whoever waits for that line
  // and then stops the server (a test, a supervisor) gets a clean stop, not the default
  // action of the signal.
  server.handle_signals();
  server.log_started();
  server.run();
  spdlog::info("waddle stopped");
  return 0;
}

}  // namespace waddle::app
