// JID parsing and preparation: RFC 7622 §3.1 (splitting), RFC 6122 Appendices A/B (nodeprep,
// resourceprep via libidn), IDNA2008/UTS #46 domains via libidn2 (stored as lowercase A-labels).
#include "core/jid.h"

#include <arpa/inet.h>
#include <idn-free.h>
#include <idn2.h>
#include <stringprep.h>

#include <array>
#include <cstdint>
#include <memory>

namespace waddle::core {
namespace {

// RFC 7622 §3.1: each part is at most 1023 bytes once prepared.
constexpr std::size_t kMaxPartBytes = 1023;
// RFC 1035 §2.3.4, enforced by RFC 5890 for every label.
constexpr std::size_t kMaxLabelBytes = 63;
// Bounds the IDNA work on hostile input; mapping may drop ignorable code points, so the raw
// domain may legitimately be somewhat longer than the prepared one.
constexpr std::size_t kMaxRawDomainBytes = 4 * kMaxPartBytes;

struct IdnFree {
  void operator()(char* p) const { idn_free(p); }
};

std::optional<std::string> run_profile(std::string_view s, const char* profile) {
  // The C API takes NUL-terminated strings; an embedded NUL would silently truncate the input.
  if (s.find('\0') != std::string_view::npos) return std::nullopt;
  const std::string in(s);
  char* raw = nullptr;
  // Flags 0: unassigned code points are allowed (query strings, RFC 3454 §7), so that
  // resources and passwords may carry characters newer than Unicode 3.2, such as emoji.
  const int rc = stringprep_profile(in.c_str(), &raw, profile, Stringprep_profile_flags{});
  std::unique_ptr<char, IdnFree> out(raw);
  if (rc != STRINGPREP_OK || !out) return std::nullopt;
  return std::string(out.get());
}

// RFC 7622 §3.2: these are label separators, like U+002E FULL STOP. Mapping them first lets the
// domain be split into labels before IDNA processing.
std::string map_label_separators(std::string_view s) {
  static constexpr std::array<std::string_view, 3> kDots = {
      "\xE3\x80\x82",  // U+3002 IDEOGRAPHIC FULL STOP
      "\xEF\xBC\x8E",  // U+FF0E FULLWIDTH FULL STOP
      "\xEF\xBD\xA1",  // U+FF61 HALFWIDTH IDEOGRAPHIC FULL STOP
  };
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    bool mapped = false;
    for (auto dot : kDots) {
      if (s.substr(i, dot.size()) == dot) {
        out.push_back('.');
        i += dot.size();
        mapped = true;
        break;
      }
    }
    if (!mapped) out.push_back(s[i++]);
  }
  return out;
}

std::optional<std::string> to_a_label(std::string_view label) {
  const std::string in(label);
  uint8_t* raw = nullptr;
  // UTS #46 non-transitional mapping does the RFC 7622 §3.2.1 case folding and NFC, and keeps
  // "ß" and ZWJ/ZWNJ as IDNA2008 requires. STD3 rules are not requested because libidn2 then
  // drops offending characters instead of failing; the caller checks the result is LDH.
  const int rc = idn2_lookup_u8(reinterpret_cast<const uint8_t*>(in.c_str()), &raw,
                                IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
  std::unique_ptr<char, IdnFree> out(reinterpret_cast<char*>(raw));
  if (rc != IDN2_OK || !out) return std::nullopt;
  return std::string(out.get());
}

// Lowercases and checks an ASCII domain: letters, digits and hyphens in non-empty labels of
// at most 63 bytes, at most 1023 bytes in total.
bool finish_ascii_domain(std::string& d) {
  if (d.empty() || d.size() > kMaxPartBytes) return false;
  std::size_t label = 0;
  for (char& c : d) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    const bool ldh = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    if (!ldh || ++label > kMaxLabelBytes) return false;
  }
  return label != 0;
}

// Fast paths for the common all-ASCII parts. They give exactly what the stringprep and IDNA
// libraries give for the inputs they accept (tests/unit/core/jid_test.cpp compares them on
// every ASCII character) and leave everything else to the libraries, which cost ~10 µs per
// JID: most of a federated message's CPU before these paths existed.

// Nodeprep (RFC 6122 Appendix A) of printable ASCII: case folding only. Space, controls and
// the characters Nodeprep prohibits (" & ' / : < > @) go to the library (which refuses them).
std::optional<std::string> ascii_nodeprep(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c < 0x21 || c > 0x7E) return std::nullopt;
    switch (c) {
      case '"':
      case '&':
      case '\'':
      case '/':
      case ':':
      case '<':
      case '>':
      case '@':
        return std::nullopt;
      default:
        break;
    }
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Resourceprep (RFC 6122 Appendix B) maps no printable ASCII character (space included) and
// prohibits none of them: such a resource is already prepared.
bool ascii_resource(std::string_view s) {
  for (char c : s)
    if (c < 0x20 || c > 0x7E) return false;
  return true;
}

// An ASCII label that IDNA2008 lookup (UTS #46 mapping) only lowercases: letters, digits and
// hyphens, no leading or trailing hyphen, no "--" in positions 3-4 (which includes the
// "xn--" A-labels that need decoding to be checked).
bool plain_ascii_label(std::string_view label) {
  if (label.empty() || label.size() > kMaxLabelBytes) return false;
  if (label.front() == '-' || label.back() == '-') return false;
  if (label.size() >= 4 && label[2] == '-' && label[3] == '-') return false;
  for (char c : label) {
    const bool ldh =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (!ldh) return false;
  }
  return true;
}

std::optional<std::string> prepare_part(std::string_view s, const char* profile) {
  // Printable ASCII maps one to one, so the prepared length is the raw length.
  std::optional<std::string> fast;
  if (profile[0] == 'N')
    fast = ascii_nodeprep(s);
  else if (ascii_resource(s))
    fast = std::string(s);
  if (fast) {
    if (fast->empty() || fast->size() > kMaxPartBytes) return std::nullopt;
    return fast;
  }
  auto out = run_profile(s, profile);
  // A part that maps to nothing (e.g. only U+00AD SOFT HYPHEN) is as invalid as an empty one.
  if (!out || out->empty() || out->size() > kMaxPartBytes) return std::nullopt;
  return out;
}

}  // namespace

bool is_ip_literal(std::string_view s) {
  const std::string str(s);
  std::array<unsigned char, 16> buf{};
  if (inet_pton(AF_INET, str.c_str(), buf.data()) == 1) return true;
  if (str.size() >= 2 && str.front() == '[' && str.back() == ']') {
    const std::string inner = str.substr(1, str.size() - 2);
    return inet_pton(AF_INET6, inner.c_str(), buf.data()) == 1;
  }
  return false;
}

std::optional<std::string> nodeprep(std::string_view s) {
  return prepare_part(s, "Nodeprep");
}

std::optional<std::string> nodeprep_library(std::string_view s) {
  auto out = run_profile(s, "Nodeprep");
  if (!out || out->empty() || out->size() > kMaxPartBytes) return std::nullopt;
  return out;
}

std::optional<std::string> resourceprep_library(std::string_view s) {
  auto out = run_profile(s, "Resourceprep");
  if (!out || out->empty() || out->size() > kMaxPartBytes) return std::nullopt;
  return out;
}

std::optional<std::string> resourceprep(std::string_view s) {
  return prepare_part(s, "Resourceprep");
}

std::optional<std::string> saslprep(std::string_view s) {
  return run_profile(s, "SASLprep");
}

std::optional<std::string> nameprep_domain(std::string_view s) {
  // Fast path: a host name of plain ASCII labels ("example.org", "Conference.Example.org.").
  {
    std::string_view d = s;
    if (!d.empty() && d.back() == '.') d.remove_suffix(1);
    bool plain = !d.empty() && d.size() <= kMaxPartBytes;
    bool has_letter = false;
    for (std::size_t start = 0; plain;) {
      const std::size_t dot = d.find('.', start);
      const auto label = d.substr(start, dot == std::string_view::npos ? dot : dot - start);
      plain = plain_ascii_label(label);
      for (char c : label) has_letter |= (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
      if (dot == std::string_view::npos) break;
      start = dot + 1;
    }
    // All-digit names may be IPv4 literals: left to the general path.
    if (plain && has_letter) {
      std::string out(d);
      if (!finish_ascii_domain(out)) return std::nullopt;
      return out;
    }
  }
  return nameprep_domain_library(s);
}

std::optional<std::string> nameprep_domain_library(std::string_view s) {
  if (s.find('\0') != std::string_view::npos) return std::nullopt;
  std::string mapped = map_label_separators(s);
  // RFC 7622 §3.2: one trailing dot denotes the same (fully qualified) domain.
  if (!mapped.empty() && mapped.back() == '.') mapped.pop_back();
  if (mapped.empty() || mapped.size() > kMaxRawDomainBytes) return std::nullopt;
  if (is_ip_literal(mapped)) return mapped;

  std::string out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t dot = mapped.find('.', start);
    const std::string_view label =
        std::string_view(mapped).substr(start, dot == std::string::npos ? dot : dot - start);
    if (label.empty()) return std::nullopt;
    auto ascii = to_a_label(label);
    if (!ascii) return std::nullopt;
    if (!out.empty()) out.push_back('.');
    out += *ascii;
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (!finish_ascii_domain(out)) return std::nullopt;
  return out;
}

std::optional<Jid> Jid::parse(std::string_view s) {
  std::string_view rest = s;
  std::string_view resource;
  bool has_resource = false;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    resource = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    has_resource = true;
  }
  std::string_view local;
  bool has_local = false;
  if (auto at = rest.find('@'); at != std::string_view::npos) {
    local = rest.substr(0, at);
    rest = rest.substr(at + 1);
    has_local = true;
  }
  // A separator without its part ("@example.org", "example.org/") is invalid (RFC 7622 §3.1),
  // unlike from_parts where an empty part means absent.
  if ((has_local && local.empty()) || (has_resource && resource.empty())) return std::nullopt;
  return from_parts(local, rest, resource);
}

std::optional<Jid> Jid::from_parts(std::string_view local, std::string_view domain,
                                   std::string_view resource) {
  Jid jid;
  auto d = nameprep_domain(domain);
  if (!d) return std::nullopt;
  jid.domain_ = std::move(*d);
  if (!local.empty()) {
    auto l = nodeprep(local);
    if (!l) return std::nullopt;
    jid.local_ = std::move(*l);
  }
  if (!resource.empty()) {
    auto r = resourceprep(resource);
    if (!r) return std::nullopt;
    jid.resource_ = std::move(*r);
  }
  return jid;
}

Jid Jid::bare() const {
  Jid jid = *this;
  jid.resource_.clear();
  return jid;
}

std::optional<Jid> Jid::with_resource(std::string_view resource) const {
  if (empty()) return std::nullopt;
  auto r = resourceprep(resource);
  if (!r) return std::nullopt;
  Jid jid = *this;
  jid.resource_ = std::move(*r);
  return jid;
}

std::string Jid::bare_str() const {
  if (local_.empty()) return domain_;
  std::string out;
  out.reserve(local_.size() + 1 + domain_.size());
  out += local_;
  out += '@';
  out += domain_;
  return out;
}

std::string Jid::str() const {
  std::string out = bare_str();
  if (!resource_.empty()) {
    out += '/';
    out += resource_;
  }
  return out;
}

}  // namespace waddle::core
