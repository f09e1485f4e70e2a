// A dnsmasq serving a test zone on a loopback address and a port the kernel picked, for tests
// that resolve server domains (RFC 6120 §3.2) through the real resolver.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>

namespace waddle::testing {

class Dnsmasq {
 public:
  static constexpr const char* kBinary = "/usr/sbin/dnsmasq";
  static bool installed();

  // Starts dnsmasq on `address` with `zone` (dnsmasq configuration lines) written into `dir`,
  // and waits (bounded) until it answers `probe_host`, a name the zone must hold. Returns null
  // when it does not come up; `log` then says why.
  static std::unique_ptr<Dnsmasq> start(const std::filesystem::path& dir, const std::string& zone,
                                        const std::string& probe_host, std::string& log,
                                        const char* address = "127.0.0.56");
  ~Dnsmasq();
  Dnsmasq(const Dnsmasq&) = delete;
  Dnsmasq& operator=(const Dnsmasq&) = delete;

  // "ADDRESS:PORT", as [dns] nameservers takes it.
  std::string nameserver() const { return address_ + ":" + std::to_string(port_); }

 private:
  Dnsmasq(std::string address, std::uint16_t port, pid_t pid)
      : address_(std::move(address)), port_(port), pid_(pid) {}
  std::string address_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace waddle::testing
