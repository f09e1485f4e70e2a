// What a DNS reply means for the question asked: c-ares parses the records, the TTLs are read
// here from the message itself (RFC 1035 §4.1, RFC 2181 §8, RFC 2308 §5 for negative answers).
#include "s2s/dns_message.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace waddle::s2s::dns {
namespace {

constexpr std::uint32_t kMaxTtl = 86400;
constexpr std::uint32_t kMaxNegativeTtl = 3600;    // RFC 2308 §5: one to three hours at most
constexpr std::uint32_t kDefaultNegativeTtl = 60;  // negative answer without an SOA record

const char* type_name(int type) {
  switch (type) {
    case kTypeA:
      return "A";
    case kTypeAaaa:
      return "AAAA";
    case kTypeSrv:
      return "SRV";
    default:
      return "?";
  }
}

// Minimal walk over a DNS message for what c-ares' parsers drop: the answer TTL (minimum over
// the answer section, CNAMEs included) and the negative TTL min(SOA TTL, SOA minimum).
class MessageReader {
 public:
  MessageReader(const unsigned char* buf, int len) : buf_(buf), len_(len) {}

  struct Ttls {
    std::optional<std::uint32_t> answer;
    std::optional<std::uint32_t> negative;
  };

  Ttls ttls() {
    Ttls t;
    if (!buf_ || len_ < 12) return t;
    const unsigned qd = u16_at(4), an = u16_at(6), ns = u16_at(8);
    pos_ = 12;
    for (unsigned i = 0; i < qd; ++i) {
      if (!skip_name() || !has(4)) return t;
      pos_ += 4;
    }
    for (unsigned i = 0; i < an + ns; ++i) {
      if (!skip_name() || !has(10)) return t;
      const unsigned type = u16_at(pos_);
      const std::uint32_t ttl = clamp_ttl(u32_at(pos_ + 4));
      const unsigned rdlength = u16_at(pos_ + 8);
      pos_ += 10;
      if (!has(static_cast<int>(rdlength))) return t;
      const int rdata_end = pos_ + static_cast<int>(rdlength);
      if (i < an) {
        t.answer = std::min(t.answer.value_or(ttl), ttl);
      } else if (type == kTypeSoa && skip_name() && skip_name() && pos_ + 20 <= rdata_end) {
        const std::uint32_t minimum = clamp_ttl(u32_at(pos_ + 16));
        t.negative = std::min(ttl, minimum);
      }
      pos_ = rdata_end;
    }
    return t;
  }

 private:
  // RFC 2181 §8: a TTL with the top bit set is read as zero.
  static std::uint32_t clamp_ttl(std::uint32_t ttl) { return ttl > 0x7fffffffu ? 0 : ttl; }
  bool has(int n) const { return pos_ >= 0 && n >= 0 && pos_ + n <= len_; }
  unsigned u16_at(int p) const { return (unsigned{buf_[p]} << 8) | buf_[p + 1]; }
  std::uint32_t u32_at(int p) const {
    return (std::uint32_t{buf_[p]} << 24) | (std::uint32_t{buf_[p + 1]} << 16) |
           (std::uint32_t{buf_[p + 2]} << 8) | buf_[p + 3];
  }
  bool skip_name() {
    if (!has(1)) return false;
    char* name = nullptr;
    long length = 0;
    if (ares_expand_name(buf_ + pos_, buf_, len_, &name, &length) != ARES_SUCCESS) return false;
    ares_free_string(name);
    if (length <= 0 || !has(static_cast<int>(length))) return false;
    pos_ += static_cast<int>(length);
    return true;
  }

  const unsigned char* buf_;
  int len_;
  int pos_ = 0;
};

// The TTL of a negative answer: its SOA's, bounded, or the default.
std::uint32_t negative_ttl(MessageReader& reader) {
  const auto t = reader.ttls().negative;
  return t ? std::min(*t, kMaxNegativeTtl) : kDefaultNegativeTtl;
}

// What a status other than success means; nullopt on success (records follow).
std::optional<Answer> status_answer(int status, MessageReader& reader, const Servers& servers) {
  Answer a;
  switch (status) {
    case ARES_SUCCESS:
      return std::nullopt;
    case ARES_ENOTFOUND:
      a.outcome = Outcome::kNxDomain;
      a.ttl = negative_ttl(reader);
      return a;
    case ARES_ENODATA:
      a.outcome = Outcome::kNoData;
      a.ttl = negative_ttl(reader);
      return a;
    case ARES_EDESTRUCTION:
    case ARES_ECANCELLED:
      a.outcome = Outcome::kShutdown;
      return a;
    case ARES_ETIMEOUT:
      a.failure = servers.phrase + " timed out";
      a.timed_out = true;
      return a;
    case ARES_ECONNREFUSED:  // see make_channel: also SERVFAIL/REFUSED from every server
      a.failure = servers.plural ? servers.phrase + " failed or unreachable"
                                 : servers.phrase + " unreachable (connection refused)";
      return a;
    case ARES_ESERVFAIL:
      a.failure = "SERVFAIL from " + servers.phrase;
      a.server_replied = true;
      return a;
    case ARES_EREFUSED:
      a.failure = "query refused by " + servers.phrase;
      a.server_replied = true;
      return a;
    case ARES_EFORMERR:
    case ARES_ENOTIMP:
    case ARES_EBADRESP:
      a.failure = std::string(ares_strerror(status)) + " (" + servers.phrase + ")";
      a.server_replied = true;
      return a;
    case ARES_EBADNAME:
      a.failure = "invalid name";
      return a;
    default:
      a.failure = std::string(ares_strerror(status)) + " (" + servers.phrase + ")";
      return a;
  }
}

// Parses the SRV or A/AAAA records into `a`; returns c-ares' parse status.
int parse_records(int type, const unsigned char* abuf, int alen, Answer& a) {
  int parsed = ARES_SUCCESS;
  if (type == kTypeSrv) {
    ares_srv_reply* reply = nullptr;
    parsed = ares_parse_srv_reply(abuf, alen, &reply);
    for (auto* r = reply; r; r = r->next) {
      std::string target = r->host ? r->host : "";
      if (!target.empty() && target.back() == '.') target.pop_back();
      for (char& c : target) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      }
      a.srv.push_back(SrvRecord{std::move(target), r->port, r->priority, r->weight});
    }
    if (reply) ares_free_data(reply);
  } else {
    hostent* host = nullptr;
    parsed = type == kTypeA ? ares_parse_a_reply(abuf, alen, &host, nullptr, nullptr)
                            : ares_parse_aaaa_reply(abuf, alen, &host, nullptr, nullptr);
    const int family = type == kTypeA ? AF_INET : AF_INET6;
    if (host && host->h_addrtype == family) {
      for (char** p = host->h_addr_list; p && *p; ++p) {
        char text[INET6_ADDRSTRLEN];
        if (!inet_ntop(family, *p, text, sizeof text)) continue;
        if (std::find(a.addresses.begin(), a.addresses.end(), text) == a.addresses.end()) {
          a.addresses.emplace_back(text);
        }
      }
    }
    if (host) ares_free_hostent(host);
  }
  return parsed;
}

}  // namespace

Answer interpret(int type, int status, const unsigned char* abuf, int alen,
                 const Servers& servers) {
  MessageReader reader(abuf, alen);
  if (auto ended = status_answer(status, reader, servers)) return *ended;
  Answer a;
  const int parsed = parse_records(type, abuf, alen, a);
  if (parsed == ARES_ENODATA || (parsed == ARES_SUCCESS && a.srv.empty() && a.addresses.empty())) {
    // e.g. only a CNAME to a name without such a record
    a = Answer{};
    a.outcome = Outcome::kNoData;
    a.ttl = negative_ttl(reader);
    return a;
  }
  if (parsed != ARES_SUCCESS) {
    a = Answer{};
    a.failure = std::string("malformed ") + type_name(type) + " answer from " + servers.phrase;
    a.server_replied = true;
    return a;
  }
  a.outcome = Outcome::kRecords;
  a.ttl = std::min(reader.ttls().answer.value_or(0), kMaxTtl);
  return a;
}

}  // namespace waddle::s2s::dns
