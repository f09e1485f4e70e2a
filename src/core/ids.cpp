// Random identifiers from OpenSSL's CSPRNG.
#include "core/ids.h"

#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <limits>
#include <vector>

namespace waddle::core {

namespace {

constexpr char kDigits[] = "0123456789abcdef";

void append_hex(std::string& out, const unsigned char* bytes, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    out += kDigits[bytes[i] >> 4];
    out += kDigits[bytes[i] & 15];
  }
}

// CSPRNG bytes drawn a block at a time, per thread.
class RandomBlock {
 public:
  const unsigned char* take(std::size_t n) {
    if (used_ + n > block_.size()) {
      if (RAND_bytes(block_.data(), static_cast<int>(block_.size())) != 1) std::abort();
      used_ = 0;
    }
    const unsigned char* out = block_.data() + used_;
    used_ += n;
    return out;
  }

 private:
  std::array<unsigned char, 1024> block_{};
  std::size_t used_ = block_.size();
};

}  // namespace

std::string random_hex(std::size_t bytes) {
  std::vector<unsigned char> raw(bytes);
  if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1) std::abort();
  std::string out;
  out.reserve(bytes * 2);
  append_hex(out, raw.data(), raw.size());
  return out;
}

std::string ordered_id(std::int64_t now_us) {
  thread_local std::uint64_t last = 0;
  thread_local RandomBlock random;
  std::uint64_t t = now_us > 0 ? static_cast<std::uint64_t>(now_us) : 0;
  if (t <= last) t = last + 1;
  last = t;
  // Written into a fixed buffer and copied once (the string's one allocation).
  std::array<char, 28> out{};
  for (int i = 15; i >= 0; --i, t >>= 4) out[static_cast<std::size_t>(i)] = kDigits[t & 15];
  const unsigned char* r = random.take(6);
  for (std::size_t i = 0; i < 6; ++i) {
    out[16 + 2 * i] = kDigits[r[i] >> 4];
    out[17 + 2 * i] = kDigits[r[i] & 15];
  }
  return std::string(out.data(), out.size());
}

std::optional<std::int64_t> ordered_id_number(std::string_view id) {
  if (id.size() < 16) return std::nullopt;
  std::uint64_t n = 0;
  for (const char c : id.substr(0, 16)) {
    // Lower-case hex digits only (what ordered_id writes), on the path of every archived
    // message: no search of the digit table.
    unsigned digit;
    if (c >= '0' && c <= '9')
      digit = static_cast<unsigned>(c - '0');
    else if (c >= 'a' && c <= 'f')
      digit = static_cast<unsigned>(c - 'a' + 10);
    else
      return std::nullopt;
    n = n << 4 | digit;
  }
  if (n == 0 || n > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    return std::nullopt;
  return static_cast<std::int64_t>(n);
}

}  // namespace waddle::core
