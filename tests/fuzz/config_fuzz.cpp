// libFuzzer target for the TOML configuration (toml++ mapped to core::Config): whatever the
// file holds, loading either gives a valid configuration or throws ConfigError with the
// file name in front ("FILE:LINE:COL: key: problem"); no other exception, crash or leak.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/config.h"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // Certificate and key paths are opened to check them; device and process files (a read of
  // /dev/zero never ends) are the operator's business, not the parser's.
  for (const std::string_view dir : {"/dev", "/proc", "/sys"})
    if (text.find(dir) != std::string_view::npos) return 0;
  try {
    const waddle::core::Config c = waddle::core::parse_config(text, "fuzz.toml");
    check(!c.server.domains.empty());
    for (const auto& d : c.hosted_domains()) check(!d.empty());
    (void)c.storage_path();
    (void)c.identity_key_path();
  } catch (const waddle::core::ConfigError& e) {
    check(std::string_view(e.what()).starts_with("fuzz.toml"));
  }
  return 0;
}
