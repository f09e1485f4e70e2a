// Failure reporting: one log line and one count per failure.
#include "s2s/failure.h"

#include <spdlog/spdlog.h>

namespace waddle::s2s {

void report(metrics::S2sMetrics* metrics, std::string_view domain, Failure f,
            std::string_view text) {
  spdlog::warn("s2s {}: {} error: {}", domain, to_string(f), text);
  if (metrics) metrics->failure(domain, f, text);
}

}  // namespace waddle::s2s
