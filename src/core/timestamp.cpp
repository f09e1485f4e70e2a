// XEP-0082 timestamps.
#include "core/timestamp.h"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace waddle::core {

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string format_timestamp(std::int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::optional<std::int64_t> parse_timestamp(std::string_view s) {
  std::tm tm{};
  std::string str(s);
  const char* end = strptime(str.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!end) return std::nullopt;
  std::int64_t t = static_cast<std::int64_t>(timegm(&tm));
  if (*end == '.')  // fractions of a second
    while (*++end >= '0' && *end <= '9') {
    }
  if (*end == 'Z' || *end == '\0') return t;
  int hh = 0, mm = 0;
  char sign = *end;
  if ((sign != '+' && sign != '-') || std::sscanf(end + 1, "%2d:%2d", &hh, &mm) != 2)
    return std::nullopt;
  const std::int64_t offset = hh * 3600 + mm * 60;
  return sign == '+' ? t - offset : t + offset;
}

}  // namespace waddle::core
