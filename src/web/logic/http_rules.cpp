// Origins, announced URLs and host-meta.
#include "web/logic/http_rules.h"

#include <algorithm>
#include <cctype>

#include "xml/element.h"

namespace waddle::web {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// The origin a host would have under a scheme ("https://host:port", default port dropped).
std::string origin_for(bool secure, std::string_view host) {
  std::string h = lower(host);
  const std::string_view default_port = secure ? ":443" : ":80";
  if (h.size() > default_port.size() && h.ends_with(default_port) && h.find(']') != h.size() - 1)
    h.resize(h.size() - default_port.size());
  return std::string(secure ? "https://" : "http://") + h;
}

void json_string(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      static const char* hex = "0123456789abcdef";
      out += "\\u00";
      out += hex[(c >> 4) & 0xF];
      out += hex[c & 0xF];
    } else {
      out += c;
    }
  }
  out += '"';
}

}  // namespace

bool valid_host(std::string_view host) {
  if (host.empty() || host.size() > 261) return false;
  std::string_view name = host;
  std::string_view port;
  if (host.front() == '[') {
    const auto close = host.find(']');
    if (close == std::string_view::npos) return false;
    for (char c : host.substr(1, close - 1))
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return false;
    name = host.substr(0, close + 1);
    port = host.substr(close + 1);
    if (!port.empty() && port.front() != ':') return false;
  } else if (const auto colon = host.find(':'); colon != std::string_view::npos) {
    name = host.substr(0, colon);
    port = host.substr(colon);
  }
  if (name.empty()) return false;
  if (name.front() != '[')
    for (char c : name)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') return false;
  if (!port.empty()) {
    port.remove_prefix(1);
    if (port.empty() || port.size() > 5) return false;
    for (char c : port)
      if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

std::optional<std::string> origin_of(std::string_view url) {
  bool secure;
  if (url.starts_with("https://")) {
    secure = true;
    url.remove_prefix(8);
  } else if (url.starts_with("http://")) {
    secure = false;
    url.remove_prefix(7);
  } else {
    return std::nullopt;
  }
  const std::string_view host = url.substr(0, url.find('/'));
  if (!valid_host(host)) return std::nullopt;
  return origin_for(secure, host);
}

bool origin_allowed(std::string_view origin, const RequestSite& site,
                    const std::vector<std::string>& allowed) {
  if (origin.empty()) return true;  // not a browser: origins are a browser's safeguard
  const std::string have = lower(origin);
  if (!allowed.empty()) {
    for (const auto& a : allowed) {
      if (a == "*") return true;
      if (auto o = origin_of(a); o && *o == have) return true;
    }
    return false;
  }
  if (!site.public_url.empty()) {
    if (auto o = origin_of(site.public_url); o && *o == have) return true;
  }
  return !site.host.empty() && origin_for(site.secure, site.host) == have;
}

std::string base_url(const RequestSite& site) {
  if (!site.public_url.empty()) {
    std::string url = site.public_url;
    while (!url.empty() && url.back() == '/') url.pop_back();
    return url;
  }
  return std::string(site.secure ? "https://" : "http://") +
         (site.host.empty() ? std::string("localhost") : lower(site.host));
}

std::string websocket_url(const RequestSite& site, std::string_view path) {
  std::string url = base_url(site);
  if (url.starts_with("https://"))
    url.replace(0, 5, "wss");
  else if (url.starts_with("http://"))
    url.replace(0, 4, "ws");
  return url + std::string(path);
}

std::string host_meta_xrd(std::string_view websocket_url) {
  xml::Element xrd("XRD", "http://docs.oasis-open.org/ns/xri/xrd-1.0");
  xrd.add_child("Link", "http://docs.oasis-open.org/ns/xri/xrd-1.0")
      .set_attr("rel", "urn:xmpp:alt-connections:websocket")
      .set_attr("href", websocket_url);
  return "<?xml version='1.0' encoding='utf-8'?>\n" + xrd.str() + "\n";
}

std::string client_page(const ClientSettings& c) {
  // Every value goes through a JSON string (and "<" is escaped there, so that no value can
  // end the script element).
  auto js = [](std::string_view v) {
    std::string quoted;
    json_string(quoted, v);
    std::string safe;
    for (char ch : quoted) safe += ch == '<' ? std::string("\\u003c") : std::string(1, ch);
    return safe;
  };
  std::string options;
  auto option = [&](std::string_view name, std::string value) {
    options += "  " + std::string(name) + ": " + value + ",\n";
  };
  option("assets_path", js(c.assets));
  option("websocket_url", js(c.websocket_url));
  option("discover_connection_methods", "false");
  // Converse's options for the login and registration forms: a bare user name logs in at
  // this domain, the JID field shows "user@<domain>" as its hint (domain_placeholder), and
  // accounts are registered here.
  option("default_domain", js(c.domain));
  option("domain_placeholder", js(c.domain));
  option("registration_domain", js(c.domain));
  option("allow_registration", c.registration ? "true" : "false");
  if (!c.muc_domain.empty()) {
    option("muc_domain", js(c.muc_domain));
    // Converse asks a public search service on another server (search.jabber.network) for
    // rooms as the user types a room name, unless told of another: this server's room
    // service is asked instead (it answers that it does not search), so nothing leaves the
    // server. (An empty value would do, but Converse 14 then shows no room name field.)
    option("muc_search_service", js(c.muc_domain));
  }
  option("view_mode", js("fullscreen"));
  option("auto_reconnect", "true");
  option("show_client_info", "false");
  return "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
         "<title>Chat</title>\n"
         "<link rel=\"stylesheet\" href=\"" +
         c.assets +
         "converse.min.css\">\n"
         "<script type=\"module\" src=\"" +
         c.assets +
         "converse.min.js\"></script>\n"
         "</head>\n<body class=\"converse-fullscreen\">\n"
         "<noscript>This chat needs JavaScript. Any XMPP client works too.</noscript>\n"
         "<script type=\"module\">\nconverse.initialize({\n" +
         options + "});\n</script>\n</body>\n</html>\n";
}

std::optional<std::string> client_file(std::string_view rest) {
  if (rest.empty() || rest.size() > 512) return std::nullopt;
  std::size_t start = 0;
  while (start <= rest.size()) {
    const auto slash = rest.find('/', start);
    const std::string_view seg = rest.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (seg.empty() || seg.front() == '.') return std::nullopt;
    for (char ch : seg)
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_' && ch != '.')
        return std::nullopt;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return std::string(rest);
}

std::string_view static_content_type(std::string_view path) {
  const auto dot = path.rfind('.');
  const std::string ext = dot == std::string_view::npos ? "" : lower(path.substr(dot + 1));
  if (ext == "js" || ext == "mjs") return "text/javascript; charset=utf-8";
  if (ext == "css") return "text/css; charset=utf-8";
  if (ext == "html") return "text/html; charset=utf-8";
  if (ext == "json") return "application/json";
  if (ext == "wasm") return "application/wasm";
  if (ext == "svg") return "image/svg+xml";
  if (ext == "png") return "image/png";
  if (ext == "jpg" || ext == "jpeg") return "image/jpeg";
  if (ext == "gif") return "image/gif";
  if (ext == "ico") return "image/x-icon";
  if (ext == "woff2") return "font/woff2";
  if (ext == "woff") return "font/woff";
  if (ext == "ttf") return "font/ttf";
  if (ext == "eot") return "application/vnd.ms-fontobject";
  if (ext == "mp3") return "audio/mpeg";
  if (ext == "ogg") return "audio/ogg";
  if (ext == "txt" || ext == "md") return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

std::string host_meta_json(std::string_view websocket_url) {
  std::string out = "{\"links\":[{\"rel\":\"urn:xmpp:alt-connections:websocket\",\"href\":";
  json_string(out, websocket_url);
  out += "}]}\n";
  return out;
}

}  // namespace waddle::web
