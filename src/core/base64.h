// Strict base64 (RFC 4648 §4), as SASL (RFC 6120 §6.4.2) and credentials need it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace waddle::core {

// Padding required, no whitespace, non-zero pad bits rejected; decode returns nullopt on
// invalid input. "=" is an empty message in SASL and decodes to "".
std::string base64_encode(std::string_view data);
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace waddle::core
