// One coroutine per HTTP connection: TLS (on the HTTPS listener), then requests read with
// Beast's parser from the XmlStream's bytes, each answered, until the connection closes or
// upgrades to a WebSocket, which becomes a client session.
#include "web/web_server.h"

#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <chrono>
#include <filesystem>
#include <set>
#include <sstream>

#include "c2s/c2s.h"
#include "core/base64.h"
#include "core/config.h"
#include "core/connection_gate.h"
#include "core/timestamp.h"
#include "metrics/metrics.h"
#include "net/listen.h"
#include "net/tls.h"
#include "stream/xml_stream.h"
#include "web/logic/file_store.h"
#include "web/logic/http_rules.h"
#include "web/logic/upload_rules.h"
#include "web/logic/upload_service.h"
#include "web/logic/websocket.h"

namespace waddle::web {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr std::uint32_t kMaxHeader = 8 * 1024;  // request line and headers
constexpr std::size_t kMaxConnections = 1024;   // HTTP connections not (yet) upgraded

using Request = http::request<http::empty_body>;
using Response = http::response<http::string_body>;

}  // namespace

struct WebServer::Impl {
  Impl(asio::io_context& io_context, const core::Config& cfg, net::TlsContexts& contexts,
       c2s::C2sContext& c2s_context, metrics::WebMetrics* m)
      : io(io_context), config(cfg), tls(contexts), c2s(c2s_context), metrics(m) {}

  asio::io_context& io;
  const core::Config& config;
  net::TlsContexts& tls;
  c2s::C2sContext& c2s;
  metrics::WebMetrics* metrics;
  std::vector<std::pair<std::unique_ptr<tcp::acceptor>, bool>> acceptors;  // (acceptor, tls)
  std::set<stream::XmlStream*> connections;  // HTTP connections open, closed by stop()
  bool stopped = false;
  std::unique_ptr<UploadService> upload;  // XEP-0363; null when off
  std::string client_dir;                 // the web client's files; empty when off
  std::unique_ptr<asio::steady_timer> cleanup_timer;

  void count(std::string_view endpoint, unsigned code) {
    if (metrics) metrics->requests.get({endpoint, std::to_string(code)}).inc();
  }
  void upgrade(std::string_view result) {
    if (metrics) metrics->upgrades.get({result}).inc();
  }
};

namespace {

using Impl = WebServer::Impl;

// Keeps a connection listed in Impl::connections while it is HTTP.
class Registration {
 public:
  Registration(Impl& impl, stream::XmlStream& stream) : impl_(impl), stream_(&stream) {
    impl_.connections.insert(stream_);
  }
  ~Registration() { release(); }
  void release() {
    if (stream_) impl_.connections.erase(stream_);
    stream_ = nullptr;
  }
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;

 private:
  Impl& impl_;
  stream::XmlStream* stream_;
};

// A WebSocket session open, for waddle_websocket_sessions.
struct LiveSession {
  explicit LiveSession(metrics::Gauge* g) : gauge(g) {
    if (gauge) gauge->inc();
  }
  ~LiveSession() {
    if (gauge) gauge->dec();
  }
  metrics::Gauge* gauge;
};

Response make_response(http::status status, unsigned version, std::string_view content_type,
                       std::string body) {
  Response res{status, version};
  res.set(http::field::server, "waddle");
  res.set(http::field::content_type, content_type);
  // Nothing served here is to be sniffed into something else, or framed by other sites.
  res.set("X-Content-Type-Options", "nosniff");
  res.set("X-Frame-Options", "DENY");
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

Response plain(http::status status, unsigned version, std::string_view text) {
  return make_response(status, version, "text/plain; charset=utf-8", std::string(text) + "\n");
}

// The bytes of a response; a HEAD request gets the header only.
std::string wire(Response& res, bool head) {
  std::ostringstream os;
  if (head)
    os << res.base();
  else
    os << res;
  return std::move(os).str();
}

RequestSite site_of(const Impl& impl, const Request& req, bool tls) {
  RequestSite site;
  site.secure = tls;
  // Only the loopback listener sits behind a proxy that may say how the browser connected.
  if (!tls && beast::iequals(req["X-Forwarded-Proto"], "https")) site.secure = true;
  const std::string_view host = req[http::field::host];
  if (valid_host(host)) site.host = std::string(host);
  site.public_url = impl.config.web.public_url;
  return site;
}

std::string_view target_path(const Request& req) {
  std::string_view target = req.target();
  return target.substr(0, target.find('?'));
}

// RFC 6455 §4.2.1 and RFC 7395 §3.1-§3.2: what keeps an upgrade request from being accepted,
// as the response to send and the metric's result; nullopt when it may be accepted.
std::optional<std::pair<Response, std::string_view>> refuse_upgrade(const Impl& impl,
                                                                    const Request& req,
                                                                    const RequestSite& site) {
  const unsigned v = req.version();
  if (req[http::field::sec_websocket_version] != "13") {
    auto res = plain(http::status::upgrade_required, v, "WebSocket version 13 is required");
    res.set(http::field::sec_websocket_version, "13");
    return std::pair{std::move(res), "version"};
  }
  auto key = core::base64_decode(req[http::field::sec_websocket_key]);
  if (!key || key->size() != 16)
    return std::pair{plain(http::status::bad_request, v, "Sec-WebSocket-Key is missing or invalid"),
                     "bad_request"};
  bool xmpp = false;
  for (const auto& p : http::token_list(req[http::field::sec_websocket_protocol]))
    if (beast::iequals(p, "xmpp")) xmpp = true;
  if (!xmpp)
    return std::pair{plain(http::status::bad_request, v,
                           "The 'xmpp' WebSocket subprotocol (RFC 7395) is required"),
                     "protocol"};
  if (!origin_allowed(req[http::field::origin], site, impl.config.web.allowed_origins))
    return std::pair{plain(http::status::forbidden, v, "This page's origin may not connect"),
                     "origin"};
  return std::nullopt;
}

Response answer(Impl& impl, const Request& req, const RequestSite& site, bool& head) {
  const unsigned v = req.version();
  const std::string_view path = target_path(req);
  head = req.method() == http::verb::head;
  const bool get = req.method() == http::verb::get || head;
  if (path == "/.well-known/host-meta" || path == "/.well-known/host-meta.json") {
    Response res;
    if (req.method() == http::verb::options) {
      res = make_response(http::status::no_content, v, "text/plain", "");
    } else if (!get) {
      res = plain(http::status::method_not_allowed, v, "method not allowed");
      res.set(http::field::allow, "GET, HEAD, OPTIONS");
    } else {
      const std::string url = websocket_url(site, impl.config.web.websocket_path);
      const bool json = path.ends_with(".json");
      res = json ? make_response(http::status::ok, v, "application/json", host_meta_json(url))
                 : make_response(http::status::ok, v, "application/xrd+xml; charset=utf-8",
                                 host_meta_xrd(url));
    }
    // XEP-0156 §3: web clients on other origins read it.
    res.set(http::field::access_control_allow_origin, "*");
    res.set(http::field::access_control_allow_methods, "GET, HEAD, OPTIONS");
    impl.count("host_meta", res.result_int());
    return res;
  }
  Response res;
  if (path == impl.config.web.websocket_path) {
    res = plain(http::status::upgrade_required, v, "This is a WebSocket endpoint (RFC 7395)");
    res.set(http::field::upgrade, "websocket");
    impl.count("websocket", res.result_int());
  } else {
    res = plain(http::status::not_found, v, "not found");
    impl.count("other", res.result_int());
  }
  return res;
}

// The response to a request that could not be read, or nothing (just close) when the peer
// went away or timed out.
std::optional<http::status> status_for_read_error(const boost::system::error_code& ec) {
  if (ec == http::error::header_limit) return http::status::request_header_fields_too_large;
  if (ec == http::error::body_limit || ec == http::error::buffer_overflow)
    return http::status::payload_too_large;
  return http::status::bad_request;
}

// What the upload handlers need of their connection.
struct Exchange {
  Impl& impl;
  stream::XmlStream& stream;
  std::string& in;                                               // bytes read and not yet taken
  std::function<void(std::chrono::steady_clock::duration)> arm;  // the connection's deadline
  std::chrono::steady_clock::duration timeout;
};

void cors(Response& res) {
  // XEP-0363 §8: web clients on other origins upload and show files.
  res.set(http::field::access_control_allow_origin, "*");
  res.set(http::field::access_control_allow_methods, "GET, HEAD, PUT, OPTIONS");
  res.set(http::field::access_control_allow_headers, "Content-Type");
  res.set(http::field::access_control_max_age, "86400");
}

asio::awaitable<bool> send_response(Exchange& x, Response& res, bool head, bool keep_alive) {
  res.keep_alive(keep_alive);
  x.stream.send(wire(res, head));
  x.arm(x.timeout);
  co_await x.stream.flush();
  co_return keep_alive && !x.stream.closed() && !x.impl.stopped;
}

// After refusing a request whose body was not read: the refusal is written, then what the
// client still sends is read and dropped for a moment, so that closing does not reset the
// connection before the client has read the answer.
asio::awaitable<void> linger(Exchange& x) {
  x.stream.shutdown_send();
  x.arm(std::chrono::seconds(1));
  for (std::size_t total = 0; total < 1024 * 1024;) {
    const std::string_view data = co_await x.stream.read_some();
    if (data.empty()) break;
    total += data.size();
  }
}

// PUT: the body goes to the file store as it arrives, never held whole.
asio::awaitable<bool> receive_file(Exchange& x, const Request& req,
                                   std::optional<std::uint64_t> length, bool chunked,
                                   const std::string& slot, const std::string& name) {
  UploadService& upload = *x.impl.upload;
  auto put = chunked ? UploadService::Put{411, "Content-Length is required", 0, nullptr}
                     : upload.begin_put(slot, name, length, req[http::field::content_type]);
  if (chunked && x.impl.metrics) x.impl.metrics->upload_puts.get({"refused"}).inc();
  if (put.status != 0) {
    Response res = plain(static_cast<http::status>(put.status), req.version(), put.reason);
    cors(res);
    x.impl.count("upload", put.status);
    spdlog::info("web {}: upload refused ({} {})", x.stream.remote_address(), put.status,
                 put.reason);
    co_await send_response(x, res, false, false);
    co_await linger(x);
    co_return false;
  }
  // Slow or abandoned uploads end: idle for the connection's timeout, or slower on average
  // than min_upload_rate with that timeout as an allowance.
  const auto rate = std::max<std::uint64_t>(1, x.impl.config.upload.min_upload_rate);
  const auto until = std::chrono::steady_clock::now() + x.timeout +
                     std::chrono::milliseconds(put.size * 1000 / rate);
  std::uint64_t left = put.size;
  bool ok = true;
  while (left > 0 && ok) {
    if (x.in.empty()) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= until) break;
      x.arm(std::min<std::chrono::steady_clock::duration>(x.timeout, until - now));
      const std::string_view data = co_await x.stream.read_some();
      if (data.empty() || x.impl.stopped) break;
      const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(left, data.size()));
      ok = put.writer->write(data.substr(0, take));
      left -= take;
      x.in.append(data.substr(take));  // the next request's first bytes, if any
    } else {
      const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(left, x.in.size()));
      ok = put.writer->write(std::string_view(x.in).substr(0, take));
      x.in.erase(0, take);
      left -= take;
    }
  }
  if (left > 0 || !ok) {
    upload.abort_put(slot);
    put.writer.reset();
    spdlog::info("web {}: upload to {} {} with {} of {} bytes missing", x.stream.remote_address(),
                 slot, ok ? "ended" : "failed (disk)", left, put.size);
    if (!ok) {
      Response res =
          plain(http::status::insufficient_storage, req.version(), "the file could not be stored");
      cors(res);
      x.impl.count("upload", res.result_int());
      co_await send_response(x, res, false, false);
    }
    co_return false;
  }
  const bool stored = upload.finish_put(slot, std::move(put.writer));
  Response res = stored ? plain(http::status::created, req.version(), "stored")
                        : plain(http::status::insufficient_storage, req.version(),
                                "the file could not be stored");
  cors(res);
  x.impl.count("upload", res.result_int());
  if (stored)
    spdlog::info("web {}: stored upload {} ({} bytes)", x.stream.remote_address(), slot, put.size);
  co_return co_await send_response(x, res, false, req.keep_alive());
}

// Writes `count` bytes of `reader` from `first`, never queueing much at a time.
asio::awaitable<bool> stream_body(Exchange& x, FileStore::Reader& reader, std::uint64_t first,
                                  std::uint64_t count) {
  constexpr std::size_t kChunk = 64 * 1024;
  std::string buf(kChunk, '\0');
  std::uint64_t sent = 0;
  while (sent < count && !x.stream.closed()) {
    const std::size_t want =
        static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, count - sent));
    const std::size_t n = reader.read(first + sent, buf.data(), want);
    if (n == 0) {  // the file shrank or vanished under us: the response cannot be completed
      x.stream.close();
      co_return false;
    }
    x.stream.send(std::string_view(buf.data(), n));
    sent += n;
    if (x.stream.bytes_unwritten() >= 4 * kChunk) {  // what is queued stays small
      x.arm(x.timeout);
      co_await x.stream.flush();
    }
  }
  co_return sent == count;
}

// A file's response: the whole file or one byte range (GET and HEAD); `res` carries the
// headers of its kind.
asio::awaitable<bool> send_file(Exchange& x, const Request& req, Response res,
                                FileStore::Reader& reader, std::uint64_t size,
                                std::string_view endpoint) {
  const bool head = req.method() == http::verb::head;
  const ByteRange range = parse_range(req[http::field::range], size);
  res.set(http::field::accept_ranges, "bytes");
  if (range.kind == ByteRange::Kind::kUnsatisfiable) {
    Response bad =
        plain(http::status::range_not_satisfiable, req.version(), "range not satisfiable");
    bad.set(http::field::content_range, "bytes */" + std::to_string(size));
    cors(bad);
    x.impl.count(endpoint, 416);
    co_return co_await send_response(x, bad, head, req.keep_alive());
  }
  std::uint64_t first = 0, count = size;
  if (range.kind == ByteRange::Kind::kPartial) {
    res.result(http::status::partial_content);
    res.set(http::field::content_range, "bytes " + std::to_string(range.first) + "-" +
                                            std::to_string(range.last) + "/" +
                                            std::to_string(size));
    first = range.first;
    count = range.last - range.first + 1;
  }
  res.content_length(count);
  res.keep_alive(req.keep_alive());
  x.impl.count(endpoint, res.result_int());
  std::ostringstream os;
  os << res.base();
  x.stream.send(std::move(os).str());
  if (!head) {
    if (!co_await stream_body(x, reader, first, count)) co_return false;
    if (x.impl.metrics && endpoint == "upload")
      x.impl.metrics->upload_bytes.get({"out"}).inc(static_cast<double>(count));
  }
  x.arm(x.timeout);
  co_await x.stream.flush();
  co_return req.keep_alive() && !x.stream.closed() && !x.impl.stopped;
}

// An uploaded file.
asio::awaitable<bool> send_upload(Exchange& x, const Request& req, const StoredFile& file) {
  auto reader = x.impl.upload->open(file.slot);
  if (!reader) {
    Response res = plain(http::status::not_found, req.version(), "not found");
    cors(res);
    x.impl.count("upload", 404);
    co_return co_await send_response(x, res, req.method() == http::verb::head, req.keep_alive());
  }
  Response res{http::status::ok, req.version()};
  res.set(http::field::server, "waddle");
  res.set(http::field::content_type, file.content_type);
  // Uploaded content never runs as part of this site: no sniffing into HTML, no scripts,
  // and anything a browser could execute is a download.
  res.set("X-Content-Type-Options", "nosniff");
  res.set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; sandbox");
  res.set(http::field::content_disposition,
          std::string(inline_safe(file.content_type) ? "inline" : "attachment") +
              "; filename*=UTF-8''" + encode_segment(file.filename));
  res.set(http::field::cache_control, "public, max-age=31536000, immutable");
  cors(res);
  co_return co_await send_file(x, req, std::move(res), *reader, file.size, "upload");
}

// Requests under /upload/: false when the connection is to close.
asio::awaitable<bool> serve_upload(Exchange& x, http::request_parser<http::empty_body>& parser) {
  const Request& req = parser.get();
  std::string_view rest = target_path(req).substr(UploadService::kPathPrefix.size());
  const auto slash = rest.find('/');
  std::optional<std::string> name;
  std::string slot;
  if (slash != std::string_view::npos) {
    slot = std::string(rest.substr(0, slash));
    name = decode_segment(rest.substr(slash + 1));
  }
  const bool body = !parser.is_done();
  if (!name) {
    Response res = plain(http::status::not_found, req.version(), "not found");
    x.impl.count("upload", 404);
    co_await send_response(x, res, false, !body && req.keep_alive());
    if (body) co_await linger(x);
    co_return !body && req.keep_alive();
  }
  switch (req.method()) {
    case http::verb::put: {
      // Taken out of the co_await expression: GCC 12 evaluates a conditional's temporaries
      // wrongly inside one (the optional was read empty under the debug build's assertion).
      std::optional<std::uint64_t> length;
      if (const auto declared = parser.content_length(); declared.has_value())
        length = declared.value();
      const bool chunked = parser.chunked();
      co_return co_await receive_file(x, req, length, chunked, slot, *name);
    }
    case http::verb::get:
    case http::verb::head:
      if (!body) {
        if (const StoredFile* file = x.impl.upload->find(slot, *name))
          co_return co_await send_upload(x, req, *file);
        Response res = plain(http::status::not_found, req.version(), "not found");
        cors(res);
        x.impl.count("upload", 404);
        co_return co_await send_response(x, res, req.method() == http::verb::head,
                                         req.keep_alive());
      }
      break;
    case http::verb::options: {
      Response res = make_response(http::status::no_content, req.version(), "text/plain", "");
      cors(res);
      x.impl.count("upload", 204);
      if (!body) co_return co_await send_response(x, res, false, req.keep_alive());
      break;
    }
    default:
      break;
  }
  Response res = plain(http::status::method_not_allowed, req.version(), "method not allowed");
  res.set(http::field::allow, "GET, HEAD, PUT, OPTIONS");
  cors(res);
  x.impl.count("upload", 405);
  co_await send_response(x, res, false, false);
  if (body) co_await linger(x);
  co_return false;
}

// The web client: its page (set up for this server and the host the browser asked for) and
// its files. False when the connection is to close.
asio::awaitable<bool> serve_client(Exchange& x, const Request& req, const RequestSite& site) {
  const auto& web = x.impl.config.web;
  const std::string_view path = target_path(req);
  const bool head = req.method() == http::verb::head;
  if (req.method() != http::verb::get && !head) {
    Response res = plain(http::status::method_not_allowed, req.version(), "method not allowed");
    res.set(http::field::allow, "GET, HEAD");
    x.impl.count("client", 405);
    co_return co_await send_response(x, res, false, req.keep_alive());
  }
  if (x.impl.client_dir.empty()) {
    Response res = plain(http::status::service_unavailable, req.version(),
                         "The web client is not installed: run scripts/fetch-web-client and "
                         "set [web] client_dir.");
    x.impl.count("client", 503);
    co_return co_await send_response(x, res, head, req.keep_alive());
  }
  if (path == web.client_path) {
    // The served domain the browser named, else the first one.
    std::string domain = x.impl.config.server.domains.front();
    const std::string_view host = std::string_view(site.host).substr(0, site.host.rfind(':'));
    for (const auto& d : x.impl.config.server.domains)
      if (beast::iequals(d, host)) domain = d;
    ClientSettings settings{websocket_url(site, web.websocket_path), domain,
                            x.impl.config.muc_domain(domain), web.client_path + "dist/",
                            x.impl.config.c2s.allow_registration};
    Response res = make_response(http::status::ok, req.version(), "text/html; charset=utf-8",
                                 client_page(settings));
    res.set(http::field::cache_control, "no-cache");
    x.impl.count("client", 200);
    co_return co_await send_response(x, res, head, req.keep_alive());
  }
  const auto file = client_file(path.substr(web.client_path.size()));
  std::uint64_t size = 0;
  std::unique_ptr<FileStore::Reader> reader;
  if (file) reader = open_file(x.impl.client_dir + "/" + *file, size);
  if (!reader) {
    Response res = plain(http::status::not_found, req.version(), "not found");
    x.impl.count("client", 404);
    co_return co_await send_response(x, res, head, req.keep_alive());
  }
  Response res{http::status::ok, req.version()};
  res.set(http::field::server, "waddle");
  res.set(http::field::content_type, static_content_type(*file));
  res.set("X-Content-Type-Options", "nosniff");
  res.set(http::field::cache_control, "public, max-age=86400");
  co_return co_await send_file(x, req, std::move(res), *reader, size, "client");
}

asio::awaitable<void> serve(std::shared_ptr<Impl> impl, tcp::socket socket, bool tls) {
  core::ConnectionGate::Ticket ticket;
  const std::string address = net::address_key(socket);
  if (impl->c2s.gate) {
    if (auto refused = impl->c2s.gate->admit(address, std::chrono::steady_clock::now(), ticket)) {
      spdlog::info("web {}: connection refused: {}", address, core::to_string(*refused));
      if (impl->c2s.listener_metrics)
        impl->c2s.listener_metrics->refused("web", core::to_string(*refused));
      net::refuse_connection(socket, tls ? std::string_view{}
                                         : "HTTP/1.1 503 Service Unavailable\r\n"
                                           "Content-Length: 0\r\nConnection: close\r\n\r\n");
      co_return;
    }
  }
  auto stream = std::make_shared<stream::XmlStream>(std::move(socket), impl->tls.c2s(),
                                                    c2s::client_stream_limits(impl->config));
  Registration registration(*impl, *stream);
  // One deadline for the TLS handshake, each request's header, and the idle time between
  // requests; when it passes the connection is closed (pending reads end).
  asio::steady_timer deadline(stream->executor());
  const std::chrono::steady_clock::duration timeout = impl->config.c2s.limits.handshake_timeout;
  auto arm = [&](std::chrono::steady_clock::duration after) {
    deadline.expires_after(after);
    deadline.async_wait([weak = std::weak_ptr<stream::XmlStream>(stream)](auto ec) {
      if (ec) return;
      if (auto s = weak.lock()) s->close();
    });
  };
  arm(timeout);
  if (tls && !co_await stream->server_handshake()) {
    spdlog::debug("web {}: TLS handshake failed: {}", stream->remote_address(),
                  stream->tls_error());
    stream->close();
    co_return;
  }
  std::string in;  // bytes read and not yet taken by the parser
  for (;;) {
    http::request_parser<http::empty_body> parser;
    parser.header_limit(kMaxHeader);
    parser.body_limit(boost::none);  // bodies are read by their handlers, which bound them
    parser.eager(false);
    boost::system::error_code ec;
    arm(timeout);
    while (!parser.is_header_done()) {
      if (!in.empty()) {
        const std::size_t n = parser.put(asio::buffer(in), ec);
        in.erase(0, n);
        if (ec == http::error::need_more) {
          ec = {};
          if (n > 0) continue;
        } else if (ec) {
          break;
        } else {
          continue;
        }
      }
      const std::string_view data = co_await stream->read_some();
      if (data.empty() || impl->stopped) {
        stream->close();
        co_return;
      }
      in.append(data);
    }
    Response res;
    bool head = false;
    bool keep_alive = false;
    if (ec) {
      res = plain(*status_for_read_error(ec), 11, obsolete_reason(*status_for_read_error(ec)));
      impl->count("other", res.result_int());
    } else if (impl->upload && target_path(parser.get()).starts_with(UploadService::kPathPrefix)) {
      Exchange x{*impl, *stream, in, arm, timeout};
      if (!co_await serve_upload(x, parser)) break;
      continue;
    } else if (!parser.is_done()) {
      // A request with a body: only uploads take one.
      res = plain(http::status::payload_too_large, parser.get().version(),
                  "request bodies are not accepted here");
      impl->count("other", res.result_int());
    } else {
      const Request& req = parser.get();
      const RequestSite site = site_of(*impl, req, tls);
      if (beast::websocket::is_upgrade(req) &&
          target_path(req) == impl->config.web.websocket_path) {
        if (auto refusal = refuse_upgrade(*impl, req, site)) {
          spdlog::info("web {}: WebSocket upgrade refused ({}), origin '{}'",
                       stream->remote_address(), refusal->second,
                       std::string_view(req[http::field::origin]));
          impl->upgrade(refusal->second);
          res = std::move(refusal->first);
          impl->count("websocket", res.result_int());
        } else {
          http::response<http::empty_body> up{http::status::switching_protocols, req.version()};
          up.set(http::field::server, "waddle");
          up.set(http::field::upgrade, "websocket");
          up.set(http::field::connection, "Upgrade");
          up.set(http::field::sec_websocket_accept,
                 websocket_accept(req[http::field::sec_websocket_key]));
          up.set(http::field::sec_websocket_protocol, "xmpp");
          std::ostringstream os;
          os << up;
          stream->send(std::move(os).str());
          deadline.cancel();
          registration.release();
          impl->upgrade("ok");
          impl->count("websocket", 101);
          spdlog::debug("web {}: WebSocket upgrade ({})", stream->remote_address(),
                        stream->tls_description());
          stream->use_websocket(std::move(in));
          c2s::start_websocket_session(
              impl->c2s, std::move(stream), std::move(ticket),
              std::make_shared<LiveSession>(impl->metrics ? &impl->metrics->websocket_sessions
                                                          : nullptr));
          co_return;
        }
      } else if (!impl->config.web.client_path.empty() &&
                 target_path(req).starts_with(impl->config.web.client_path)) {
        Exchange x{*impl, *stream, in, arm, timeout};
        if (!co_await serve_client(x, req, site)) break;
        continue;
      } else if (!impl->config.web.client_path.empty() && target_path(req) == "/" &&
                 (req.method() == http::verb::get || req.method() == http::verb::head)) {
        res = plain(http::status::found, req.version(),
                    "The chat is at " + impl->config.web.client_path);
        res.set(http::field::location, impl->config.web.client_path);
        impl->count("client", 302);
      } else {
        res = answer(*impl, req, site, head);
      }
      keep_alive = req.keep_alive();
    }
    res.keep_alive(keep_alive);
    stream->send(wire(res, head));
    co_await stream->flush();
    if (!keep_alive || stream->closed() || impl->stopped) break;
  }
  stream->close();
}

asio::awaitable<void> accept_loop(std::shared_ptr<Impl> impl, tcp::acceptor& acceptor, bool tls) {
  asio::steady_timer backoff(impl->io);
  while (!impl->stopped) {
    auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
    if (impl->stopped || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      spdlog::warn("web: accept failed: {}", ec.message());
      backoff.expires_after(std::chrono::milliseconds(100));
      co_await backoff.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    if (impl->connections.size() >= kMaxConnections) {
      boost::system::error_code ignored;
      socket.close(ignored);
      continue;
    }
    net::spawn_logged(impl->io.get_executor(), serve(impl, std::move(socket), tls),
                      "web connection");
  }
}

}  // namespace

WebServer::WebServer(asio::io_context& io, const core::Config& config, net::TlsContexts& tls,
                     c2s::C2sContext& c2s, metrics::WebMetrics* metrics)
    : impl_(std::make_shared<Impl>(io, config, tls, c2s, metrics)) {}

WebServer::~WebServer() {
  stop();
}

im::UploadSlots* WebServer::upload() {
  return impl_->upload.get();
}

asio::awaitable<void> cleanup_loop(std::shared_ptr<WebServer::Impl> impl) {
  while (!impl->stopped && impl->upload) {
    impl->cleanup_timer->expires_after(impl->config.upload.cleanup_interval);
    auto [ec] = co_await impl->cleanup_timer->async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec || impl->stopped) co_return;
    impl->upload->cleanup();
  }
}

void WebServer::start() {
  const auto& web = impl_->config.web;
  if (!web.enabled || impl_->stopped || !impl_->acceptors.empty()) return;
  if (!web.client_path.empty()) {
    std::error_code ec;
    std::string dir = web.client_dir;
    if (dir.empty())
      dir = (std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() / "web-client")
                .string();
    if (std::filesystem::exists(std::filesystem::path(dir) / "dist" / "converse.min.js", ec)) {
      impl_->client_dir = dir;
      spdlog::info("web client (Converse.js) at {} from {}", web.client_path, dir);
    } else {
      spdlog::warn("web client files not found in {}: {} answers 503 (scripts/fetch-web-client)",
                   dir, web.client_path);
    }
  }
  if (impl_->config.upload.enabled && !impl_->upload) {
    impl_->upload = std::make_unique<UploadService>(
        impl_->config, std::make_unique<DiskFileStore>(impl_->config.upload_path()),
        [] { return core::unix_now(); }, impl_->metrics);
    impl_->cleanup_timer = std::make_unique<asio::steady_timer>(impl_->io);
    net::spawn_logged(impl_->io.get_executor(), cleanup_loop(impl_), "upload cleanup");
    spdlog::info("file uploads in {} ({} files, {} bytes)", impl_->config.upload_path(),
                 impl_->upload->files(), impl_->upload->stored_bytes());
  }
  if (web.port != 0) {
    for (auto& acc : net::listen_all(impl_->io, impl_->config.server.listen, web.port)) {
      auto ep = acc->local_endpoint();
      spdlog::info("listening for HTTPS (WebSocket {}) on {} port {}", web.websocket_path,
                   ep.address().to_string(), ep.port());
      impl_->acceptors.emplace_back(std::move(acc), true);
    }
  }
  if (web.plain_port != 0) {
    for (auto& acc : net::listen_all(impl_->io, {web.plain_address}, web.plain_port)) {
      spdlog::info("listening for plain HTTP (WebSocket {}) on {} port {}", web.websocket_path,
                   web.plain_address, web.plain_port);
      impl_->acceptors.emplace_back(std::move(acc), false);
    }
  }
  for (auto& [acc, tls] : impl_->acceptors)
    net::spawn_logged(impl_->io.get_executor(), accept_loop(impl_, *acc, tls), "web accept loop");
}

void WebServer::stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  boost::system::error_code ignored;
  for (auto& [acc, tls] : impl_->acceptors) acc->close(ignored);
  if (impl_->cleanup_timer) impl_->cleanup_timer->cancel();
  std::vector<stream::XmlStream*> open(impl_->connections.begin(), impl_->connections.end());
  for (auto* s : open) s->close();
}

}  // namespace waddle::web
