// libFuzzer target for the RFC 6120 stream parser as a peer reaches it: bytes fed in chunks
// as reads from the network would deliver them, after a real stream header or not, under the
// limits before authentication (small), after it, or raised half-way as a stream does when it
// authenticates. Checked: the same outcome however the
// bytes are split, held-back bytes within the limits, linear tokenizing work (the reparse
// guard of parser.cpp), and a serialize/parse round trip of every stanza.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "xml/element.h"
#include "xml/parser.h"

namespace {

using waddle::core::StreamError;
using waddle::xml::ParserLimits;
using waddle::xml::StreamEvent;
using waddle::xml::StreamParser;

// Before authentication: the server's element limit then ([c2s.limits]
// max_unauthenticated_stanza_size), and small other limits so that the fuzzer reaches every
// limit check.
ParserLimits pre_auth_limits() {
  ParserLimits l;
  l.max_stanza_size = 10 * 1024;
  l.max_depth = 8;
  l.max_attributes = 8;
  l.max_header_size = 512;
  return l;
}

// After authentication: the server's defaults (stream/negotiation.h, [c2s.limits]).
ParserLimits post_auth_limits() {
  return ParserLimits{};
}

constexpr std::string_view kClientHeader =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>";
constexpr std::string_view kServerHeader =
    "<stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' "
    "xmlns:stream='http://etherx.jabber.org/streams' from='a.example' to='b.example' "
    "version='1.0'>";

void check(bool ok) {
  if (!ok) __builtin_trap();
}

std::string describe(const std::vector<StreamEvent>& events) {
  std::string out;
  for (const auto& ev : events) {
    out += std::to_string(static_cast<int>(ev.kind)) + ev.element.ns() + "|" + ev.element.str() +
           "|" + ev.default_ns + "\n";
  }
  return out;
}

// Read sizes as a network delivers them: a deterministic sequence from a seed, bounded by
// `largest` (1 feeds byte by byte, 0 everything at once).
class Chunks {
 public:
  Chunks(std::uint32_t seed, std::size_t largest) : state_(seed | 1u), largest_(largest) {}
  std::size_t next() {
    if (largest_ == 0) return SIZE_MAX;
    state_ ^= state_ << 13;
    state_ ^= state_ >> 17;
    state_ ^= state_ << 5;
    return 1 + state_ % largest_;
  }

 private:
  std::uint32_t state_;
  std::size_t largest_;
};

struct Outcome {
  explicit Outcome(const ParserLimits& limits) : parser(std::make_unique<StreamParser>(limits)) {}
  std::unique_ptr<StreamParser> parser;
  std::vector<StreamEvent> events;
  std::optional<StreamError> error;
};

// Feeds `input` in reads of the sizes `chunks` gives; at byte `raise_at` (never a read's
// middle) the stanza limit is raised to the one after authentication.
Outcome feed_chunked(const ParserLimits& limits, std::string_view input, Chunks chunks,
                     std::size_t raise_at) {
  Outcome o(limits);
  StreamParser& parser = *o.parser;
  std::size_t calls = 0;
  for (std::size_t pos = 0; pos < input.size() && !o.error;) {
    if (pos == raise_at) parser.set_max_stanza_size(post_auth_limits().max_stanza_size);
    const std::size_t end = pos < raise_at ? std::min(raise_at, input.size()) : input.size();
    const std::size_t n = std::min(chunks.next(), end - pos);
    o.error = parser.feed(input.substr(pos, n), o.events);
    pos += n;
    ++calls;
    // Bytes held back from expat never exceed what the limits allow to be pending.
    const ParserLimits& now = parser.limits();
    check(parser.bytes_held() <= std::max(now.max_stanza_size, now.max_header_size));
    // Linear work: each call re-scans at most a short unfinished token (512 bytes) in full;
    // longer ones grow geometrically before they are scanned again.
    check(parser.bytes_scanned() <= 4 * pos + 513 * calls);
  }
  if (o.error) {
    // The parser stays failed with the same condition and produces nothing more.
    const std::size_t before = o.events.size();
    check(parser.feed("<presence/>", o.events) == o.error);
    check(o.events.size() == before);
    check(parser.bytes_held() == 0);
  }
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  // Byte 0: limits (bit 0), header (bits 1-2: none, client, server), largest read (bits 3-5),
  // limit raised half-way (bit 6). Bytes 1-2: the seed of the read sizes.
  const std::uint8_t mode = data[0];
  const ParserLimits limits = (mode & 1) ? post_auth_limits() : pre_auth_limits();
  constexpr std::size_t kLargest[] = {1, 2, 7, 64, 512, 1500, 16384, 65536};
  const std::size_t largest = kLargest[(mode >> 3) & 7];
  const std::uint32_t seed = std::uint32_t{data[1]} | std::uint32_t{data[2]} << 8;
  std::string input;
  if (((mode >> 1) & 3) == 1) input = kClientHeader;
  if (((mode >> 1) & 3) == 2) input = kServerHeader;
  input.append(reinterpret_cast<const char*>(data) + 3, size - 3);

  const std::size_t raise_at = (mode & 0x40) ? input.size() / 2 : SIZE_MAX;

  Outcome chunked = feed_chunked(limits, input, Chunks(seed, largest), raise_at);
  const Outcome whole = feed_chunked(limits, input, Chunks(1, 0), raise_at);

  // The split into reads changes neither whether the stream fails nor, when it does not, what
  // it delivers (where a failure is detected, and so its condition, may differ).
  // One exception (parser.cpp): a well-formedness error inside a long unfinished token whose
  // bytes are held back is reported late, once at most as many bytes again have arrived.
  if (whole.error && !chunked.error) {
    check(chunked.parser->bytes_held() > 0);
    std::optional<StreamError> late;
    const std::string filler(64, 'x');
    for (std::size_t more = 0; more <= input.size() && !late; more += filler.size())
      late = chunked.parser->feed(filler, chunked.events);
    check(late.has_value());
    return 0;
  }
  check(chunked.error.has_value() == whole.error.has_value());
  if (!chunked.error) check(describe(chunked.events) == describe(whole.events));

  // Every delivered stanza serializes to XML that parses back to the same bytes.
  for (const auto& ev : chunked.events) {
    if (ev.kind != StreamEvent::Kind::kElement) continue;
    const std::string wire = ev.element.str();
    const auto back = waddle::xml::parse_element(wire);
    check(back.has_value());
    check(back->str() == wire);
  }
  return 0;
}
