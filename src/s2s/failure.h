// What can go wrong with federation, as one list: the kinds of waddle_s2s_errors_total
// (metrics::S2sError) are the failures that bounces, logs and `check s2s` name. Also the
// outcome of a connection attempt and the stanza error a failure bounces with (RFC 6120 §8.3.3).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/errors.h"
#include "metrics/metrics.h"

namespace waddle::s2s {

// The metric's enum is the one list (metrics declares the vocabulary of its labels, as it
// does for directions); s2s names it Failure. to_string(f) (found by argument-dependent
// lookup in metrics) gives its name: "dns", "tls", "timeout", ...
using Failure = metrics::S2sError;

// A peer that did not answer in time is remote-server-timeout; anything else that kept us
// from reaching it is remote-server-not-found.
inline core::StanzaError bounce_condition(Failure f) {
  return f == Failure::kTimeout ? core::StanzaError::kRemoteServerTimeout
                                : core::StanzaError::kRemoteServerNotFound;
}

// How a connection attempt (or one step of it) ended.
struct Outcome {
  std::optional<Failure> failure;  // none: it succeeded
  std::string text;                // what failed, for the bounce text and the logs
  bool definitive = false;         // the peer refused outright: retrying cannot help

  bool ok() const { return !failure; }
  static Outcome fail(Failure f, std::string text) { return {f, std::move(text), false}; }
};

// Logs a failure ("s2s DOMAIN: KIND error: TEXT") and counts it in waddle_s2s_errors_total.
void report(metrics::S2sMetrics* metrics, std::string_view domain, Failure f,
            std::string_view text);

}  // namespace waddle::s2s
