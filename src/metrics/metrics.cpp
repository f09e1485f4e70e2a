// Metrics registry and Prometheus text exposition format 0.0.4 (prometheus.io, "Exposition
// formats"); the S2S specification's federation metrics ("Metrics") and the c2s metrics.
#include "metrics/metrics.h"

#include "core/timestamp.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace waddle::metrics {

namespace {

bool is_metric_name(std::string_view s) {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool is_label_name(std::string_view s) {
  if (s.empty() || s.starts_with("__")) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// Length of the valid UTF-8 sequence at s[i], or 0 (RFC 3629: no overlongs, no surrogates,
// nothing above U+10FFFF).
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  if (c < 0x80) return 1;
  std::size_t len;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < len; ++k)
    if (b(i + k) < 0x80 || b(i + k) > 0xBF) return 0;
  return len;
}

void append_escaped(std::string& out, std::string_view s, bool quote) {
  for (std::size_t i = 0; i < s.size();) {
    std::size_t n = utf8_sequence(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
      continue;
    }
    char c = s[i];
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out.append(s.data() + i, n);
    }
    i += n;
  }
}

void append_uint(std::string& out, std::uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_labels(std::string& out, const std::vector<std::string>& names,
                   const std::vector<std::string>& values, std::string_view extra_name = {},
                   std::string_view extra_value = {}) {
  if (names.empty() && extra_name.empty()) return;
  out += '{';
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i) out += ',';
    out += names[i];
    out += "=\"";
    append_label_value(out, values[i]);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!names.empty()) out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

}  // namespace

void append_label_value(std::string& out, std::string_view value) {
  append_escaped(out, value, true);
}

void append_help(std::string& out, std::string_view help) {
  append_escaped(out, help, false);
}

void append_value(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else if (v == std::floor(v) && std::fabs(v) < 9007199254740992.0) {  // 2^53: exact
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, static_cast<std::int64_t>(v));
    out.append(buf, r.ptr);
  } else {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
  }
}

// --- Histogram ---

Histogram::Histogram(std::span<const double> bounds)
    : bounds_(bounds), counts_(bounds.size() + 1, 0) {}

void Histogram::observe(double v) {
  if (std::isnan(v)) return;
  auto i = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) -
                                    bounds_.begin());  // first bound >= v: "le"
  ++counts_[i];
  ++count_;
  sum_ += v;
}

std::uint64_t Histogram::cumulative(std::size_t i) const {
  std::uint64_t total = 0;
  for (std::size_t k = 0; k <= i && k < counts_.size(); ++k) total += counts_[k];
  return total;
}

// --- FamilyBase ---

FamilyBase::FamilyBase(FamilySpec spec) : spec_(std::move(spec)) {
  if (!is_metric_name(spec_.name))
    throw std::invalid_argument("invalid metric name \"" + spec_.name + "\"");
  for (std::size_t i = 0; i < spec_.labels.size(); ++i) {
    const auto& l = spec_.labels[i];
    if (!is_label_name(l))
      throw std::invalid_argument(spec_.name + ": invalid label name \"" + l + "\"");
    if (std::find(spec_.labels.begin(), spec_.labels.begin() + static_cast<long>(i), l) !=
        spec_.labels.begin() + static_cast<long>(i))
      throw std::invalid_argument(spec_.name + ": duplicate label \"" + l + "\"");
    if (l == spec_.capped_label) capped_index_ = static_cast<int>(i);
  }
  if (!spec_.capped_label.empty() && capped_index_ < 0)
    throw std::invalid_argument(spec_.name + ": capped label \"" + spec_.capped_label +
                                "\" is not declared");
}

void FamilyBase::make_key(std::span<const std::string_view> values) {
  assert(values.size() == spec_.labels.size() && "one value per declared label");
  value_scratch_.assign(values.begin(), values.end());
  value_scratch_.resize(spec_.labels.size());  // tolerate a wrong arity in release builds
  if (capped_index_ >= 0) {
    auto& v = value_scratch_[static_cast<std::size_t>(capped_index_)];
    if (v != kOtherValue && !admitted_.contains(v)) {
      if (admitted_.size() < spec_.max_values) {
        admitted_.emplace(v);
      } else {
        v = kOtherValue;
        cap_reached_ = true;
      }
    }
  }
  // Length-prefixed values: unambiguous whatever bytes the values hold.
  key_scratch_.clear();
  for (auto v : value_scratch_) {
    auto n = static_cast<std::uint32_t>(v.size());
    key_scratch_.append(reinterpret_cast<const char*>(&n), sizeof n);
    key_scratch_.append(v);
  }
}

void FamilyBase::render_header(std::string& out, std::string_view type) const {
  out += "# HELP ";
  out += spec_.name;
  out += ' ';
  append_help(out, spec_.help);
  out += "\n# TYPE ";
  out += spec_.name;
  out += ' ';
  out += type;
  out += '\n';
}

// --- Family ---

template <class M>
Family<M>::Family(FamilySpec spec, std::vector<double> bounds)
    : FamilyBase(std::move(spec)), bounds_(std::move(bounds)) {
  if (spec_.labels.empty()) get({});  // an unlabelled metric exists from the start, at 0
}

template <class M>
M& Family<M>::get(std::span<const std::string_view> values) {
  make_key(values);
  auto it = series_.find(std::string_view(key_scratch_));
  if (it == series_.end()) {
    std::vector<std::string> stored(value_scratch_.begin(), value_scratch_.end());
    if constexpr (std::is_same_v<M, Histogram>) {
      it = series_.emplace(key_scratch_, Series{std::move(stored), Histogram(bounds_)}).first;
    } else {
      it = series_.emplace(key_scratch_, Series{std::move(stored), M{}}).first;
    }
  }
  return it->second.metric;
}

template <class M>
void Family<M>::render(std::string& out) const {
  if constexpr (std::is_same_v<M, Counter>) {
    render_header(out, "counter");
  } else if constexpr (std::is_same_v<M, Gauge>) {
    render_header(out, "gauge");
  } else {
    render_header(out, "histogram");
  }
  std::vector<const Series*> sorted;
  sorted.reserve(series_.size());
  for (const auto& [key, s] : series_) sorted.push_back(&s);
  std::sort(sorted.begin(), sorted.end(),
            [](const Series* a, const Series* b) { return a->values < b->values; });

  const auto& name = spec_.name;
  for (const Series* s : sorted) {
    if constexpr (std::is_same_v<M, Histogram>) {
      const Histogram& h = s->metric;
      std::string le;
      for (std::size_t i = 0; i <= bounds_.size(); ++i) {
        le.clear();
        if (i < bounds_.size()) {
          append_value(le, bounds_[i]);
        } else {
          le = "+Inf";
        }
        out += name;
        out += "_bucket";
        append_labels(out, spec_.labels, s->values, "le", le);
        out += ' ';
        append_uint(out, h.cumulative(i));
        out += '\n';
      }
      out += name;
      out += "_sum";
      append_labels(out, spec_.labels, s->values);
      out += ' ';
      append_value(out, h.sum());
      out += '\n';
      out += name;
      out += "_count";
      append_labels(out, spec_.labels, s->values);
      out += ' ';
      append_uint(out, h.count());
      out += '\n';
    } else {
      out += name;
      append_labels(out, spec_.labels, s->values);
      out += ' ';
      if constexpr (std::is_same_v<M, Counter>) {
        append_uint(out, s->metric.value());
      } else {
        append_value(out, s->metric.value());
      }
      out += '\n';
    }
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

// --- Registry ---

template <class F, class... A>
F& Registry::add(FamilySpec spec, A&&... args) {
  for (const auto& f : families_)
    if (f->name() == spec.name)
      throw std::invalid_argument("metric \"" + spec.name + "\" declared twice");
  auto family = std::make_unique<F>(std::move(spec), std::forward<A>(args)...);
  F& ref = *family;
  families_.push_back(std::move(family));
  return ref;
}

CounterFamily& Registry::counter_family(FamilySpec spec) {
  if (!spec.name.ends_with("_total"))
    throw std::invalid_argument("counter \"" + spec.name + "\" must end in _total");
  return add<CounterFamily>(std::move(spec));
}

GaugeFamily& Registry::gauge_family(FamilySpec spec) {
  return add<GaugeFamily>(std::move(spec));
}

HistogramFamily& Registry::histogram_family(FamilySpec spec, std::span<const double> bounds) {
  for (const auto& l : spec.labels)
    if (l == "le") throw std::invalid_argument(spec.name + ": label \"le\" is reserved");
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1]))
      throw std::invalid_argument(spec.name + ": bucket bounds must be finite and increasing");
  }
  return add<HistogramFamily>(std::move(spec), std::vector<double>(bounds.begin(), bounds.end()));
}

std::string Registry::render() const {
  std::string out;
  out.reserve(4096);
  for (const auto& f : families_) f->render(out);
  return out;
}

// --- module metrics ---

std::string_view to_string(Direction d) {
  return d == Direction::kIn ? "in" : "out";
}

std::string_view to_string(S2sError e) {
  // In the order of the enumerators.
  static constexpr std::array<std::string_view, 9> kNames{
      "dns",    "connection_refused", "tls",    "dialback", "stream_error", "routing",
      "policy", "rate_limit",         "timeout"};
  const auto i = static_cast<std::size_t>(e);
  return i < kNames.size() ? kNames[i] : "unknown";
}

std::string_view to_string(AuthMethod m) {
  // In the order of the enumerators.
  static constexpr std::array<std::string_view, 3> kNames{"sasl_external", "dialback",
                                                          "dialback_multiplexed"};
  const auto i = static_cast<std::size_t>(m);
  return i < kNames.size() ? kNames[i] : "unknown";
}

std::string_view to_string(CloseReason r) {
  // In the order of the enumerators.
  static constexpr std::array<std::string_view, 7> kNames{
      "peer", "idle", "ping_timeout", "policy", "rate_limit", "shutdown", "error"};
  const auto i = static_cast<std::size_t>(r);
  return i < kNames.size() ? kNames[i] : "unknown";
}

namespace {
FamilySpec by_domain(std::string name, std::string help, std::vector<std::string> labels,
                     std::size_t max_domains) {
  return FamilySpec{.name = std::move(name),
                    .help = std::move(help),
                    .labels = std::move(labels),
                    .capped_label = "domain",
                    .max_values = max_domains};
}
}  // namespace

S2sMetrics::S2sMetrics(Registry& r, std::size_t max_domains)
    : max_domains_(max_domains),
      connections_active(r.gauge_family(by_domain("waddle_s2s_connections_active",
                                                  "Open server-to-server streams.",
                                                  {"domain", "direction"}, max_domains))),
      connections_total(r.counter_family(by_domain("waddle_s2s_connections_total",
                                                   "Server-to-server streams established.",
                                                   {"domain", "direction"}, max_domains))),
      stanzas_sent(
          r.counter_family(by_domain("waddle_s2s_stanzas_sent_total",
                                     "Stanzas sent to remote servers.", {"domain"}, max_domains))),
      stanzas_received(r.counter_family(by_domain("waddle_s2s_stanzas_received_total",
                                                  "Stanzas accepted from remote servers.",
                                                  {"domain"}, max_domains))),
      errors(r.counter_family(by_domain("waddle_s2s_errors_total",
                                        "Server-to-server failures by kind.", {"domain", "kind"},
                                        max_domains))),
      latency(r.histogram_family(by_domain("waddle_s2s_latency_seconds",
                                           "Round-trip time of XEP-0199 pings to remote servers.",
                                           {"domain"}, max_domains),
                                 kLatencyBuckets)),
      queue(r.gauge_family(by_domain("waddle_s2s_queue_stanzas",
                                     "Stanzas waiting for an outbound stream to authenticate.",
                                     {"domain"}, max_domains))),
      bounces(r.counter_family(by_domain("waddle_s2s_bounced_total",
                                         "Stanzas returned to their sender with an error.",
                                         {"domain", "condition"}, max_domains))),
      authentications(r.counter_family(
          by_domain("waddle_s2s_authenticated_total",
                    "Domain pairs authenticated on server-to-server streams, by method.",
                    {"domain", "direction", "method"}, max_domains))),
      dialback_verifies(r.counter_family(
          by_domain("waddle_s2s_dialback_verify_total",
                    "Dialback keys checked for remote servers that asked (authoritative role).",
                    {"domain", "result"}, max_domains))),
      streams_closed(r.counter_family(by_domain("waddle_s2s_streams_closed_total",
                                                "Server-to-server streams closed, by reason.",
                                                {"domain", "direction", "reason"}, max_domains))),
      sm_streams(r.counter_family(
          by_domain("waddle_s2s_stream_management_total",
                    "Server-to-server streams with stream management (XEP-0198) enabled.",
                    {"domain", "direction"}, max_domains))),
      unacked_stanzas(r.gauge_family(
          by_domain("waddle_s2s_unacked_stanzas",
                    "Stanzas written to remote servers and not acknowledged yet (XEP-0198).",
                    {"domain"}, max_domains))),
      resends(r.counter_family(
          by_domain("waddle_s2s_resent_total",
                    "Unacknowledged stanzas of an ended stream sent again on the next one.",
                    {"domain"}, max_domains))),
      paced_total(r.counter_family(
          by_domain("waddle_s2s_paced_total",
                    "Times reading from a remote domain began to be slowed down to its stanza "
                    "or byte rate (pacing; nothing is dropped).",
                    {"domain"}, max_domains))),
      paced_time(r.counter_family(
          by_domain("waddle_s2s_paced_seconds_total",
                    "Whole seconds during which reading from a remote domain was slowed down to "
                    "its stanza or byte rate.",
                    {"domain"}, max_domains))),
      held_back_total(r.counter_family(
          by_domain("waddle_s2s_held_back_total",
                    "Times an inbound stream from a remote domain stopped being read because "
                    "what it sent filled the queue of a link still being set up (queue_size; "
                    "nothing is dropped).",
                    {"domain"}, max_domains))),
      write_limits(r.counter_family(
          by_domain("waddle_s2s_write_limit_total",
                    "Server-to-server streams dropped because the peer did not read what was "
                    "written (s2s.max_write_queue, s2s.write_stall_timeout) or did not "
                    "acknowledge it (s2s.max_unacked); outbound links fail over.",
                    {"domain", "direction", "reason"}, max_domains))) {}

C2sMetrics::C2sMetrics(Registry& r)
    : write_limits(r.counter_family({.name = "waddle_c2s_write_limit_total",
                                     .help = "Client sessions closed because the client did not "
                                             "read what was written to it.",
                                     .labels = {"reason"}})),
      unwritten_stanzas(r.counter_family(
          {.name = "waddle_c2s_unwritten_stanzas_total",
           .help = "Stanzas queued for a client session that ended before they were written, "
                   "by what became of them.",
           .labels = {"outcome"}})),
      sm_events(r.counter_family({.name = "waddle_c2s_stream_management_total",
                                  .help = "Stream management (XEP-0198) events of client sessions.",
                                  .labels = {"event"}})),
      csi_stanzas(r.counter_family(
          {.name = "waddle_c2s_csi_stanzas_total",
           .help = "Presence and chat states held back for inactive clients (XEP-0352), and "
                   "held ones replaced by newer ones from the same sender.",
           .labels = {"outcome"}})),
      archive_messages(r.counter_family(
          {.name = "waddle_mam_messages_total",
           .help = "Messages of account archives (XEP-0313), by what became of them.",
           .labels = {"outcome"}})),
      archive_queries(r.counter_family({.name = "waddle_mam_queries_total",
                                        .help = "Archive queries (XEP-0313) answered.",
                                        .labels = {"result"}})),
      room_archive_messages(
          r.counter_family({.name = "waddle_muc_mam_messages_total",
                            .help = "Messages of room archives (XEP-0313), by what became of them.",
                            .labels = {"outcome"}})),
      room_archive_queries(r.counter_family({.name = "waddle_muc_mam_queries_total",
                                             .help = "Room archive queries (XEP-0313) answered.",
                                             .labels = {"result"}})),
      offline_refused(r.counter_family(
          {.name = "waddle_offline_messages_refused_total",
           .help = "Messages for offline storage bounced to their sender: the account's store "
                   "is full, or more than c2s.max_offline_pending waits to be written.",
           .labels = {"reason"}})),
      sessions_active(
          r.gauge_family({.name = "waddle_c2s_sessions_active", .help = "Open client streams."})
              .get({})),
      auth_failures(r.counter_family({.name = "waddle_c2s_auth_failures_total",
                                      .help = "Failed client SASL authentications."})
                        .get({})),
      stanzas_received(r.counter_family({.name = "waddle_c2s_stanzas_received_total",
                                         .help = "Stanzas received from clients."})
                           .get({})),
      archive_paced(
          r.counter_family({.name = "waddle_mam_paced_total",
                            .help = "Messages archived while the storage thread was behind whose "
                                    "source (an inbound server stream, a room) was read more "
                                    "slowly until it caught up."})
              .get({})),
      offline_stored(r.counter_family({.name = "waddle_offline_messages_stored_total",
                                       .help = "Messages stored for offline delivery."})
                         .get({})),
      spam_reports(r.counter_family({.name = "waddle_spam_reports_total",
                                     .help = "Abuse reports sent by users with a block command "
                                             "(XEP-0377), by reason.",
                                     .labels = {"reason"}})),
      blocked_stanzas(r.counter_family({.name = "waddle_blocked_stanzas_total",
                                        .help = "Stanzas stopped by a user's blocklist "
                                                "(XEP-0191): from a blocked JID (inbound) or "
                                                "to one (outbound).",
                                        .labels = {"direction"}})),
      blocklists_cached(r.gauge_family({.name = "waddle_blocklists_cached",
                                        .help = "Blocklists (XEP-0191) kept in memory: one per "
                                                "account with client sessions."})
                            .get({})),
      push_notifications(r.counter_family(
          {.name = "waddle_push_notifications_total",
           .help = "Push notifications (XEP-0357) to app servers, by what became of them.",
           .labels = {"outcome"}})),
      push_registrations(r.gauge_family({.name = "waddle_push_registrations",
                                         .help = "Push registrations (XEP-0357) kept in memory: "
                                                 "those of the accounts read since the start."})
                             .get({})),
      caps_queries(r.counter_family(
          {.name = "waddle_caps_queries_total",
           .help = "Entity capabilities (XEP-0115) asked of clients, once per new 'ver': ok "
                   "(kept), mismatch (the answer does not hash to the 'ver'), error.",
           .labels = {"result"}})),
      caps_cached(r.gauge_family({.name = "waddle_caps_cached",
                                  .help = "Entity capabilities hashes (XEP-0115) known, with "
                                          "their features."})
                      .get({})),
      pep_requests(r.counter_family(
          {.name = "waddle_pep_requests_total",
           .help = "PEP requests (XEP-0163) to accounts, by request (publish, retract, items, "
                   "create, configure, delete, purge, invalid) and result (ok, error).",
           .labels = {"request", "result"}})),
      pep_notifications(r.counter_family({.name = "waddle_pep_notifications_total",
                                          .help = "PEP event notifications sent (XEP-0163), "
                                                  "to local and remote resources."})
                            .get({})) {}

ListenerMetrics::ListenerMetrics(Registry& r)
    : refused_total(r.counter_family(
          {.name = "waddle_connections_refused_total",
           .help = "Connections refused when accepted: over the connection rate of their "
                   "address, or over the limits on unauthenticated connections.",
           .labels = {"listener", "reason"}})),
      reloads(r.counter_family(
          {.name = "waddle_reloads_total",
           .help = "Reloads on SIGHUP: of the configuration (policy, limits, log level) and of "
                   "the certificates, by result (ok, failed: what was in use stays).",
           .labels = {"what", "result"}})) {}

MucMetrics::MucMetrics(Registry& r)
    : occupants(r.gauge_family({.name = "waddle_muc_occupants",
                                .help = "Occupants of chat rooms by where their home server "
                                        "is (local, or remote over S2S).",
                                .labels = {"origin"}})),
      credentials(r.counter_family({.name = "waddle_identity_credentials_checked_total",
                                    .help = "Federated identity credentials of remote users "
                                            "checked by the room services.",
                                    .labels = {"result"}})),
      rooms(r.gauge_family({.name = "waddle_muc_rooms", .help = "Chat rooms that exist now."})
                .get({})),
      occupants_local(occupants.get({"local"})),
      occupants_remote(occupants.get({"remote"})),
      credentials_valid(credentials.get({"valid"})),
      credentials_refused(credentials.get({"refused"})) {}

ComponentMetrics::ComponentMetrics(Registry& r)
    : connected(r.gauge_family({.name = "waddle_component_connected",
                                .help = "External components (XEP-0114) connected now: 1 per "
                                        "configured component domain while it is.",
                                .labels = {"domain"}})),
      handshakes(r.counter_family(
          {.name = "waddle_component_handshakes_total",
           .help = "Component handshakes by result: ok, not_authorized (a wrong secret), "
                   "conflict (the component is connected already).",
           .labels = {"domain", "result"}})),
      stanzas(r.counter_family({.name = "waddle_component_stanzas_total",
                                .help = "Stanzas to (out) and from (in) external components.",
                                .labels = {"domain", "direction"}})),
      bounced(
          r.counter_family({.name = "waddle_component_bounced_total",
                            .help = "Stanzas for a component that is not connected, answered with "
                                    "service-unavailable.",
                            .labels = {"domain"}})) {}

void S2sMetrics::authenticated(std::string_view domain, Direction d, AuthMethod m,
                               std::string_view tls) {
  authentications.get({domain, to_string(d), to_string(m)}).inc();
  auto key = std::make_pair(std::string(domain), std::string(to_string(d)));
  auto it = link_notes_.find(key);
  if (it == link_notes_.end()) {
    // Bounded like the labels: one note per domain and direction for max_domains domains.
    if (link_notes_.size() >= 2 * max_domains_) return;
    it = link_notes_.emplace(std::move(key), LinkNote{}).first;
  }
  it->second.method = std::string(to_string(m));
  if (!tls.empty()) it->second.tls = std::string(tls);
  it->second.since = core::unix_now();
}

void S2sMetrics::failure(std::string_view domain, S2sError kind, std::string_view text) {
  error(domain, kind);
  if (recent_failures_.size() >= kRecentFailures) recent_failures_.pop_front();
  recent_failures_.push_back(FailureNote{core::unix_now(), std::string(domain),
                                         std::string(to_string(kind)),
                                         std::string(text.substr(0, 300))});
}

WebMetrics::WebMetrics(Registry& r)
    : requests(r.counter_family(
          {.name = "waddle_http_requests_total",
           .help = "HTTP requests on the web listener by endpoint (websocket, host_meta, other) "
                   "and status code.",
           .labels = {"endpoint", "code"}})),
      upgrades(r.counter_family(
          {.name = "waddle_websocket_upgrades_total",
           .help = "WebSocket upgrade requests by result: ok, origin (a page not allowed), "
                   "protocol (no 'xmpp' subprotocol), version, bad_request, refused "
                   "(connection limits).",
           .labels = {"result"}})),
      websocket_sessions(r.gauge_family({.name = "waddle_websocket_sessions",
                                         .help = "Client connections over WebSocket open now."})
                             .get({})),
      upload_slots(r.counter_family(
          {.name = "waddle_upload_slots_total",
           .help = "Upload slot requests (XEP-0363) by result: ok, too_large, quota, "
                   "not_allowed, bad_request.",
           .labels = {"result"}})),
      upload_puts(r.counter_family(
          {.name = "waddle_upload_puts_total",
           .help = "File uploads (HTTP PUT) by result: ok, refused (an HTTP error answered), "
                   "aborted (the client went away or was too slow), failed (the disk).",
           .labels = {"result"}})),
      upload_bytes(r.counter_family({.name = "waddle_upload_bytes_total",
                                     .help = "Bytes of uploaded files received (in) and served "
                                             "(out).",
                                     .labels = {"direction"}})),
      upload_files(
          r.gauge_family({.name = "waddle_upload_files", .help = "Uploaded files kept now."})
              .get({})),
      upload_stored_bytes(r.gauge_family({.name = "waddle_upload_stored_bytes",
                                          .help = "Bytes of the uploaded files kept now."})
                              .get({})) {}

}  // namespace waddle::metrics
