// Write bounds on outbound streams (docs/security.md, "Memory"): what a peer that does not
// read, or does not acknowledge, can make the pool hold. Without stream management, stanzas
// are kept until written to the socket; with it, until acknowledged (pool_acks.cpp), up to
// s2s.max_unacked and s2s.max_unacked_bytes. A stream dropped at a bound (those, or the
// stream's own max_write_queue and write_stall_timeout) fails over: its stanzas go out again
// on a new link, which counts as a retry of the link, and bounce when the retries run out.
#include <spdlog/spdlog.h>

#include "core/duration.h"
#include "metrics/metrics.h"
#include "s2s/failure.h"
#include "s2s/pool.h"

namespace waddle::s2s {

void Pool::keep_unwritten(OutboundStream& out, std::string bytes) {
  const std::uint64_t written = out.channel->bytes_written();
  while (!out.unwritten.empty() && out.unwritten.front().first <= written)
    out.unwritten.pop_front();
  out.unwritten.emplace_back(out.channel->bytes_sent(), std::move(bytes));
}

void Pool::check_unacked(OutboundStream& out, const std::string& remote) {
  if (!out.failed.empty()) return;
  const std::size_t n = out.sm.unacked();
  const std::uint64_t bytes = out.sm.unacked_bytes();
  if (n < config_.max_unacked && bytes < config_.max_unacked_bytes) return;
  // Over the bounds, a peer that still acknowledges is only slower than we write (a room's
  // join storm): its link is kept. One that acknowledged nothing for write_stall_timeout is
  // replaced.
  const auto now = time_.now();
  if (out.last_ack == Clock::time_point{}) out.last_ack = now;
  if (now - out.last_ack < config_.write_stall_timeout) return;
  fail_over(out, remote, "unacked",
            std::to_string(n) + " stanzas (" + std::to_string(bytes) +
                " bytes) written and not acknowledged for " +
                core::format_duration(config_.write_stall_timeout) + ": replacing the link");
}

void Pool::fail_over(OutboundStream& out, const std::string& remote, std::string_view reason,
                     const std::string& text) {
  if (!out.failed.empty()) return;
  out.failed = std::string(reason);
  if (metrics_) metrics_->write_limit(remote, metrics::Direction::kOut, reason);
  report(metrics_, remote, Failure::kTimeout, text);
  out.channel->close();  // serve() sees the stream end and queues its stanzas again
}

// The stream has ended: when it was at a write bound the link retries, and what was handed
// to the stream and never written (without stream management) is queued again.
void Pool::after_stream(Link& link, OutboundStream& out) {
  if (out.failed.empty()) {
    if (auto why = out.channel->write_limit(); !why.empty()) {
      out.failed = std::string(why);
      if (metrics_) metrics_->write_limit(link.remote, metrics::Direction::kOut, why);
      report(metrics_, link.remote, Failure::kTimeout,
             why == "stalled" ? "nothing could be written to the peer for a while: replacing "
                                "the link"
                              : "too much written and not read by the peer: replacing the link");
    }
  }
  if (!out.failed.empty())
    link.write_failure = "the peer did not read or acknowledge (" + out.failed + ")";
  const std::uint64_t written = out.channel->bytes_written();
  std::deque<std::string> rest;
  for (auto& [end, bytes] : out.unwritten)
    if (end > written) rest.push_back(std::move(bytes));
  out.unwritten.clear();
  if (rest.empty()) return;
  spdlog::info("s2s {} -> {}: {} stanzas were not written when the stream ended; {}", link.local,
               link.remote, rest.size(), "sending them again on the next link");
  if (metrics_) metrics_->resent(link.remote, rest.size());
  requeue(std::move(rest), link.remote);
}

}  // namespace waddle::s2s
