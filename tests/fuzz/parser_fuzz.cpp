// libFuzzer target for the RFC 6120 stream parser: the input is fed in two pieces split at a
// point taken from its first two bytes, then checked against a one-shot parse and a
// serialize/parse round trip of every stanza.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "xml/element.h"
#include "xml/parser.h"

namespace {

using waddle::xml::ParserLimits;
using waddle::xml::StreamEvent;
using waddle::xml::StreamParser;

// Small limits so the fuzzer reaches every limit check.
ParserLimits fuzz_limits() {
  ParserLimits l;
  l.max_stanza_size = 4096;
  l.max_depth = 8;
  l.max_attributes = 8;
  l.max_header_size = 512;
  return l;
}

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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);
  const std::size_t split = (std::size_t{data[0]} | std::size_t{data[1]} << 8) % (input.size() + 1);

  StreamParser parser(fuzz_limits());
  std::vector<StreamEvent> events;
  std::optional<waddle::core::StreamError> error = parser.feed(input.substr(0, split), events);
  if (!error) error = parser.feed(input.substr(split), events);

  if (error) {
    // The parser stays failed with the same condition and produces nothing more.
    const std::size_t before = events.size();
    check(parser.feed("<presence/>", events) == error);
    check(events.size() == before);
    parser.reset();
    return 0;
  }

  // Chunking must not change what a successful parse reports.
  StreamParser whole(fuzz_limits());
  std::vector<StreamEvent> whole_events;
  if (!whole.feed(input, whole_events)) check(describe(whole_events) == describe(events));

  // Every delivered stanza serializes to XML that parses back to the same bytes.
  for (const auto& ev : events) {
    if (ev.kind != StreamEvent::Kind::kElement) continue;
    const std::string wire = ev.element.str();
    const auto back = waddle::xml::parse_element(wire);
    check(back.has_value());
    check(back->str() == wire);
  }
  return 0;
}
