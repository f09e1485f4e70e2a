// Identifiers: random ones (stream ids, generated resources, ping ids, dialback keys) as
// lowercase hex of cryptographically random bytes, and time-ordered unique ones for archived
// messages (XEP-0359 stanza ids).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace waddle::core {

// 2 * `bytes` hex digits from OpenSSL's CSPRNG.
std::string random_hex(std::size_t bytes);

// A unique id that sorts (as a string) after every id this thread made before: 16 hex digits
// of a strictly increasing microsecond clock (`now_us`, raised past the last one when the clock
// stands still or steps back), then 12 of CSPRNG output, so that ids are unique across restarts
// and servers and cannot be guessed. The random part is drawn from OpenSSL in blocks: one call
// per 170 ids rather than one each (an archive writes one id per message; every RAND_bytes
// call costs a system call).
std::string ordered_id(std::int64_t now_us);
// The number an id of that form starts with (its first 16 characters, lowercase hex), if it
// has one that is positive and fits an int64 (a SQLite row id); nothing for other ids.
std::optional<std::int64_t> ordered_id_number(std::string_view id);

}  // namespace waddle::core
