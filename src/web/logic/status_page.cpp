// The status page's HTML: plain tables, inline SVG charts, no scripts.
#include "web/logic/status_page.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/timestamp.h"
#include "xml/element.h"

namespace waddle::web {

namespace {

std::string esc(std::string_view s) {
  std::string out;
  xml::escape(out, s);
  return out;
}

std::string ago(std::int64_t now, std::int64_t t) {
  const std::int64_t d = std::max<std::int64_t>(0, now - t);
  if (d < 120) return fmt::format("{} s ago", d);
  if (d < 7200) return fmt::format("{} min ago", d / 60);
  if (d < 172800) return fmt::format("{} h ago", d / 3600);
  return fmt::format("{} days ago", d / 86400);
}

std::string rate(double r) {
  if (r == 0) return "0";
  if (r < 10) return fmt::format("{:.2f}", r);
  return fmt::format("{:.0f}", r);
}

const char* kStyle = R"(
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:75em}
h1{font-size:1.4em;margin-bottom:.2em} h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;width:100%} th,td{text-align:left;padding:.3em .6em;
border-bottom:1px solid #ddd;vertical-align:middle} th{background:#f4f4f4}
.ok{color:#186a2c;font-weight:600} .failing{color:#b00020;font-weight:600}
.idle{color:#666} .muted{color:#666} li{margin:.2em 0} code{font-size:.95em}
svg.chart{display:block}
)";

}  // namespace

void TrafficHistory::sample(std::int64_t now, std::map<std::string, Totals> totals) {
  samples_.emplace_back(now, std::move(totals));
  while (samples_.size() > kSamples) samples_.pop_front();
}

TrafficHistory::Series TrafficHistory::series(const std::string& domain) const {
  Series s;
  auto at = [&](std::size_t i) {
    auto it = samples_[i].second.find(domain);
    return it == samples_[i].second.end() ? Totals{} : it->second;
  };
  for (std::size_t i = 1; i < samples_.size(); ++i) {
    const Totals a = at(i - 1), b = at(i);
    // A counter never goes down; a domain that appears later starts from zero.
    s.sent.push_back(std::max(0.0, b.sent - a.sent));
    s.received.push_back(std::max(0.0, b.received - a.received));
    s.errors.push_back(std::max(0.0, b.errors - a.errors));
  }
  return s;
}

std::int64_t TrafficHistory::interval() const {
  if (samples_.size() < 2) return 0;
  return samples_.back().first - samples_[samples_.size() - 2].first;
}

TrafficHistory::Totals TrafficHistory::rate(const std::string& domain) const {
  const std::int64_t dt = interval();
  if (dt <= 0) return {};
  const Series s = series(domain);
  return {s.sent.back() / static_cast<double>(dt), s.received.back() / static_cast<double>(dt),
          s.errors.back() / static_cast<double>(dt)};
}

TrafficHistory::Totals TrafficHistory::window(const std::string& domain) const {
  Totals t;
  const Series s = series(domain);
  for (double v : s.sent) t.sent += v;
  for (double v : s.received) t.received += v;
  for (double v : s.errors) t.errors += v;
  return t;
}

std::string sparkline(const std::vector<double>& a, const std::vector<double>& b,
                      const std::vector<double>& errors, int width, int height) {
  double top = 1;
  for (const auto* v : {&a, &b, &errors})
    for (double x : *v) top = std::max(top, x);
  const std::size_t n = std::max({a.size(), b.size(), errors.size()});
  std::string out = fmt::format(
      "<svg class=\"chart\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" role=\"img\">"
      "<rect width=\"{}\" height=\"{}\" fill=\"#fafafa\" stroke=\"#ddd\"/>",
      width, height, width, height, width, height);
  auto line = [&](const std::vector<double>& v, const char* colour) {
    if (v.empty()) return;
    std::string points;
    for (std::size_t i = 0; i < v.size(); ++i) {
      const double x = n <= 1 ? width : static_cast<double>(i) * (width - 2) / (n - 1) + 1;
      const double y = height - 1 - v[i] / top * (height - 2);
      points += fmt::format("{:.1f},{:.1f} ", x, y);
    }
    out += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>",
                       colour, points);
  };
  line(a, "#1f5fbf");
  line(b, "#2e9e4f");
  line(errors, "#d0021b");
  out += "</svg>";
  return out;
}

std::string render_status(const StatusData& d) {
  std::string h;
  h += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  h += "<meta http-equiv=\"refresh\" content=\"30\">\n";
  h += "<title>Waddle status</title>\n<style>";
  h += kStyle;
  h += "</style>\n</head>\n<body>\n<h1>Waddle status</h1>\n";
  std::string domains;
  for (const auto& dom : d.local_domains) domains += (domains.empty() ? "" : ", ") + esc(dom);
  h += fmt::format(
      "<p class=\"muted\">Waddle {} &middot; serving {} &middot; up since {} ({}) &middot; "
      "{} client sessions ({} over WebSocket) &middot; page of {}, refreshed every 30 s</p>\n",
      esc(d.version), domains, core::format_timestamp(d.started), ago(d.now, d.started),
      d.client_sessions, d.websocket_sessions, core::format_timestamp(d.now));

  // Federation at a glance: one row per remote domain.
  h += "<h2>Federation by domain</h2>\n";
  if (d.domains.empty()) {
    h += "<p class=\"muted\">No remote domain seen yet.</p>\n";
  } else {
    h += "<table id=\"domains\">\n<tr><th>Domain</th><th>State</th><th>Queued</th>"
         "<th>Sent/s</th><th>Received/s</th><th>Errors (hour)</th>"
         "<th>Last hour: <span style=\"color:#1f5fbf\">sent</span>, "
         "<span style=\"color:#2e9e4f\">received</span>, "
         "<span style=\"color:#d0021b\">errors</span></th></tr>\n";
    for (const auto& s : d.domains) {
      std::string state = "<span class=\"idle\">idle</span>";
      if (s.connected)
        state = "<span class=\"ok\">connected</span>";
      else if (s.last_failure != 0)
        state = "<span class=\"failing\">failing</span> <span class=\"muted\">(" +
                ago(d.now, s.last_failure) + ")</span>";
      h += fmt::format(
          "<tr data-domain=\"{}\"><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td>"
          "<td>{}</td><td>{}</td><td>{}</td></tr>\n",
          esc(s.domain), esc(s.domain), state, s.queue, rate(s.rate.sent), rate(s.rate.received),
          s.hour.errors, sparkline(s.series.sent, s.series.received, s.series.errors, 240, 36));
    }
    h += "</table>\n";
  }

  h += "<h2>Server-to-server links</h2>\n";
  if (d.links.empty()) {
    h += "<p class=\"muted\">No server-to-server stream is open.</p>\n";
  } else {
    h += "<table id=\"links\">\n<tr><th>Domain</th><th>Direction</th><th>Streams</th>"
         "<th>Authenticated with</th><th>TLS</th><th>Since</th></tr>\n";
    for (const auto& l : d.links) {
      h += fmt::format(
          "<tr data-domain=\"{}\" data-direction=\"{}\"><td><code>{}</code></td><td>{}</td>"
          "<td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
          esc(l.domain), esc(l.direction), esc(l.domain),
          l.direction == "in" ? "inbound" : "outbound", l.streams,
          l.method.empty() ? "&ndash;" : esc(l.method), l.tls.empty() ? "&ndash;" : esc(l.tls),
          l.since ? core::format_timestamp(l.since) : "&ndash;");
    }
    h += "</table>\n";
  }

  h += "<h2>Recent failures</h2>\n";
  if (d.failures.empty()) {
    h += "<p class=\"muted\">None since the server started.</p>\n<ul id=\"failures\"></ul>\n";
  } else {
    h += "<ul id=\"failures\">\n";
    for (auto it = d.failures.rbegin(); it != d.failures.rend(); ++it) {
      h += fmt::format("<li data-domain=\"{}\">{} <code>{}</code> <strong>{}</strong>: {}</li>\n",
                       esc(it->domain), core::format_timestamp(it->at), esc(it->domain),
                       esc(it->kind), esc(it->text));
    }
    h += "</ul>\n";
  }

  h += "<h2>Rooms with occupants from other servers</h2>\n";
  if (d.rooms.empty()) {
    h += "<p class=\"muted\">None.</p>\n";
  } else {
    h += "<table id=\"rooms\">\n<tr><th>Room</th><th>Local occupants</th>"
         "<th>Remote occupants</th><th>Their servers</th></tr>\n";
    for (const auto& r : d.rooms) {
      std::string servers;
      for (const auto& s : r.servers) servers += (servers.empty() ? "" : ", ") + esc(s);
      h += fmt::format(
          "<tr data-room=\"{}\"><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
          esc(r.room), esc(r.room), r.local, r.remote, servers);
    }
    h += "</table>\n";
  }
  h += "<p class=\"muted\">Counters: <a href=\"/metrics\">/metrics</a> (Prometheus).</p>\n";
  h += "</body>\n</html>\n";
  return h;
}

}  // namespace waddle::web
