// Metrics registry: counters, gauges and histograms with labels, rendered in the Prometheus
// text exposition format 0.0.4; and the per-module metric structs (Envoy style), S2sMetrics for
// the federation metrics of the S2S specification ("Metrics") and C2sMetrics.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace waddle::metrics {

// Threading: a Registry and everything in it belong to one thread, the reactor thread. Nothing
// here locks or uses atomics; lookups, updates and render() must all happen on that thread
// (the HTTP endpoint runs on the same io_context and calls render() there).

// Only goes up. Counts are integers: we count events (or whole seconds), not fractions.
class Counter {
 public:
  void inc(std::uint64_t n = 1) { value_ += n; }
  std::uint64_t value() const { return value_; }

 private:
  std::uint64_t value_ = 0;
};

// Goes up and down. Gauges in a family with a capped label must be changed with inc()/dec()
// only: several values may share the "other" series, and set() would overwrite their sum.
class Gauge {
 public:
  void inc(double n = 1) { value_ += n; }
  void dec(double n = 1) { value_ -= n; }
  void set(double v) { value_ = v; }
  double value() const { return value_; }

 private:
  double value_ = 0;
};

// Fixed upper bounds ("le"), strictly increasing; +Inf is implicit.
class Histogram {
 public:
  explicit Histogram(std::span<const double> bounds);

  // A NaN observation is ignored (it would poison _sum for good).
  void observe(double v);
  void observe(std::chrono::nanoseconds d) { observe(std::chrono::duration<double>(d).count()); }

  std::span<const double> bounds() const { return bounds_; }
  // Cumulative count for bounds()[i]; i == bounds().size() is the +Inf bucket (== count()).
  std::uint64_t cumulative(std::size_t i) const;
  std::uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::span<const double> bounds_;     // owned by the family, stable
  std::vector<std::uint64_t> counts_;  // per bucket, not cumulative; last = above every bound
  std::uint64_t count_ = 0;
  double sum_ = 0;
};

// Buckets for network round trips in seconds, 1 ms to 10 s.
inline constexpr double kLatencyBuckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                             0.25,  0.5,    1,     2.5,  5,     10};

// Label value that takes the place of capped values beyond the cap.
inline constexpr std::string_view kOtherValue = "other";

// How a family is declared. Names follow the Prometheus rules (checked at declaration);
// counters' names end in "_total".
struct FamilySpec {
  std::string name{};
  std::string help{};
  std::vector<std::string> labels{};
  // Label whose distinct values are capped (usually "domain"); empty = no cap. The first
  // max_values distinct values get their own series; later ones are counted under "other".
  // A value keeps its series for the life of the registry, so inc/dec pairs stay balanced.
  std::string capped_label{};
  std::size_t max_values = 0;
};

namespace detail {
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
}  // namespace detail

class FamilyBase {
 public:
  virtual ~FamilyBase() = default;
  FamilyBase(const FamilyBase&) = delete;
  FamilyBase& operator=(const FamilyBase&) = delete;

  const std::string& name() const { return spec_.name; }
  // Number of series (label value combinations) so far.
  virtual std::size_t size() const = 0;
  // True once a capped value has been aggregated into "other" (worth a log line upstream).
  bool cap_reached() const { return cap_reached_; }

  virtual void render(std::string& out) const = 0;

 protected:
  explicit FamilyBase(FamilySpec spec);
  // Applies the cap to `values` and leaves the result in value_scratch_ and its lookup key in
  // key_scratch_.
  void make_key(std::span<const std::string_view> values);
  void render_header(std::string& out, std::string_view type) const;

  FamilySpec spec_;
  int capped_index_ = -1;
  std::unordered_set<std::string, detail::StringHash, std::equal_to<>> admitted_;
  bool cap_reached_ = false;
  std::string key_scratch_;  // reused: a lookup that hits does not allocate
  std::vector<std::string_view> value_scratch_;
};

// All series of one metric. get() finds or creates the series for the label values (one value
// per declared label, in order); the returned reference stays valid as long as the registry,
// so a hot path may keep it. Cost of a hit: one or two hash lookups, no allocation.
template <class M>
class Family final : public FamilyBase {
 public:
  Family(FamilySpec spec, std::vector<double> bounds = {});

  M& get(std::initializer_list<std::string_view> values) {
    return get(std::span<const std::string_view>(values.begin(), values.size()));
  }
  M& get(std::span<const std::string_view> values);

  std::size_t size() const override { return series_.size(); }
  void render(std::string& out) const override;
  // Calls f(label values, metric) for every series (the status page reads them).
  template <class F>
  void for_each(F&& f) const {
    for (const auto& [key, s] : series_) f(s.values, s.metric);
  }

 private:
  struct Series {
    std::vector<std::string> values;
    M metric;
  };
  std::vector<double> bounds_;  // histograms only
  std::unordered_map<std::string, Series, detail::StringHash, std::equal_to<>> series_;
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Declares a family once, at start-up. Throws std::invalid_argument for an invalid or
  // duplicate name, an invalid label name, or a capped label that is not declared.
  CounterFamily& counter_family(FamilySpec spec);
  GaugeFamily& gauge_family(FamilySpec spec);
  // `bounds` strictly increasing and finite; the label "le" is reserved.
  HistogramFamily& histogram_family(FamilySpec spec, std::span<const double> bounds);

  // Prometheus text format 0.0.4: families in declaration order, series sorted by label values.
  // A family without series shows only its HELP and TYPE lines.
  std::string render() const;

 private:
  template <class F, class... A>
  F& add(FamilySpec spec, A&&... args);

  std::vector<std::unique_ptr<FamilyBase>> families_;
};

// Content-Type of render()'s output.
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

// Escaping of the exposition format: label values escape backslash, double quote and line
// feed; HELP text escapes backslash and line feed. Invalid UTF-8 (label values can come from
// the network) becomes U+FFFD so that one bad domain cannot make the whole scrape fail.
void append_label_value(std::string& out, std::string_view value);
void append_help(std::string& out, std::string_view help);
// Sample value: integers without a fraction, otherwise the shortest round-trip form;
// +Inf, -Inf, NaN.
void append_value(std::string& out, double v);

// --- per-module metrics ---

enum class Direction { kIn, kOut };
std::string_view to_string(Direction d);

// The specification's S2SError kinds, plus the failures the pool and policy add.
enum class S2sError {
  kDns,
  kConnectionRefused,
  kTls,
  kDialback,
  kStreamError,
  kRouting,
  kPolicy,
  kRateLimit,
  kTimeout,
};
std::string_view to_string(S2sError e);

// How a (local, remote) pair was authenticated on a stream. kDialbackMultiplexed: with
// dialback on a stream that already carried another authenticated pair (XEP-0220 §2.6).
enum class AuthMethod { kSaslExternal, kDialback, kDialbackMultiplexed };
std::string_view to_string(AuthMethod m);

// Why an S2S stream ended: the peer closed it (closing tag, stream error, end of file), or we
// did, for idleness, an unanswered ping, policy, a rate limit, shutdown, or an error.
enum class CloseReason { kPeer, kIdle, kPingTimeout, kPolicy, kRateLimit, kShutdown, kError };
std::string_view to_string(CloseReason r);

// The domain label of everything a remote server does before it has authenticated a domain
// (a refused stream, a key that did not verify): a claimed name is not a label, or any peer
// could fill the label space with names of its choosing (docs/security.md "Work").
inline constexpr std::string_view kUnauthenticated = "unauthenticated";

// Federation metrics, labelled by authenticated remote domain (capped at max_domains distinct
// domains per family; the rest under domain="other"; kUnauthenticated before authentication).
struct S2sMetrics {
  S2sMetrics(Registry& registry, std::size_t max_domains);

  // A stream counts from the moment it is established (TCP connected / accepted) until closed.
  void connection_opened(std::string_view domain, Direction d) {
    connections_active.get({domain, to_string(d)}).inc();
    connections_total.get({domain, to_string(d)}).inc();
  }
  void connection_closed(std::string_view domain, Direction d) {
    connections_active.get({domain, to_string(d)}).dec();
  }
  // The series counted for every stanza, by domain: a hot path finds them once and keeps
  // them (Family::get's references stay valid).
  Counter& sent(std::string_view domain) { return stanzas_sent.get({domain}); }
  Counter& received(std::string_view domain) { return stanzas_received.get({domain}); }
  Gauge& unacked_of(std::string_view domain) { return unacked_stanzas.get({domain}); }
  void error(std::string_view domain, S2sError kind) {
    errors.get({domain, to_string(kind)}).inc();
  }
  // XEP-0199 ping round trip.
  void ping_rtt(std::string_view domain, std::chrono::nanoseconds rtt) {
    latency.get({domain}).observe(rtt);
  }
  void queued(std::string_view domain, std::size_t n = 1) {
    queue.get({domain}).inc(static_cast<double>(n));
  }
  void dequeued(std::string_view domain, std::size_t n = 1) {
    queue.get({domain}).dec(static_cast<double>(n));
  }
  // `condition` is the RFC 6120 stanza error condition of the bounce (remote-server-not-found).
  void bounced(std::string_view domain, std::string_view condition) {
    bounces.get({domain, condition}).inc();
  }
  // A stream authenticated `domain`; `tls` describes its encryption ("TLSv1.3 ..."). The
  // status page shows the last of each domain and direction.
  void authenticated(std::string_view domain, Direction d, AuthMethod m, std::string_view tls = {});
  // A failure with its reason: counted (errors) and kept among the recent ones.
  void failure(std::string_view domain, S2sError kind, std::string_view text);

  // For the status page (not exported to Prometheus).
  struct LinkNote {
    std::string method;  // to_string(AuthMethod)
    std::string tls;
    std::int64_t since = 0;  // Unix seconds
  };
  struct FailureNote {
    std::int64_t at = 0;  // Unix seconds
    std::string domain;
    std::string kind;
    std::string text;
  };
  static constexpr std::size_t kRecentFailures = 50;
  // By (domain, direction); at most max_domains domains are noted.
  const std::map<std::pair<std::string, std::string>, LinkNote>& link_notes() const {
    return link_notes_;
  }
  const std::deque<FailureNote>& recent_failures() const { return recent_failures_; }
  // Authoritative dialback role: a db:verify from `domain` (the server that asked) answered.
  void dialback_verify(std::string_view domain, bool valid) {
    dialback_verifies.get({domain, valid ? "valid" : "invalid"}).inc();
  }
  void stream_closed(std::string_view domain, Direction d, CloseReason r) {
    streams_closed.get({domain, to_string(d), to_string(r)}).inc();
  }
  // XEP-0198 enabled on a stream.
  void sm_enabled(std::string_view domain, Direction d) {
    sm_streams.get({domain, to_string(d)}).inc();
  }
  // Stanzas written on an outbound stream that the peer has not acknowledged yet.
  void unacked(std::string_view domain, double delta) { unacked_stanzas.get({domain}).inc(delta); }
  // Unacknowledged stanzas of an ended stream, sent again on the next link.
  void resent(std::string_view domain, std::size_t n) { resends.get({domain}).inc(n); }
  // Reading from `domain` began to be slowed down to its stanza or byte rate (pacing).
  void paced(std::string_view domain) { paced_total.get({domain}).inc(); }
  // `seconds` more whole seconds during which the domain was paced.
  void paced_seconds(std::string_view domain, std::uint64_t seconds) {
    paced_time.get({domain}).inc(seconds);
  }
  // An inbound stream from `domain` waits: a stanza it sent made a link's queue (still being
  // set up) go over queue_size.
  void held_back(std::string_view domain) { held_back_total.get({domain}).inc(); }
  // A stream dropped by a write bound: `reason` is "queue_full", "stalled" or
  // "unacked" (stream management answers that did not come).
  void write_limit(std::string_view domain, Direction d, std::string_view reason) {
    write_limits.get({domain, to_string(d), reason}).inc();
  }

  std::size_t max_domains_;
  std::map<std::pair<std::string, std::string>, LinkNote> link_notes_;
  std::deque<FailureNote> recent_failures_;

  GaugeFamily& connections_active;   // waddle_s2s_connections_active{domain,direction}
  CounterFamily& connections_total;  // waddle_s2s_connections_total{domain,direction}
  CounterFamily& stanzas_sent;       // waddle_s2s_stanzas_sent_total{domain}
  CounterFamily& stanzas_received;   // waddle_s2s_stanzas_received_total{domain}
  CounterFamily& errors;             // waddle_s2s_errors_total{domain,kind}
  HistogramFamily& latency;          // waddle_s2s_latency_seconds{domain}
  GaugeFamily& queue;                // waddle_s2s_queue_stanzas{domain}
  CounterFamily& bounces;            // waddle_s2s_bounced_total{domain,condition}
  CounterFamily& authentications;    // waddle_s2s_authenticated_total{domain,direction,method}
  CounterFamily& dialback_verifies;  // waddle_s2s_dialback_verify_total{domain,result}
  CounterFamily& streams_closed;     // waddle_s2s_streams_closed_total{domain,direction,reason}
  CounterFamily& sm_streams;         // waddle_s2s_stream_management_total{domain,direction}
  GaugeFamily& unacked_stanzas;      // waddle_s2s_unacked_stanzas{domain}
  CounterFamily& resends;            // waddle_s2s_resent_total{domain}
  CounterFamily& paced_total;        // waddle_s2s_paced_total{domain}
  CounterFamily& paced_time;         // waddle_s2s_paced_seconds_total{domain}
  CounterFamily& held_back_total;    // waddle_s2s_held_back_total{domain}
  CounterFamily& write_limits;       // waddle_s2s_write_limit_total{domain,direction,reason}
};

struct C2sMetrics {
  explicit C2sMetrics(Registry& registry);

  void session_opened() { sessions_active.inc(); }
  void session_closed() { sessions_active.dec(); }
  void auth_failure() { auth_failures.inc(); }
  void stanza_received() { stanzas_received.inc(); }
  void offline_message_stored() { offline_stored.inc(); }
  // A message for offline storage bounced: "full" (the account's max_offline_messages or
  // max_offline_bytes) or "busy" (max_offline_pending waiting to be written).
  void offline_message_refused(std::string_view reason) { offline_refused.get({reason}).inc(); }
  // A session closed by a write bound: `reason` is "queue_full" or "stalled".
  void write_limit(std::string_view reason) { write_limits.get({reason}).inc(); }
  // A stanza queued for a session that ended before it was written: "rerouted" (to the
  // account's other resources or offline storage), "bounced" (an error to its sender) or
  // "dropped" (presence, results and errors, headlines: nobody to tell).
  void unwritten(std::string_view outcome) { unwritten_stanzas.get({outcome}).inc(); }
  // XEP-0198 on client sessions: "enabled" (with resumption or not), "resumed",
  // "resume_failed", "hibernated" (the connection was lost, waiting to be resumed), "expired"
  // (not resumed in time), "overflow" (max_unacked_stanzas), "overflow_bytes"
  // (max_unacked_bytes).
  void stream_management(std::string_view event) { sm_events.get({event}).inc(); }
  // XEP-0352: "held" (a stanza held back for an inactive client), "replaced" (a held stanza
  // replaced by a newer one from the same sender: never sent), "overflow" / "overflow_bytes"
  // (held stanzas sent while the client is inactive because one more would have exceeded
  // csi_queue_size / csi_queue_bytes).
  void csi(std::string_view outcome, std::uint64_t n = 1) { csi_stanzas.get({outcome}).inc(n); }
  // XEP-0313 account archives: "archived", "skipped" (the preferences, or no such account),
  // "dropped" (the storage thread too far behind, or failing), "expired" (retention, limit).
  void archive(std::string_view outcome, std::uint64_t n = 1) {
    archive_messages.get({outcome}).inc(n);
  }
  // A message archived while the storage thread was behind, whose source (an inbound server
  // stream, a room's work) was asked to wait.
  void archive_paced_source() { archive_paced.inc(); }
  // An archive query answered: "ok" or "error".
  void archive_query(std::string_view result) { archive_queries.get({result}).inc(); }
  // XEP-0313 room archives: "archived", "dropped" (the storage thread too far behind, or
  // failing), "deleted" (archives of rooms that went away); and their queries, "ok", "error".
  void room_archive(std::string_view outcome, std::uint64_t n = 1) {
    room_archive_messages.get({outcome}).inc(n);
  }
  void room_archive_query(std::string_view result) { room_archive_queries.get({result}).inc(); }
  // An abuse report sent with a block command (XEP-0377): "spam", "abuse" or "other".
  void spam_report(std::string_view reason) { spam_reports.get({reason}).inc(); }
  // A stanza stopped by a blocklist (XEP-0191): "inbound" (from a JID the recipient blocks)
  // or "outbound" (sent by a user to a JID they block).
  void blocked(std::string_view direction) { blocked_stanzas.get({direction}).inc(); }
  // XEP-0357 notifications: "sent" (an IQ to an app server), "answered" (its result came),
  // "failed" (an error of another type), "disabled" (an error of type cancel or auth, or no
  // answer within push.notify_timeout: the registration is removed), "coalesced" (due while
  // one was in flight: folded into the next).
  void push(std::string_view outcome) { push_notifications.get({outcome}).inc(); }

  CounterFamily& write_limits;           // waddle_c2s_write_limit_total{reason}
  CounterFamily& unwritten_stanzas;      // waddle_c2s_unwritten_stanzas_total{outcome}
  CounterFamily& sm_events;              // waddle_c2s_stream_management_total{event}
  CounterFamily& csi_stanzas;            // waddle_c2s_csi_stanzas_total{outcome}
  CounterFamily& archive_messages;       // waddle_mam_messages_total{outcome}
  CounterFamily& archive_queries;        // waddle_mam_queries_total{result}
  CounterFamily& room_archive_messages;  // waddle_muc_mam_messages_total{outcome}
  CounterFamily& room_archive_queries;   // waddle_muc_mam_queries_total{result}
  CounterFamily& offline_refused;        // waddle_offline_messages_refused_total{reason}
  Gauge& sessions_active;                // waddle_c2s_sessions_active
  Counter& auth_failures;                // waddle_c2s_auth_failures_total
  Counter& stanzas_received;             // waddle_c2s_stanzas_received_total
  Counter& archive_paced;                // waddle_mam_paced_total
  Counter& offline_stored;               // waddle_offline_messages_stored_total
  CounterFamily& spam_reports;           // waddle_spam_reports_total{reason}
  CounterFamily& blocked_stanzas;        // waddle_blocked_stanzas_total{direction}
  Gauge& blocklists_cached;              // waddle_blocklists_cached
  CounterFamily& push_notifications;     // waddle_push_notifications_total{outcome}
  Gauge& push_registrations;             // waddle_push_registrations
  CounterFamily& caps_queries;           // waddle_caps_queries_total{result}
  Gauge& caps_cached;                    // waddle_caps_cached
  CounterFamily& pep_requests;           // waddle_pep_requests_total{request,result}
  Counter& pep_notifications;            // waddle_pep_notifications_total
};

// Connections refused when accepted (core/connection_gate.h), by listener ("c2s" or "s2s")
// and reason ("rate", "unauthenticated", "unauthenticated_per_address").
struct ListenerMetrics {
  explicit ListenerMetrics(Registry& registry);

  void refused(std::string_view listener, std::string_view reason) {
    refused_total.get({listener, reason}).inc();
  }

  CounterFamily& refused_total;  // waddle_connections_refused_total{listener,reason}
  // SIGHUP: waddle_reloads_total{what,result}: what = config, certificates; result = ok,
  // failed (what was in use stays).
  CounterFamily& reloads;
};

// Room services (XEP-0045) and federated identity checks; refreshed from the services'
// counts when /metrics is read.
struct MucMetrics {
  explicit MucMetrics(Registry& registry);

  GaugeFamily& occupants;
  CounterFamily& credentials;
  Gauge& rooms;                  // waddle_muc_rooms
  Gauge& occupants_local;        // waddle_muc_occupants{origin="local"}
  Gauge& occupants_remote;       // waddle_muc_occupants{origin="remote"}
  Counter& credentials_valid;    // waddle_identity_credentials_checked_total{result="valid"}
  Counter& credentials_refused;  // waddle_identity_credentials_checked_total{result="refused"}
};

// External components (XEP-0114), by component domain (configured, so a bounded label).
struct ComponentMetrics {
  explicit ComponentMetrics(Registry& registry);

  GaugeFamily& connected;     // waddle_component_connected{domain}: 1 while connected
  CounterFamily& handshakes;  // waddle_component_handshakes_total{domain,result}
  CounterFamily& stanzas;     // waddle_component_stanzas_total{domain,direction}
  CounterFamily& bounced;     // waddle_component_bounced_total{domain}
};

// The web listener (docs/web.md).
struct WebMetrics {
  explicit WebMetrics(Registry& registry);

  // waddle_http_requests_total{endpoint,code}: endpoint websocket, host_meta, other.
  CounterFamily& requests;
  // waddle_websocket_upgrades_total{result}: ok, or why the upgrade was refused (origin,
  // protocol, version, bad_request, refused).
  CounterFamily& upgrades;
  Gauge& websocket_sessions;  // waddle_websocket_sessions: WebSocket client connections open
  // HTTP File Upload (XEP-0363).
  CounterFamily& upload_slots;  // waddle_upload_slots_total{result}
  CounterFamily& upload_puts;   // waddle_upload_puts_total{result}
  CounterFamily& upload_bytes;  // waddle_upload_bytes_total{direction}: in (PUT), out (GET)
  Gauge& upload_files;          // waddle_upload_files: files kept
  Gauge& upload_stored_bytes;   // waddle_upload_stored_bytes: their size
};

}  // namespace waddle::metrics
