// Loads waddle.toml into Config: strict schema (unknown keys and wrong types are errors), bounds,
// and "FILE:LINE:COL: KEY: problem" messages (STYLE.md convention 3). Keys are documented in
// config/waddle.example.toml and docs/configuration.md; [s2s] follows the s2s-federation
// specification, "Configuration".
#include "core/config.h"
#include <openssl/err.h>
#include <openssl/pem.h>

#include <arpa/inet.h>
#include <fmt/format.h>

#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <utility>

#include "core/jid.h"

namespace waddle::core {
namespace {

constexpr std::int64_t kMaxStanzaSize = 64 * 1024 * 1024;
constexpr std::int64_t kMaxPort = 65535;
constexpr std::int64_t kMaxRate = 1'000'000;
constexpr std::uint64_t kMaxBandwidth = 10ULL * 1024 * 1024 * 1024;
constexpr std::uint64_t kMinWriteQueue = 64 * 1024;
constexpr std::int64_t kMaxBurst = 100'000'000;
// A dialback secret set in the file keys HMACs that vouch for this server (XEP-0185).
constexpr std::size_t kMinDialbackSecret = 16;

// A string as a TOML basic string, so that messages stay on one line.
std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
      out += fmt::format("\\u{:04X}", static_cast<unsigned char>(c));
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

// A key as written in a dotted path: bare when TOML allows it, quoted otherwise
// (tls.domains."example.org").
std::string key_part(std::string_view k) {
  const bool bare = !k.empty() && std::all_of(k.begin(), k.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
  return bare ? std::string(k) : quote(k);
}

// The offending value as it would appear in TOML.
std::string describe(const toml::node& n) {
  if (n.is_table()) return "a table";
  if (n.is_array()) return "an array";
  // toml++ would print 'abc' as a literal string; messages consistently use double quotes.
  if (const auto* s = n.as_string()) return quote(s->get());
  std::ostringstream os;
  n.visit([&os](const auto& v) {
    if constexpr (!toml::is_container<decltype(v)>) os << v;
  });
  return os.str();
}

bool is_ipv4(std::string_view s) {
  const std::string str(s);
  std::array<unsigned char, 4> buf{};
  return inet_pton(AF_INET, str.c_str(), buf.data()) == 1;
}

bool is_ipv6(std::string_view s) {
  const std::string str(s);
  std::array<unsigned char, 16> buf{};
  return inet_pton(AF_INET6, str.c_str(), buf.data()) == 1;
}

bool is_ip_address(std::string_view s) {
  return is_ipv4(s) || is_ipv6(s);
}

bool is_port(std::string_view s) {
  if (s.empty() || s.size() > 5) return false;
  std::int64_t port = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    port = port * 10 + (c - '0');
  }
  return port >= 1 && port <= kMaxPort;
}

// "IP", "IPv4:port", "[IPv6]" or "[IPv6]:port".
bool is_nameserver(std::string_view s) {
  if (s.starts_with('[')) {
    const auto close = s.find(']');
    if (close == std::string_view::npos || !is_ipv6(s.substr(1, close - 1))) return false;
    const auto rest = s.substr(close + 1);
    return rest.empty() || (rest.front() == ':' && is_port(rest.substr(1)));
  }
  if (is_ip_address(s)) return true;
  const auto colon = s.rfind(':');
  return colon != std::string_view::npos && is_ipv4(s.substr(0, colon)) &&
         is_port(s.substr(colon + 1));
}

// An IP literal as bytes: IPv4 as such, IPv6 with IPv4-mapped addresses taken as IPv4.
struct IpAddress {
  bool v6 = false;
  std::array<unsigned char, 16> bytes{};

  bool any() const {
    return std::all_of(bytes.begin(), bytes.end(), [](unsigned char b) { return b == 0; });
  }
  // 127.0.0.0/8 or ::1.
  bool loopback() const {
    if (!v6) return bytes[0] == 127;
    return std::all_of(bytes.begin(), bytes.end() - 1, [](unsigned char b) { return b == 0; }) &&
           bytes[15] == 1;
  }
  bool operator==(const IpAddress&) const = default;
};

std::optional<IpAddress> parse_ip(std::string_view s) {
  const std::string str(s);
  IpAddress a;
  if (inet_pton(AF_INET, str.c_str(), a.bytes.data()) == 1) return a;
  if (inet_pton(AF_INET6, str.c_str(), a.bytes.data()) != 1) return std::nullopt;
  constexpr std::array<unsigned char, 12> kMapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
  if (std::equal(kMapped.begin(), kMapped.end(), a.bytes.begin())) {
    std::copy(a.bytes.begin() + 12, a.bytes.end(), a.bytes.begin());
    std::fill(a.bytes.begin() + 4, a.bytes.end(), 0);
    return a;
  }
  a.v6 = true;
  return a;
}

// Whether listeners bound to `a` and `b` on one port collide. A wildcard covers its family,
// and "::" covers IPv4 too: every listener of the server opens IPv6 sockets dual-stack.
bool overlap(const IpAddress& a, const IpAddress& b) {
  const auto covers = [](const IpAddress& wildcard, const IpAddress& other) {
    return wildcard.any() && (wildcard.v6 || !other.v6);
  };
  return a == b || covers(a, b) || covers(b, a);
}

// "10MiB" and the like, for a rate optionally followed by "/s": decimal (kB, MB, GB) or
// binary (KiB, MiB, GiB) multiples of bytes ("B"). nullopt when malformed or above `hi`.
std::optional<std::uint64_t> parse_byte_size(std::string_view s, std::uint64_t hi, bool rate) {
  if (rate && s.ends_with("/s")) s.remove_suffix(2);
  std::uint64_t n = 0;
  std::size_t i = 0;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
    if (n > hi) return std::nullopt;  // keeps the arithmetic below far from overflow
    n = n * 10 + static_cast<std::uint64_t>(s[i] - '0');
  }
  if (i == 0) return std::nullopt;
  static constexpr std::array<std::pair<std::string_view, std::uint64_t>, 8> kUnits{{
      {"B", 1},
      {"kB", 1000},
      {"KB", 1000},
      {"MB", 1000 * 1000},
      {"GB", 1000 * 1000 * 1000},
      {"KiB", 1024},
      {"MiB", 1024 * 1024},
      {"GiB", 1024 * 1024 * 1024},
  }};
  const auto unit = s.substr(i);
  for (auto [name, factor] : kUnits) {
    if (name != unit) continue;
    if (n > hi / factor) return std::nullopt;
    return n * factor;
  }
  return std::nullopt;
}

// Returns the reason `path` cannot be read, or nullopt. Opening is not enough: a directory
// opens but fails on read.
std::optional<std::string> unreadable(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return std::strerror(errno);
  char c;
  const std::size_t n = std::fread(&c, 1, 1, f);
  const int err = errno;
  const bool failed = n == 0 && std::ferror(f);
  std::fclose(f);
  if (failed) return std::strerror(err);
  return std::nullopt;
}

enum class Pem { kCertificate, kPrivateKey };

// Returns why `path` holds no PEM certificate / private key, or nullopt.
std::optional<std::string> not_pem(const std::string& path, Pem kind) {
  BIO* bio = BIO_new_file(path.c_str(), "r");
  if (!bio) return std::string("cannot open");
  bool ok = false;
  if (kind == Pem::kCertificate) {
    X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    ok = x != nullptr;
    X509_free(x);
  } else {
    EVP_PKEY* k = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    ok = k != nullptr;
    EVP_PKEY_free(k);
  }
  BIO_free(bio);
  ERR_clear_error();
  if (ok) return std::nullopt;
  return kind == Pem::kCertificate ? "no PEM certificate in it" : "no PEM private key in it";
}

class Reader {
 public:
  explicit Reader(std::string name) : name_(std::move(name)) {}

  [[noreturn]] void fail(const toml::source_region& at, std::string_view key,
                         std::string_view problem) const {
    if (at.begin.line == 0) throw ConfigError(fmt::format("{}: {}: {}", name_, key, problem));
    throw ConfigError(
        fmt::format("{}:{}:{}: {}: {}", name_, at.begin.line, at.begin.column, key, problem));
  }

  // For checks across keys: blames the first of `paths` that the file sets.
  [[noreturn]] void fail_at(std::initializer_list<std::string_view> paths,
                            std::string_view problem) const {
    for (auto p : paths) {
      if (auto it = seen_.find(std::string(p)); it != seen_.end()) fail(it->second, p, problem);
    }
    fail(toml::source_region{}, *paths.begin(), problem);
  }

  void remember(const std::string& path, const toml::source_region& at) { seen_[path] = at; }

  // A key that is accepted but does nothing any more; the message says what to do instead.
  void warn(const toml::source_region& at, std::string_view key, std::string_view problem) {
    warnings_.push_back(
        fmt::format("{}:{}:{}: {}: {}", name_, at.begin.line, at.begin.column, key, problem));
  }
  std::vector<std::string> take_warnings() { return std::move(warnings_); }

 private:
  std::string name_;
  std::map<std::string, toml::source_region> seen_;
  std::vector<std::string> warnings_;
};

// One TOML table with a fixed set of keys. Each accessor leaves `out` untouched when the key
// is absent, so missing keys keep the defaults of config.h.
class Section {
 public:
  Section(Reader& reader, const toml::table& table, std::string table_path,
          std::initializer_list<std::string_view> known)
      : reader_(reader), table_(table), path_(std::move(table_path)) {
    const auto position = [](const toml::key& k) {
      return std::pair(k.source().begin.line, k.source().begin.column);
    };
    const toml::key* unknown = nullptr;
    const toml::node* unknown_node = nullptr;
    for (auto&& [k, v] : table_) {
      if (std::find(known.begin(), known.end(), k.str()) != known.end()) continue;
      // Report the first one in the file, not the first in the table's (sorted) key order.
      if (!unknown || position(k) < position(*unknown)) {
        unknown = &k;
        unknown_node = &v;
      }
    }
    if (unknown) {
      reader_.fail(unknown->source(), path(unknown->str()),
                   unknown_node->is_table() ? "unknown table" : "unknown key");
    }
  }

  std::string path(std::string_view k) const {
    return path_.empty() ? key_part(k) : path_ + "." + key_part(k);
  }

  const toml::table* table(std::string_view k) {
    auto e = find(k);
    if (!e) return nullptr;
    if (!e->node->is_table()) bad(*e, k, "a table");
    return e->node->as_table();
  }

  void boolean(std::string_view k, bool& out) {
    auto e = find(k);
    if (!e) return;
    if (!e->node->is_boolean()) bad(*e, k, "a boolean (true or false)");
    out = e->node->as_boolean()->get();
  }

  template <typename T>
  void integer(std::string_view k, std::int64_t lo, std::int64_t hi, T& out) {
    auto e = find(k);
    if (!e) return;
    const auto* v = e->node->as_integer();
    if (!v || v->get() < lo || v->get() > hi) {
      bad(*e, k, fmt::format("an integer between {} and {}", lo, hi));
    }
    out = static_cast<T>(v->get());
  }

  // An integer or a float within [lo, hi].
  void number(std::string_view k, double lo, double hi, double& out) {
    auto e = find(k);
    if (!e) return;
    std::optional<double> value;
    if (const auto* i = e->node->as_integer()) value = static_cast<double>(i->get());
    if (const auto* f = e->node->as_floating_point()) value = f->get();
    // Written so that NaN fails too.
    if (!value || !(*value >= lo && *value <= hi)) {
      bad(*e, k, fmt::format("a number between {:.1f} and {:.1f}", lo, hi));
    }
    out = *value;
  }

  // Bytes per second within [0, hi]: a TOML integer, or a string with a unit such as
  // "500KiB", "10MiB" or "1GB" (see parse_byte_size).
  void byte_rate(std::string_view k, std::uint64_t hi, std::uint64_t& out) {
    bytes(k, 0, hi, true, out);
  }
  // A number of bytes within [lo, hi], written the same way (without "/s").
  void byte_size(std::string_view k, std::uint64_t lo, std::uint64_t hi, std::uint64_t& out) {
    bytes(k, lo, hi, false, out);
  }

  void string(std::string_view k, std::string& out, bool allow_empty = true) {
    auto e = find(k);
    if (!e) return;
    const auto* v = e->node->as_string();
    if (!v || (!allow_empty && v->get().empty())) {
      bad(*e, k, allow_empty ? "a string" : "a non-empty string");
    }
    out = v->get();
  }

  void choice(std::string_view k, std::initializer_list<std::string_view> choices,
              std::string& out) {
    auto e = find(k);
    if (!e) return;
    const auto* v = e->node->as_string();
    if (!v || std::find(choices.begin(), choices.end(), v->get()) == choices.end()) {
      std::string expected = "one of ";
      for (auto c : choices) {
        if (c != *choices.begin()) expected += ", ";
        expected += quote(c);
      }
      bad(*e, k, expected);
    }
    out = v->get();
  }

  // 0 (a TOML integer: never, off) or a positive duration.
  void duration_or_zero(std::string_view k, Duration& out) {
    auto e = find(k);
    if (!e) return;
    std::optional<Duration> d;
    if (const auto* i = e->node->as_integer(); i && i->get() == 0) d = Duration::zero();
    if (const auto* v = e->node->as_string()) d = parse_duration(v->get());
    if (!d || d->count() < 0 || (d->count() == 0 && !e->node->is_integer())) {
      bad(*e, k, "0 (never) or a positive duration such as \"30s\", \"5m\" or \"1h\"");
    }
    out = *d;
  }

  // A key that no longer has an effect: still checked as `check` does, then reported with
  // `advice` in Config::warnings.
  template <typename Check>
  void retired(std::string_view k, Check check, std::string_view advice) {
    auto e = find(k);
    if (!e) return;
    check(k);
    reader_.warn(e->key->source(), path(k), advice);
  }

  void duration(std::string_view k, Duration& out) {
    auto e = find(k);
    if (!e) return;
    const auto* v = e->node->as_string();
    std::optional<Duration> d;
    if (v) d = parse_duration(v->get());
    if (!d || d->count() <= 0) {
      bad(*e, k, "a positive duration such as \"250ms\", \"10s\", \"5m\" or \"1h\"");
    }
    out = *d;
  }

  void ip_address(std::string_view k, std::string& out) {
    auto e = find(k);
    if (!e) return;
    const auto* v = e->node->as_string();
    if (!v || !is_ip_address(v->get())) bad(*e, k, "an IP address");
    out = v->get();
  }

  // A path to a file that must be readable now, so that a typo fails at start-up rather
  // than at the first TLS handshake. Empty means unset.
  void readable_file(std::string_view k, std::string& out, std::optional<Pem> pem = std::nullopt) {
    std::string value;
    string(k, value);
    if (value.empty()) return;
    if (auto why = unreadable(value)) {
      reader_.fail(find(k)->key->source(), path(k),
                   fmt::format("cannot read {}: {}", quote(value), *why));
    }
    if (pem) {
      if (auto why = not_pem(value, *pem))
        reader_.fail(find(k)->key->source(), path(k),
                     fmt::format("cannot use {}: {}", quote(value), *why));
    }
    out = std::move(value);
  }

  // An array of strings, each accepted by `valid`; `expected` names one element.
  template <typename Valid>
  void strings(std::string_view k, std::string_view expected, Valid valid,
               std::vector<std::string>& out) {
    auto e = find(k);
    if (!e) return;
    const auto* array = e->node->as_array();
    if (!array) bad(*e, k, "an array of strings");
    std::vector<std::string> values;
    for (std::size_t i = 0; i < array->size(); ++i) {
      const toml::node& item = *array->get(i);
      const auto* s = item.as_string();
      std::optional<std::string> value;
      if (s) value = valid(s->get());
      const std::string item_path = fmt::format("{}[{}]", path(k), i);
      if (!value) {
        reader_.fail(item.source(), item_path,
                     fmt::format("expected {}, got {}", expected, describe(item)));
      }
      if (std::find(values.begin(), values.end(), *value) != values.end()) {
        reader_.fail(item.source(), item_path, fmt::format("duplicate {}", quote(*value)));
      }
      values.push_back(std::move(*value));
    }
    out = std::move(values);
  }

  void domains(std::string_view k, std::vector<std::string>& out) {
    strings(k, "a domain name", nameprep_domain, out);
  }

  // The location of `k` for checks across keys; the key must be present.
  const toml::source_region& where(std::string_view k) { return find(k)->key->source(); }

 private:
  struct Entry {
    const toml::key* key;
    const toml::node* node;
  };

  std::optional<Entry> find(std::string_view k) {
    auto it = table_.find(k);
    if (it == table_.end()) return std::nullopt;
    reader_.remember(path(k), it->first.source());
    return Entry{&it->first, &it->second};
  }

  void bytes(std::string_view k, std::uint64_t lo, std::uint64_t hi, bool rate,
             std::uint64_t& out) {
    auto e = find(k);
    if (!e) return;
    std::optional<std::uint64_t> value;
    if (const auto* i = e->node->as_integer(); i && i->get() >= 0)
      value = static_cast<std::uint64_t>(i->get());
    if (const auto* s = e->node->as_string()) value = parse_byte_size(s->get(), hi, rate);
    if (!value || *value < lo || *value > hi) {
      bad(*e, k,
          fmt::format("an integer between {} and {} or a size such as \"500KiB\", \"10MiB\" or "
                      "\"1GB\"",
                      lo, hi));
    }
    out = *value;
  }

  [[noreturn]] void bad(const Entry& e, std::string_view k, std::string_view expected) {
    reader_.fail(e.key->source(), path(k),
                 fmt::format("expected {}, got {}", expected, describe(*e.node)));
  }

  Reader& reader_;
  const toml::table& table_;
  std::string path_;
};

std::optional<std::string> as_is_if(bool ok, std::string_view s) {
  if (!ok) return std::nullopt;
  return std::string(s);
}

void read_server(Reader& r, const toml::table& t, ServerConfig& c) {
  Section s(r, t, "server", {"domains", "listen", "log_level", "data_dir", "shutdown_timeout"});
  s.domains("domains", c.domains);
  if (c.domains.empty()) r.fail(s.where("domains"), "server.domains", "expected at least one");
  s.strings(
      "listen", "an IP address", [](std::string_view a) { return as_is_if(is_ip_address(a), a); },
      c.listen);
  s.choice("log_level", {"trace", "debug", "info", "warn", "error", "off"}, c.log_level);
  s.string("data_dir", c.data_dir, /*allow_empty=*/false);
  s.duration("shutdown_timeout", c.shutdown_timeout);
}

// Each table of the table `key` of `s` that is named by a domain ([tls.domains."example.org"]):
// `read` is given the prepared domain, the table as a Section with the `known` keys, its key
// (for the position of errors) and its path.
template <class Read>
void domain_tables(Reader& r, Section& s, std::string_view key,
                   std::initializer_list<std::string_view> known, Read read) {
  const toml::table* domains = s.table(key);
  if (!domains) return;
  for (auto&& [k, v] : *domains) {
    const std::string path = s.path(key) + "." + key_part(k.str());
    auto domain = nameprep_domain(k.str());
    if (!domain) r.fail(k.source(), path, "expected a domain name as the table name");
    if (!v.is_table()) {
      r.fail(k.source(), path, fmt::format("expected a table, got {}", describe(v)));
    }
    Section d(r, *v.as_table(), path, known);
    read(*domain, d, k, path);
  }
}

void read_tls(Reader& r, const toml::table& t, TlsConfig& c) {
  Section s(r, t, "tls", {"cert", "key", "ca_file", "c2s_min_version", "domains"});
  s.readable_file("cert", c.default_cert.cert, Pem::kCertificate);
  s.readable_file("key", c.default_cert.key, Pem::kPrivateKey);
  s.readable_file("ca_file", c.ca_file, Pem::kCertificate);
  s.choice("c2s_min_version", {"1.2", "1.3"}, c.c2s_min_version);
  if (c.default_cert.cert.empty() != c.default_cert.key.empty()) {
    r.fail_at({"tls.cert", "tls.key"}, "tls.cert and tls.key must be set together");
  }

  std::map<std::string, CertKey> out;
  domain_tables(
      r, s, "domains", {"cert", "key"},
      [&](const std::string& domain, Section& d, const toml::key& k, const std::string& path) {
        CertKey pair;
        d.readable_file("cert", pair.cert, Pem::kCertificate);
        d.readable_file("key", pair.key, Pem::kPrivateKey);
        if (pair.cert.empty() || pair.key.empty()) {
          r.fail(k.source(), path + (pair.cert.empty() ? ".cert" : ".key"),
                 "missing; a domain needs both cert and key");
        }
        if (!out.emplace(domain, std::move(pair)).second) {
          r.fail(k.source(), path, fmt::format("duplicate domain {}", quote(domain)));
        }
      });
  c.domains = std::move(out);
}

void read_limits(Reader& r, const toml::table& t, StreamLimits& c) {
  Section s(r, t, "c2s.limits",
            {"max_stanza_size", "max_unauthenticated_stanza_size", "max_depth", "max_attributes",
             "max_header_size", "handshake_timeout", "max_write_queue", "write_stall_timeout"});
  s.integer("max_stanza_size", 1024, kMaxStanzaSize, c.max_stanza_size);
  s.integer("max_unauthenticated_stanza_size", 1024, kMaxStanzaSize,
            c.max_unauthenticated_stanza_size);
  s.integer("max_depth", 2, 1024, c.max_depth);
  s.integer("max_attributes", 1, 1024, c.max_attributes);
  s.integer("max_header_size", 256, 65536, c.max_header_size);
  s.duration("handshake_timeout", c.handshake_timeout);
  s.byte_size("max_write_queue", kMinWriteQueue, kMaxBandwidth, c.max_write_queue);
  s.duration("write_stall_timeout", c.write_stall_timeout);
}

void read_c2s(Reader& r, const toml::table& t, C2sConfig& c) {
  Section s(r, t, "c2s",
            {"enabled",
             "port",
             "direct_tls_port",
             "allow_registration",
             "max_auth_failures",
             "max_offline_messages",
             "max_offline_bytes",
             "max_offline_pending",
             "max_pending_subscriptions",
             "max_unauthenticated",
             "max_unauthenticated_per_address",
             "ping_interval",
             "ping_timeout",
             "resume_timeout",
             "max_unacked_stanzas",
             "max_unacked_bytes",
             "csi_queue_size",
             "csi_queue_bytes",
             "caps_cache_size",
             "limits"});
  s.boolean("enabled", c.enabled);
  s.integer("port", 1, 65535, c.port);
  s.integer("direct_tls_port", 0, 65535, c.direct_tls_port);
  s.boolean("allow_registration", c.allow_registration);
  s.integer("max_auth_failures", 1, 100, c.max_auth_failures);
  s.integer("max_offline_messages", 0, 1'000'000, c.max_offline_messages);
  s.byte_size("max_offline_bytes", 0, std::uint64_t{1} << 40, c.max_offline_bytes);
  s.byte_size("max_offline_pending", 1, std::uint64_t{1} << 40, c.max_offline_pending);
  s.integer("max_pending_subscriptions", 1, 1'000'000, c.max_pending_subscriptions);
  s.integer("max_unauthenticated", 1, 1'000'000, c.max_unauthenticated);
  s.integer("max_unauthenticated_per_address", 1, 1'000'000, c.max_unauthenticated_per_address);
  s.duration_or_zero("ping_interval", c.ping_interval);
  s.duration("ping_timeout", c.ping_timeout);
  s.duration_or_zero("resume_timeout", c.resume_timeout);
  s.integer("max_unacked_stanzas", 10, 1'000'000, c.max_unacked_stanzas);
  s.byte_size("max_unacked_bytes", kMinWriteQueue, kMaxBandwidth, c.max_unacked_bytes);
  s.integer("csi_queue_size", 0, 100'000, c.csi_queue_size);
  s.byte_size("csi_queue_bytes", 0, kMaxBandwidth, c.csi_queue_bytes);
  s.integer("caps_cache_size", 0, 1'000'000, c.caps_cache_size);
  if (const auto* limits = s.table("limits")) read_limits(r, *limits, c.limits);
}

void read_storage(Reader& r, const toml::table& t, StorageConfig& c) {
  Section s(r, t, "storage", {"backend", "path"});
  s.choice("backend", {"sqlite"}, c.backend);
  s.string("path", c.path);
}

void read_retry(Reader& r, const toml::table& t, RetryConfig& c) {
  Section s(r, t, "s2s.retry",
            {"max_retries", "initial_delay", "max_delay", "backoff_multiplier", "jitter"});
  s.integer("max_retries", 0, 100, c.max_retries);
  s.duration("initial_delay", c.initial_delay);
  s.duration("max_delay", c.max_delay);
  s.number("backoff_multiplier", 1.0, 10.0, c.backoff_multiplier);
  s.number("jitter", 0.0, 0.5, c.jitter);
  if (c.max_delay < c.initial_delay) {
    r.fail_at({"s2s.retry.max_delay", "s2s.retry.initial_delay"},
              fmt::format("max_delay ({}) must not be shorter than initial_delay ({})",
                          format_duration(c.max_delay), format_duration(c.initial_delay)));
  }
}

// Abuse prevention: connections, pacing, bandwidth.
void read_s2s_limits(Section& s, S2sConfig& c) {
  s.integer("connection_rate", 0, kMaxRate, c.connection_rate);
  s.integer("max_unauthenticated", 1, 1'000'000, c.max_unauthenticated);
  s.integer("max_unauthenticated_per_address", 1, 1'000'000, c.max_unauthenticated_per_address);
  s.integer("stanza_rate", 0, kMaxRate, c.stanza_rate);
  s.integer("stanza_burst", 1, kMaxBurst, c.stanza_burst);
  s.byte_rate("byte_rate", kMaxBandwidth, c.byte_rate);
  s.byte_size("byte_burst", 1, kMaxBandwidth, c.byte_burst);
  s.duration_or_zero("disconnect_when_paced_for", c.disconnect_when_paced_for);
  s.byte_rate("bandwidth_limit", kMaxBandwidth, c.bandwidth_limit);
  // A domain throttled this many stanzas in a row used to be disconnected, losing what it had
  // written. Files that set it still load (most copied it from the example), with a warning
  // that says what replaced it.
  s.retired(
      "throttle_strikes",
      [&](std::string_view k) {
        std::uint32_t ignored = 0;
        s.integer(k, 0, kMaxRate, ignored);
      },
      "no longer used, ignored: a domain over its limits is paced (read more slowly), never "
      "disconnected for volume; remove the key, and set s2s.disconnect_when_paced_for to "
      "disconnect a domain that stays paced");
}

// An allowlisted IP-literal domain could never be reached while such domains are refused.
void check_allowlist_reachable(const Reader& r, const S2sConfig& c) {
  if (c.allow_internal_addresses || c.policy != "allowlist") return;
  for (const auto& d : c.allowed_domains) {
    if (!is_ip_literal(d)) continue;
    r.fail_at({"s2s.allowed_domains", "s2s.allow_internal_addresses"},
              fmt::format("{} is an IP address, and stanzas to IP-literal domains are refused "
                          "unless s2s.allow_internal_addresses = true",
                          quote(d)));
  }
}

void read_s2s(Reader& r, const toml::table& t, S2sConfig& c) {
  Section s(r, t, "s2s",
            {"enabled",
             "port",
             "direct_tls_port",
             "cert_path",
             "key_path",
             "connect_timeout",
             "idle_timeout",
             "max_connections_per_domain",
             "max_links",
             "max_connecting",
             "policy",
             "allowed_domains",
             "blocked_domains",
             "allow_unverified_dialback",
             "unverified_dialback_domains",
             "dialback_secret",
             "tls_min_version",
             "allow_internal_addresses",
             "connection_rate",
             "max_unauthenticated",
             "max_unauthenticated_per_address",
             "stanza_rate",
             "stanza_burst",
             "byte_rate",
             "byte_burst",
             "disconnect_when_paced_for",
             "bandwidth_limit",
             "throttle_strikes",
             "max_stanza_size",
             "handshake_timeout",
             "queue_size",
             "ping_interval",
             "max_write_queue",
             "write_stall_timeout",
             "max_unacked",
             "max_unacked_bytes",
             "retry"});
  s.boolean("enabled", c.enabled);
  s.integer("port", 1, 65535, c.port);
  s.integer("direct_tls_port", 0, 65535, c.direct_tls_port);
  s.readable_file("cert_path", c.cert_path, Pem::kCertificate);
  s.readable_file("key_path", c.key_path, Pem::kPrivateKey);
  if (c.cert_path.empty() != c.key_path.empty()) {
    r.fail_at({"s2s.cert_path", "s2s.key_path"}, "cert_path and key_path must be set together");
  }
  s.duration("connect_timeout", c.connect_timeout);
  s.duration("idle_timeout", c.idle_timeout);
  s.integer("max_connections_per_domain", 1, 100, c.max_connections_per_domain);
  s.integer("max_links", 1, 10'000'000, c.max_links);
  s.integer("max_connecting", 1, 100'000, c.max_connecting);
  s.choice("policy", {"open", "allowlist", "blocklist"}, c.policy);
  s.domains("allowed_domains", c.allowed_domains);
  s.domains("blocked_domains", c.blocked_domains);
  s.boolean("allow_unverified_dialback", c.allow_unverified_dialback);
  s.domains("unverified_dialback_domains", c.unverified_dialback_domains);
  s.string("dialback_secret", c.dialback_secret);
  if (!c.dialback_secret.empty() && c.dialback_secret.size() < kMinDialbackSecret) {
    r.fail(s.where("dialback_secret"), "s2s.dialback_secret",
           fmt::format("expected at least {} characters (or \"\" to generate one), got {}",
                       kMinDialbackSecret, c.dialback_secret.size()));
  }
  s.choice("tls_min_version", {"1.2", "1.3"}, c.tls_min_version);
  s.boolean("allow_internal_addresses", c.allow_internal_addresses);
  check_allowlist_reachable(r, c);
  read_s2s_limits(s, c);
  s.integer("max_stanza_size", 1024, kMaxStanzaSize, c.max_stanza_size);
  s.duration("handshake_timeout", c.handshake_timeout);
  s.integer("queue_size", 1, 1'000'000, c.queue_size);
  s.duration("ping_interval", c.ping_interval);
  s.byte_size("max_write_queue", kMinWriteQueue, kMaxBandwidth, c.max_write_queue);
  s.duration("write_stall_timeout", c.write_stall_timeout);
  s.integer("max_unacked", 64, 100'000'000, c.max_unacked);
  s.byte_size("max_unacked_bytes", kMinWriteQueue, kMaxBandwidth, c.max_unacked_bytes);
  if (const auto* retry = s.table("retry")) read_retry(r, *retry, c.retry);
}

void read_dns(Reader& r, const toml::table& t, DnsConfig& c) {
  Section s(r, t, "dns", {"nameservers"});
  s.strings(
      "nameservers",
      "an address such as \"192.0.2.53\", \"192.0.2.53:5353\" or \"[2001:db8::53]:53\"",
      [](std::string_view a) { return as_is_if(is_nameserver(a), a); }, c.nameservers);
}

void read_metrics(Reader& r, const toml::table& t, MetricsConfig& c) {
  Section s(r, t, "metrics", {"enabled", "address", "port", "max_domains"});
  s.boolean("enabled", c.enabled);
  s.ip_address("address", c.address);
  s.integer("port", 1, 65535, c.port);
  s.integer("max_domains", 1, 100'000, c.max_domains);
}

void read_muc(Reader& r, const toml::table& t, MucConfig& c) {
  Section s(r, t, "muc",
            {"enabled", "subdomain", "room_creation", "max_occupants", "history_size",
             "history_bytes", "rejoin_history_interval", "invitations_per_message",
             "invitations_per_minute", "max_affiliations_by_invitation", "require_credential",
             "verify_with_home_server", "verify_timeout", "archive_by_default"});
  s.boolean("enabled", c.enabled);
  s.string("subdomain", c.subdomain, /*allow_empty=*/false);
  if (auto label = nameprep_domain(c.subdomain);
      !label || label->find('.') != std::string::npos || *label != c.subdomain) {
    r.fail(s.where("subdomain"), "muc.subdomain",
           fmt::format("expected one lowercase DNS label, got {}", quote(c.subdomain)));
  }
  s.choice("room_creation", {"local", "anyone"}, c.room_creation);
  s.integer("max_occupants", 1, 100'000, c.max_occupants);
  s.integer("history_size", 0, 1000, c.history_size);
  s.integer("history_bytes", 0, 64 * 1024 * 1024, c.history_bytes);
  s.duration_or_zero("rejoin_history_interval", c.rejoin_history_interval);
  s.integer("invitations_per_message", 1, 1000, c.invitations_per_message);
  s.integer("invitations_per_minute", 1, 100'000, c.invitations_per_minute);
  s.integer("max_affiliations_by_invitation", 0, 10'000'000, c.max_affiliations_by_invitation);
  s.boolean("require_credential", c.require_credential);
  s.boolean("verify_with_home_server", c.verify_with_home_server);
  s.duration("verify_timeout", c.verify_timeout);
  s.boolean("archive_by_default", c.archive_by_default);
}

void read_identity(Reader& r, const toml::table& t, IdentityConfig& c) {
  Section s(r, t, "identity", {"enabled", "credential_lifetime", "key_file"});
  s.boolean("enabled", c.enabled);
  s.duration("credential_lifetime", c.credential_lifetime);
  s.string("key_file", c.key_file);
}

void read_mam(Reader& r, const toml::table& t, MamConfig& c) {
  Section s(r, t, "mam",
            {"enabled", "default", "retention", "max_messages_per_account", "max_page_size",
             "cleanup_interval", "max_pending"});
  s.boolean("enabled", c.enabled);
  s.choice("default", {"always", "roster", "never"}, c.default_mode);
  s.duration_or_zero("retention", c.retention);
  s.integer("max_messages_per_account", 0, std::uint64_t{1} << 40, c.max_messages_per_account);
  s.integer("max_page_size", 1, 10'000, c.max_page_size);
  s.duration("cleanup_interval", c.cleanup_interval);
  s.integer("max_pending", 10, 1'000'000, c.max_pending);
}

void read_push(Reader& r, const toml::table& t, PushConfig& c) {
  Section s(r, t, "push",
            {"enabled", "max_registrations_per_account", "allow_body", "notify_timeout"});
  s.boolean("enabled", c.enabled);
  s.integer("max_registrations_per_account", 1, 100, c.max_registrations_per_account);
  s.boolean("allow_body", c.allow_body);
  s.duration("notify_timeout", c.notify_timeout);
}

void read_pep(Reader& r, const toml::table& t, PepServiceConfig& c) {
  Section s(r, t, "pep", {"enabled", "max_item_bytes", "max_items", "max_nodes"});
  s.boolean("enabled", c.enabled);
  s.integer("max_item_bytes", 64, 16 * 1024 * 1024, c.max_item_bytes);
  s.integer("max_items", 1, 100'000, c.max_items);
  s.integer("max_nodes", 1, 100'000, c.max_nodes);
}

void read_contact(Reader& r, const toml::table& t, ContactConfig& c) {
  Section s(r, t, "contact",
            {"abuse", "admin", "feedback", "sales", "security", "status", "support"});
  // A URI: a scheme (RFC 3986 §3.1) and something after it.
  auto uri = [](std::string_view u) {
    const auto colon = u.find(':');
    const bool ok = colon != std::string_view::npos && colon > 0 && colon + 1 < u.size() &&
                    std::isalpha(static_cast<unsigned char>(u[0])) &&
                    u.find_first_of(" \t\r\n<>\"") == std::string_view::npos;
    return as_is_if(ok, u);
  };
  s.strings("abuse", "a URI", uri, c.abuse);
  s.strings("admin", "a URI", uri, c.admin);
  s.strings("feedback", "a URI", uri, c.feedback);
  s.strings("sales", "a URI", uri, c.sales);
  s.strings("security", "a URI", uri, c.security);
  s.strings("status", "a URI", uri, c.status);
  s.strings("support", "a URI", uri, c.support);
}

void read_turn(Reader& r, const toml::table& t, TurnConfig& c) {
  Section s(r, t, "turn", {"host", "port", "tls_port", "tcp", "secret", "secret_file", "ttl"});
  s.string("host", c.host);
  s.integer("port", 1, 65535, c.port);
  s.integer("tls_port", 0, 65535, c.tls_port);
  s.boolean("tcp", c.tcp);
  s.string("secret", c.secret);
  std::string file;
  s.readable_file("secret_file", file);
  if (!file.empty()) {
    if (!c.secret.empty()) r.fail_at({"turn.secret", "turn.secret_file"}, "set one of the two");
    std::ifstream in(file, std::ios::binary);
    std::getline(in, c.secret);  // the first line, without its end
    if (!c.secret.empty() && c.secret.back() == '\r') c.secret.pop_back();
    if (c.secret.empty()) r.fail_at({"turn.secret_file"}, "the file's first line is empty");
  }
  s.duration("ttl", c.ttl);
}

void read_web(Reader& r, const toml::table& t, WebConfig& c) {
  Section s(r, t, "web",
            {"enabled", "port", "plain_address", "plain_port", "websocket_path", "allowed_origins",
             "public_url", "client_path", "client_dir"});
  s.boolean("enabled", c.enabled);
  s.integer("port", 0, 65535, c.port);
  s.ip_address("plain_address", c.plain_address);
  if (auto ip = parse_ip(c.plain_address); ip && !ip->loopback()) {
    r.fail(
        s.where("plain_address"), "web.plain_address",
        fmt::format("plain HTTP is for a proxy on this host: expected a loopback address, got {}",
                    quote(c.plain_address)));
  }
  s.integer("plain_port", 0, 65535, c.plain_port);
  s.string("websocket_path", c.websocket_path, /*allow_empty=*/false);
  if (c.websocket_path.front() != '/' ||
      c.websocket_path.find_first_of(" ?#\t\r\n") != std::string::npos) {
    r.fail(s.where("websocket_path"), "web.websocket_path",
           fmt::format("expected a path such as \"/xmpp-websocket\", got {}",
                       quote(c.websocket_path)));
  }
  auto url = [](std::string_view u) {
    const bool scheme = u.starts_with("https://") || u.starts_with("http://");
    const auto rest = u.substr(u.find("//") + 2);
    const bool ok = scheme && !rest.empty() && rest.front() != '/' &&
                    u.find_first_of(" \t\r\n<>\"'") == std::string_view::npos;
    return as_is_if(ok, u);
  };
  s.strings(
      "allowed_origins", "\"*\" or an origin such as \"https://chat.example.org\"",
      [&](std::string_view o) { return o == "*" ? as_is_if(true, o) : url(o); }, c.allowed_origins);
  s.string("client_path", c.client_path);
  if (!c.client_path.empty() &&
      (c.client_path.front() != '/' || c.client_path.back() != '/' ||
       c.client_path.find_first_of(" ?#\\\t\r\n") != std::string::npos || c.client_path == "/" ||
       c.client_path.starts_with("/upload/") || c.client_path.starts_with("/.well-known/"))) {
    r.fail(s.where("client_path"), "web.client_path",
           fmt::format("expected a path such as \"/chat/\" (with both slashes), got {}",
                       quote(c.client_path)));
  }
  s.string("client_dir", c.client_dir);
  s.string("public_url", c.public_url);
  if (!c.public_url.empty() && !url(c.public_url)) {
    r.fail(s.where("public_url"), "web.public_url",
           fmt::format("expected a URL such as \"https://chat.example.org\", got {}",
                       quote(c.public_url)));
  }
}

void read_upload(Reader& r, const toml::table& t, UploadConfig& c) {
  Section s(r, t, "upload",
            {"enabled", "path", "max_file_size", "quota_per_user", "max_total_size", "expire_after",
             "slot_timeout", "min_upload_rate", "allow_remote", "cleanup_interval"});
  s.boolean("enabled", c.enabled);
  s.string("path", c.path);
  constexpr std::uint64_t kTiB = 1024ull * 1024 * 1024 * 1024;
  s.byte_size("max_file_size", 1, kTiB, c.max_file_size);
  s.byte_size("quota_per_user", 0, 1024 * kTiB, c.quota_per_user);
  s.byte_size("max_total_size", 0, 1024 * kTiB, c.max_total_size);
  s.duration_or_zero("expire_after", c.expire_after);
  s.duration("slot_timeout", c.slot_timeout);
  s.byte_rate("min_upload_rate", kTiB, c.min_upload_rate);
  s.boolean("allow_remote", c.allow_remote);
  s.duration("cleanup_interval", c.cleanup_interval);
}

// Listeners that would collide at bind time are reported here, with the key that set them.
void read_components(Reader& r, const toml::table& t, ComponentsConfig& c) {
  Section s(r, t, "components", {"listen", "port", "domains"});
  s.strings(
      "listen", "an IP address", [](std::string_view a) { return as_is_if(is_ip_address(a), a); },
      c.listen);
  s.integer("port", 1, 65535, c.port);
  domain_tables(
      r, s, "domains", {"secret", "secret_file"},
      [&](const std::string& domain, Section& d, const toml::key& k, const std::string& path) {
        std::string secret, file;
        d.string("secret", secret);
        d.readable_file("secret_file", file);
        if (secret.empty() == file.empty()) {
          r.fail(k.source(), path, "needs exactly one of secret and secret_file");
        }
        if (!file.empty()) {
          std::ifstream in(file, std::ios::binary);
          std::getline(in, secret);  // the first line, without its end
          if (!secret.empty() && secret.back() == '\r') secret.pop_back();
          if (secret.empty())
            r.fail(k.source(), path + ".secret_file", "the file's first line is empty");
        }
        if (!c.secrets.emplace(domain, std::move(secret)).second) {
          r.fail(k.source(), path, fmt::format("duplicate domain {}", quote(domain)));
        }
      });
}

void check_ports(const Reader& r, const Config& c) {
  if (c.c2s.enabled && c.c2s.direct_tls_port == c.c2s.port) {
    r.fail_at({"c2s.direct_tls_port", "c2s.port"}, "c2s.port and c2s.direct_tls_port are equal");
  }
  if (c.c2s.enabled && c.s2s.enabled &&
      (c.s2s.port == c.c2s.port || c.s2s.port == c.c2s.direct_tls_port)) {
    r.fail_at({"s2s.port", "c2s.port", "c2s.direct_tls_port"},
              fmt::format("port {} is used by both c2s and s2s", c.s2s.port));
  }
  if (!c.components.secrets.empty()) {
    const std::uint16_t p = c.components.port;
    if ((c.c2s.enabled && (p == c.c2s.port || p == c.c2s.direct_tls_port)) ||
        (c.s2s.enabled && p == c.s2s.port) || (c.metrics.enabled && p == c.metrics.port)) {
      r.fail_at({"components.port", "c2s.port", "c2s.direct_tls_port", "s2s.port", "metrics.port"},
                fmt::format("port {} is used by components and another listener", p));
    }
  }
  if (c.web.enabled && c.web.port != 0) {
    const std::uint16_t p = c.web.port;
    if ((c.c2s.enabled && (p == c.c2s.port || p == c.c2s.direct_tls_port)) ||
        (c.s2s.enabled && p == c.s2s.port) ||
        (!c.components.secrets.empty() && p == c.components.port) || (c.web.plain_port == p)) {
      r.fail_at({"web.port", "web.plain_port", "c2s.port", "c2s.direct_tls_port", "s2s.port",
                 "components.port"},
                fmt::format("port {} is used by web and another listener", p));
    }
  }
  if (c.web.enabled && c.web.plain_port != 0 && c.metrics.enabled &&
      c.web.plain_port == c.metrics.port && c.web.plain_address == c.metrics.address) {
    r.fail_at({"web.plain_port", "metrics.port"},
              fmt::format("port {} on {} is used by both web and metrics", c.web.plain_port,
                          quote(c.metrics.address)));
  }
  if (!c.metrics.enabled) return;
  // c2s and s2s listen on every server.listen address (all addresses when empty).
  const auto metrics_address = parse_ip(c.metrics.address);
  const bool shared_address =
      c.server.listen.empty() ||
      std::any_of(c.server.listen.begin(), c.server.listen.end(), [&](const std::string& a) {
        const auto listen = parse_ip(a);
        return listen && metrics_address && overlap(*listen, *metrics_address);
      });
  if (!shared_address) return;
  const struct {
    bool on;
    std::uint16_t port;
    std::string_view key;
  } listeners[] = {{c.c2s.enabled, c.c2s.port, "c2s.port"},
                   {c.c2s.enabled, c.c2s.direct_tls_port, "c2s.direct_tls_port"},
                   {c.s2s.enabled, c.s2s.port, "s2s.port"},
                   {c.web.enabled, c.web.port, "web.port"}};
  for (const auto& l : listeners) {
    if (!l.on || l.port != c.metrics.port) continue;
    const std::string_view service = l.key.substr(0, 3);
    r.fail_at({"metrics.port", l.key, "metrics.address", "server.listen"},
              fmt::format("port {} is used by both {} and metrics on {}", l.port, service,
                          quote(c.metrics.address)));
  }
}

}  // namespace

std::string Config::identity_key_path() const {
  if (!identity.key_file.empty()) return identity.key_file;
  return (std::filesystem::path(server.data_dir) / "identity.key").string();
}

std::string Config::muc_domain(const std::string& domain) const {
  if (!muc.enabled) return {};
  return muc.subdomain + "." + domain;
}

std::vector<std::string> Config::hosted_domains() const {
  std::vector<std::string> out = server.domains;
  for (const auto& d : server.domains) {
    auto m = muc_domain(d);
    if (!m.empty() && std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
  }
  for (const auto& [d, secret] : components.secrets) out.push_back(d);
  return out;
}

std::string Config::upload_path() const {
  if (!upload.path.empty()) return upload.path;
  return (std::filesystem::path(server.data_dir) / "uploads").string();
}

std::string Config::storage_path() const {
  if (!storage.path.empty()) return storage.path;
  return (std::filesystem::path(server.data_dir) / "waddle.db").string();
}

Config default_config() {
  return Config{};
}

Config parse_config(std::string_view text, const std::string& name) {
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(name));
  } catch (const toml::parse_error& e) {
    Reader(name).fail(e.source(), "syntax error", e.description());
  }

  Reader r(name);
  Config c;
  Section s(r, root, "",
            {"server", "tls", "c2s", "storage", "s2s", "dns", "metrics", "muc", "identity", "mam",
             "push", "pep", "contact", "turn", "components", "web", "upload"});
  if (const auto* t = s.table("server")) read_server(r, *t, c.server);
  if (const auto* t = s.table("tls")) read_tls(r, *t, c.tls);
  if (const auto* t = s.table("c2s")) read_c2s(r, *t, c.c2s);
  if (const auto* t = s.table("storage")) read_storage(r, *t, c.storage);
  if (const auto* t = s.table("s2s")) read_s2s(r, *t, c.s2s);
  if (const auto* t = s.table("dns")) read_dns(r, *t, c.dns);
  if (const auto* t = s.table("metrics")) read_metrics(r, *t, c.metrics);
  if (const auto* t = s.table("muc")) read_muc(r, *t, c.muc);
  if (const auto* t = s.table("identity")) read_identity(r, *t, c.identity);
  if (const auto* t = s.table("mam")) read_mam(r, *t, c.mam);
  if (const auto* t = s.table("push")) read_push(r, *t, c.push);
  if (const auto* t = s.table("pep")) read_pep(r, *t, c.pep);
  if (const auto* t = s.table("contact")) read_contact(r, *t, c.contact);
  if (const auto* t = s.table("turn")) read_turn(r, *t, c.turn);
  if (const auto* t = s.table("components")) read_components(r, *t, c.components);
  if (const auto* t = s.table("web")) read_web(r, *t, c.web);
  if (const auto* t = s.table("upload")) read_upload(r, *t, c.upload);
  check_ports(r, c);
  c.warnings = r.take_warnings();
  for (const auto& d : c.server.domains) {
    auto m = c.muc_domain(d);
    if (!m.empty() &&
        std::find(c.server.domains.begin(), c.server.domains.end(), m) != c.server.domains.end()) {
      r.fail_at({"muc.subdomain", "server.domains"},
                fmt::format("the room service {} is also listed in server.domains", quote(m)));
    }
  }
  for (const auto& [d, secret] : c.components.secrets) {
    const auto hosted = c.hosted_domains();
    if (std::count(hosted.begin(), hosted.end(), d) > 1) {
      r.fail_at(
          {"components.domains", "server.domains", "muc.subdomain"},
          fmt::format("the component domain {} is also a user domain or a room service", quote(d)));
    }
  }
  return c;
}

namespace {
std::uint64_t at_least_two_stanzas(std::uint64_t configured, const Config& c) {
  const std::uint64_t largest = std::max(c.c2s.limits.max_stanza_size, c.s2s.max_stanza_size);
  return std::max(configured, 2 * largest);
}
}  // namespace

std::uint64_t Config::c2s_write_queue() const {
  return at_least_two_stanzas(c2s.limits.max_write_queue, *this);
}

std::uint64_t Config::c2s_unacked_bytes() const {
  return at_least_two_stanzas(c2s.max_unacked_bytes, *this);
}

std::uint64_t Config::s2s_write_queue() const {
  return at_least_two_stanzas(s2s.max_write_queue, *this);
}

Config load_config(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw ConfigError(fmt::format("{}: cannot read: {}", path, std::strerror(errno)));
  std::string text;
  std::array<char, 8192> buf;
  for (;;) {
    const std::size_t n = std::fread(buf.data(), 1, buf.size(), f.get());
    const int err = errno;
    text.append(buf.data(), n);
    if (n == buf.size()) continue;
    if (std::ferror(f.get())) {
      throw ConfigError(fmt::format("{}: cannot read: {}", path, std::strerror(err)));
    }
    break;
  }
  Config c = parse_config(text, path);
  c.source = path;
  return c;
}

}  // namespace waddle::core
