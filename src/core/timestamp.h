// XEP-0082 date-time profile: UTC timestamps as carried in <delay stamp=.../> (XEP-0203) and
// <history since=.../> (XEP-0045).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace waddle::core {

// "2026-11-25T10:35:00Z" for `unix_seconds`.
// The current time in Unix seconds (the system clock).
std::int64_t unix_now();
std::string format_timestamp(std::int64_t unix_seconds);
// Seconds since the epoch for "CCYY-MM-DDThh:mm:ss[.sss](Z|(+|-)hh:mm)" (a missing zone is
// read as UTC); nullopt if unreadable.
std::optional<std::int64_t> parse_timestamp(std::string_view s);

}  // namespace waddle::core
