// Decisions of the web listener that need no I/O: which browser origins may open a WebSocket,
// the URLs the server announces, and the connection discovery documents (XEP-0156).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace waddle::web {

// Where a request arrived, as the browser sees it.
struct RequestSite {
  bool secure = false;     // https (TLS listener, or X-Forwarded-Proto on the loopback one)
  std::string host;        // the Host header, validated (host[:port]); empty when unusable
  std::string public_url;  // [web] public_url ("https://chat.example.org"), or empty
};

// A Host header worth echoing into URLs: a DNS name, IPv4 or bracketed IPv6, optional port.
bool valid_host(std::string_view host);

// "scheme://host[:port]" of `url`, lower-cased, without a path; nullopt if it is not one.
std::optional<std::string> origin_of(std::string_view url);

// RFC 6455 §10.2: whether a browser page from `origin` may open a WebSocket. No Origin header
// (a client that is not a browser) is allowed. `allowed`: [web] allowed_origins; "*" allows
// any; empty allows the server's own pages only (the request's host, or public_url's origin).
bool origin_allowed(std::string_view origin, const RequestSite& site,
                    const std::vector<std::string>& allowed);

// The base URL of the web listener as the browser sees it ("https://host:5443"), without a
// trailing slash: public_url when configured, else from the request.
std::string base_url(const RequestSite& site);
// The WebSocket endpoint's URL: base_url with ws(s):// and `path`.
std::string websocket_url(const RequestSite& site, std::string_view path);

// XEP-0156 §3: /.well-known/host-meta (XRD) and host-meta.json, naming the WebSocket endpoint.
std::string host_meta_xrd(std::string_view websocket_url);
std::string host_meta_json(std::string_view websocket_url);

// The bundled web client (Converse.js): its page, set up for this server.
struct ClientSettings {
  std::string websocket_url;  // where the page connects (same origin as the page)
  std::string domain;         // users log in as name@domain (or type a whole JID)
  std::string muc_domain;     // rooms, "" when off
  std::string assets;         // URL path of Converse's dist/ folder, with a trailing slash
  bool registration = false;  // XEP-0077 in-band registration offered
};
std::string client_page(const ClientSettings& settings);

// A file of the web client's folder for the path after client_path ("dist/converse.min.js"):
// nullopt unless every segment is a plain name (no "..", no hidden files, no odd characters).
std::optional<std::string> client_file(std::string_view rest);
// The Content-Type a static file is served with, by its extension.
std::string_view static_content_type(std::string_view path);

}  // namespace waddle::web
