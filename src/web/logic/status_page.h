// The operator's status page (/status on the metrics listener, docs/operations.md): which
// remote domains are connected in each direction and how, queues, traffic, recent failures
// with their reasons, rooms with remote occupants, and the last hour's traffic and errors per
// domain as small charts drawn from the server's own counters. No I/O: the server gathers a
// StatusData, this renders it.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

namespace waddle::web {

// Per-domain counter totals sampled at a fixed interval; the differences between samples are
// the charts' points.
class TrafficHistory {
 public:
  struct Totals {
    double sent = 0;
    double received = 0;
    double errors = 0;
  };
  static constexpr std::size_t kSamples = 121;  // 120 intervals: an hour at 30 s

  void sample(std::int64_t now, std::map<std::string, Totals> totals);
  // Per interval, oldest first (at most kSamples - 1 points); a domain absent from a sample
  // counts as zero there.
  struct Series {
    std::vector<double> sent, received, errors;
  };
  Series series(const std::string& domain) const;
  // Rates per second over the last interval (zero before two samples).
  Totals rate(const std::string& domain) const;
  // Totals of the whole window.
  Totals window(const std::string& domain) const;
  std::int64_t interval() const;  // seconds between the last two samples (0 before)

 private:
  std::deque<std::pair<std::int64_t, std::map<std::string, Totals>>> samples_;
};

struct StatusLink {
  std::string domain;
  std::string direction;  // "in" or "out"
  double streams = 0;
  std::string method;  // sasl_external, dialback, dialback_multiplexed; "" when unknown
  std::string tls;
  std::int64_t since = 0;
};

struct StatusDomain {
  std::string domain;
  double queue = 0;  // stanzas waiting for a link
  TrafficHistory::Totals rate;
  TrafficHistory::Totals hour;
  TrafficHistory::Series series;
  bool connected = false;
  std::int64_t last_failure = 0;  // Unix seconds, 0 = none recently
};

struct StatusFailure {
  std::int64_t at = 0;
  std::string domain;
  std::string kind;
  std::string text;
};

struct StatusRoom {
  std::string room;
  std::size_t local = 0;
  std::size_t remote = 0;
  std::vector<std::string> servers;
};

struct StatusData {
  std::string version;
  std::int64_t now = 0;
  std::int64_t started = 0;
  std::vector<std::string> local_domains;
  double client_sessions = 0;
  double websocket_sessions = 0;
  std::vector<StatusLink> links;
  std::vector<StatusDomain> domains;
  std::vector<StatusFailure> failures;  // newest last
  std::vector<StatusRoom> rooms;
};

std::string render_status(const StatusData& data);

// An inline SVG chart of `values` (a polyline per series, shared scale), `width` x `height`.
std::string sparkline(const std::vector<double>& a, const std::vector<double>& b,
                      const std::vector<double>& errors, int width, int height);

}  // namespace waddle::web
