// A private certificate authority made at test time with OpenSSL: a CA certificate and leaf
// certificates for given DNS names (signed by the CA, or self-signed), written as PEM files.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"

namespace waddle::testing {

class TestPki {
 public:
  // Creates the CA in `dir` (which must exist). Throws std::runtime_error on failure.
  explicit TestPki(std::filesystem::path dir);
  ~TestPki();
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;

  // Writes `<name>.crt` and `<name>.key`: a P-256 leaf certificate whose subjectAltName holds
  // `dns_names` (the first one is also the common name), signed by the CA unless self_signed.
  // `extended_key_usage` (OpenSSL's syntax, e.g. "serverAuth,clientAuth") adds that extension;
  // empty: none.
  core::CertKey issue(const std::string& name, const std::vector<std::string>& dns_names,
                      bool self_signed = false, const std::string& extended_key_usage = {});
  std::string ca_file() const { return ca_file_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::filesystem::path dir_;
  std::string ca_file_;
};

}  // namespace waddle::testing
