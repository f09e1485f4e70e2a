// Random identifiers (stream ids, generated resources, ping ids): lowercase hex of
// cryptographically random bytes.
#pragma once

#include <cstddef>
#include <string>

namespace waddle::core {

// 2 * `bytes` hex digits from OpenSSL's CSPRNG.
std::string random_hex(std::size_t bytes);

}  // namespace waddle::core
