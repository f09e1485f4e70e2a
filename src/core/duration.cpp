// Human-readable durations for configuration values: "<digits><unit>", unit ms, s, m or h.
#include "core/duration.h"

#include <array>
#include <cstdint>
#include <limits>

namespace waddle::core {
namespace {

struct Unit {
  std::string_view suffix;
  std::int64_t ms;
};

// Largest first: the first unit that divides a duration exactly gives its shortest text.
constexpr std::array<Unit, 4> kUnits = {{
    {"h", 3'600'000},
    {"m", 60'000},
    {"s", 1'000},
    {"ms", 1},
}};

const Unit* find_unit(std::string_view s) {
  // The longest matching suffix wins: "250ms" ends with "s" too.
  const Unit* best = nullptr;
  for (const Unit& u : kUnits) {
    if (s.ends_with(u.suffix) && (!best || u.suffix.size() > best->suffix.size())) best = &u;
  }
  return best;
}

}  // namespace

std::optional<Duration> parse_duration(std::string_view s) {
  const Unit* unit = find_unit(s);
  if (!unit || s.size() == unit->suffix.size()) return std::nullopt;
  const std::string_view digits = s.substr(0, s.size() - unit->suffix.size());
  const Duration::rep limit = std::numeric_limits<Duration::rep>::max() / unit->ms;
  Duration::rep value = 0;
  for (char c : digits) {
    // Only digits: no sign, no spaces, no fractions, no compound forms such as "1m30s".
    if (c < '0' || c > '9') return std::nullopt;
    const int digit = c - '0';
    if (value > (limit - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return Duration(value * unit->ms);
}

std::string format_duration(Duration d) {
  const Duration::rep count = d.count();
  if (count == 0) return "0s";
  // The magnitude is unsigned so that the most negative value does not overflow. Negative
  // durations are not parseable; they are only formatted for diagnostics.
  const bool negative = count < 0;
  const std::uint64_t magnitude = negative ? std::uint64_t{0} - static_cast<std::uint64_t>(count)
                                           : static_cast<std::uint64_t>(count);
  std::string out = negative ? "-" : "";
  for (const Unit& u : kUnits) {
    const auto unit_ms = static_cast<std::uint64_t>(u.ms);
    if (magnitude % unit_ms == 0) {
      out += std::to_string(magnitude / unit_ms);
      out += u.suffix;
      break;
    }
  }
  return out;
}

}  // namespace waddle::core
