// Human durations in configuration ("10s", "300s", "5m", "250ms", "1h").
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace waddle::core {

using Duration = std::chrono::milliseconds;

// Parses "<integer><unit>" with unit one of ms, s, m, h. nullopt on anything else.
std::optional<Duration> parse_duration(std::string_view s);
std::string format_duration(Duration d);

}  // namespace waddle::core
