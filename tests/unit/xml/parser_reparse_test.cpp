// StreamParser reparse guard (CVE-2023-52425): expat 2.5 re-tokenizes an unfinished token from
// its first byte on every XML_Parse call, so a peer trickling a huge start tag one byte per
// read would cost quadratic CPU. These tests check that the work stays linear however the
// input is split, and that the guard changes nothing observable: the same events, delivered in
// the same feed() call, and the same errors at the same byte counts.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/errors.h"
#include "xml/parser.h"

namespace waddle::xml {
namespace {

using core::StreamError;
using Kind = StreamEvent::Kind;

constexpr std::string_view kHeader =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' to='example.test' version='1.0'>";

std::string repeat(std::string_view s, std::size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (std::size_t i = 0; i < n; ++i) out += s;
  return out;
}

std::string describe(const StreamEvent& ev) {
  switch (ev.kind) {
    case Kind::kStreamOpen:
      return "open{" + ev.element.ns() + "}" + ev.element.str() + " default=" + ev.default_ns;
    case Kind::kElement:
      return "element {" + ev.element.ns() + "}" + ev.element.str();
    case Kind::kStreamClose:
      return "close";
  }
  return "?";
}

struct FeedRun {
  std::vector<std::string> events;
  std::optional<StreamError> error;
  std::size_t fed = 0;       // bytes handed to feed() up to and including the failing call
  std::size_t max_held = 0;  // largest bytes_held() seen: proves the guard was exercised
  std::size_t scanned = 0;   // bytes_scanned() at the end
  bool on_time = true;       // every feed delivered exactly the events its prefix completes
  std::size_t late_at = 0;   // first prefix length where that failed
};

// Feeds `doc` split at `cuts` (increasing offsets), stopping at the first error. If
// `events_at_prefix` is given, checks after every feed that the events delivered so far are
// exactly as many as a one-shot parse of the bytes received so far delivers.
FeedRun run(std::string_view doc, const std::vector<std::size_t>& cuts, const ParserLimits& limits,
            const std::vector<std::size_t>* events_at_prefix = nullptr) {
  FeedRun r;
  StreamParser p(limits);
  std::vector<StreamEvent> events;
  std::size_t pos = 0;
  auto feed_to = [&](std::size_t end) {
    r.fed = end;
    r.error = p.feed(doc.substr(pos, end - pos), events);
    pos = end;
    r.max_held = std::max(r.max_held, p.bytes_held());
    if (events_at_prefix && !r.error && r.on_time && events.size() != (*events_at_prefix)[end]) {
      r.on_time = false;
      r.late_at = end;
    }
    return !r.error;
  };
  bool ok = true;
  for (std::size_t cut : cuts)
    if (cut > pos && cut < doc.size() && !(ok = feed_to(cut))) break;
  if (ok) feed_to(doc.size());
  for (const auto& ev : events) r.events.push_back(describe(ev));
  r.scanned = p.bytes_scanned();
  return r;
}

FeedRun one_shot(std::string_view doc, const ParserLimits& limits) {
  return run(doc, {}, limits);
}

std::vector<std::size_t> every_byte(std::size_t n) {
  std::vector<std::size_t> cuts;
  for (std::size_t i = 1; i < n; ++i) cuts.push_back(i);
  return cuts;
}

std::vector<std::size_t> random_cuts(std::size_t n, unsigned seed, std::size_t max_chunk) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::size_t> len(1, max_chunk);
  std::vector<std::size_t> cuts;
  for (std::size_t pos = len(rng); pos < n; pos += len(rng)) cuts.push_back(pos);
  return cuts;
}

// Number of events a one-shot parse of each prefix of `doc` delivers (error-free prefixes).
std::vector<std::size_t> events_at_each_prefix(std::string_view doc, const ParserLimits& limits) {
  std::vector<std::size_t> counts(doc.size() + 1, 0);
  for (std::size_t k = 0; k <= doc.size(); ++k) {
    StreamParser p(limits);
    std::vector<StreamEvent> events;
    p.feed(doc.substr(0, k), events);
    counts[k] = events.size();
  }
  return counts;
}

ParserLimits roomy_limits() {
  ParserLimits l;
  l.max_stanza_size = 1024 * 1024;
  l.max_attributes = 100000;
  return l;
}

// --- CPU work ---
//
// Metric: bytes_scanned() = sum over XML_Parse calls of (bytes of the unfinished token left by
// the previous call + new bytes). expat 2.5 starts every call by tokenizing its unfinished
// token again from the first byte (and moves it within its buffer), so this is the number of
// bytes expat tokenizes. Without the guard, trickling an n-byte token one byte per feed makes
// it ~n^2/2 (about 2e10 for 200 KiB); with it, each byte is re-scanned a bounded number of
// times (geometric hold sizes), so it stays below a small multiple of n.

constexpr std::size_t kBig = 200 * 1024;
constexpr std::size_t kMaxWorkFactor = 8;

struct WorkCase {
  const char* label;
  std::string stanza;                // fed byte by byte after the header
  std::optional<StreamError> error;  // expected at the last byte, or none: delivered there
};

void PrintTo(const WorkCase& c, std::ostream* os) {
  *os << c.label;
}

class ReparseWorkTest : public ::testing::TestWithParam<WorkCase> {};

TEST_P(ReparseWorkTest, TrickledOneBytePerFeed_ExpatWorkIsLinear) {
  const WorkCase& c = GetParam();
  StreamParser p(roomy_limits());
  std::vector<StreamEvent> events;
  ASSERT_FALSE(p.feed(kHeader, events));
  ASSERT_EQ(events.size(), 1u);
  const std::size_t before = p.bytes_scanned();
  std::size_t max_held = 0;
  std::optional<StreamError> err;
  for (std::size_t i = 0; i < c.stanza.size() && !err; ++i) {
    err = p.feed(std::string_view(c.stanza).substr(i, 1), events);
    max_held = std::max(max_held, p.bytes_held());
    if (i + 1 < c.stanza.size()) {
      ASSERT_FALSE(err) << "at byte " << i;
      ASSERT_EQ(events.size(), 1u) << "at byte " << i;
    }
  }
  const std::size_t work = p.bytes_scanned() - before;
  EXPECT_LT(work, kMaxWorkFactor * c.stanza.size())
      << "expat scanned " << work << " bytes for a " << c.stanza.size() << "-byte stanza";
  EXPECT_GT(max_held, 0u);  // the guard was engaged
  EXPECT_EQ(err, c.error);
  if (!c.error) {
    // Delivered by the feed of its last byte, equal to the one-shot parse.
    ASSERT_EQ(events.size(), 2u);
    auto whole = one_shot(std::string(kHeader) + c.stanza, roomy_limits());
    ASSERT_EQ(whole.events.size(), 2u);
    EXPECT_EQ(describe(events[1]), whole.events[1]);
  }
}

// A start tag of about `size` bytes with attributes whose values are `value_size` bytes long.
// (Few enough attributes that building the Element stays cheap: set_attr is linear.)
std::string many_attributes(std::size_t size, std::size_t value_size = 5) {
  std::string out = "<message";
  const std::string value(value_size, 'v');
  for (std::size_t i = 0; out.size() < size; ++i)
    out += " a" + std::to_string(i) + "='" + value + "'";
  return out + "/>";
}

INSTANTIATE_TEST_SUITE_P(
    Tokens, ReparseWorkTest,
    ::testing::Values(
        WorkCase{"long_attribute_value", "<message to='" + std::string(kBig, 'a') + "'/>", {}},
        WorkCase{"many_attributes", many_attributes(kBig, 100), {}},
        // '>' is legal in attribute values: it must not force a re-scan each time.
        WorkCase{"gt_in_attribute_values",
                 "<message to='" + std::string(kBig / 2, '>') + "' from=\"" +
                     repeat("'>", kBig / 4) + "\"><body>x</body></message>",
                 {}},
        WorkCase{"long_element_name",
                 "<message><" + std::string(kBig / 2, 'n') + ">t</" + std::string(kBig / 2, 'n') +
                     "></message>",
                 {}},
        // A character reference may have any number of leading zeros.
        WorkCase{"long_character_reference",
                 "<message><body>&#x" + std::string(kBig, '0') + "41;</body></message>",
                 {}},
        // Refused when complete, by the feed of its last byte.
        WorkCase{"gt_in_comment", "<message><!--" + repeat("->", kBig / 2) + "x-->",
                 StreamError::kRestrictedXml},
        WorkCase{"gt_in_processing_instruction", "<message><?pi " + repeat("a>", kBig / 2) + "?>",
                 StreamError::kRestrictedXml}),
    [](const auto& info) { return std::string(info.param.label); });

TEST(ReparseWorkMetricTest, CountsNewBytesPlusTheUnfinishedTokenRescanned) {
  StreamParser p;
  std::vector<StreamEvent> events;
  ASSERT_FALSE(p.feed(kHeader, events));
  EXPECT_EQ(p.bytes_scanned(), kHeader.size());
  // A short unfinished token (below the guard's threshold) is re-scanned by the next call.
  ASSERT_FALSE(p.feed("<message to='ab", events));
  EXPECT_EQ(p.bytes_scanned(), kHeader.size() + 15);
  ASSERT_FALSE(p.feed("c'/>", events));
  EXPECT_EQ(p.bytes_scanned(), kHeader.size() + 15 + 15 + 4);
  EXPECT_EQ(events.size(), 2u);
  p.reset();
  EXPECT_EQ(p.bytes_scanned(), 0u);
}

// --- the guard changes nothing observable ---

// A stream exercising the guard: start tags and an element name longer than its threshold,
// with '>' and both quote kinds in values, multi-byte UTF-8 in names, values and text,
// references, CDATA, nesting, keepalives and the stream close.
const std::string& guarded_stream() {
  static const std::string s = [] {
    std::string attrs;
    for (int i = 0; i < 14; ++i) {
      const char q = i % 2 ? '"' : '\'';
      const char other = i % 2 ? '\'' : '"';
      attrs += std::string(" a") + std::to_string(i) + "=" + q + "x>y" + other +
               "/\xc3\xa9\xe2\x98\xba &amp;&#x263A;&lt;>" + other + "z\xf0\x9f\x98\x80" + q;
    }
    const std::string long_name = "r\xc3\xa9" + std::string(520, 'n');
    return std::string(kHeader) +
           "<message to='juliet@example.test' d\xc3\xad"
           "a='l\xc3\xbanes'" +
           attrs + ">" + "<body>caf\xc3\xa9 \xe2\x98\xba &lt;&#x1F600;&#x0000041;</body>" + "<" +
           long_name + " xmlns='urn:x' k='" + std::string(540, '>') + "'><c><d/></c>" +
           "<![CDATA[<raw> & ]] ]]>" + "</" + long_name + "></message>\n \t" +
           "<iq type='get' id='i1'" + attrs + "/>" + "<presence/> " + "<message><body>" +
           std::string(200, 'b') + "</body></message>" + "</stream:stream>";
  }();
  return s;
}

class ReparseEquivalenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    whole_ = one_shot(guarded_stream(), limits_);
    ASSERT_FALSE(whole_.error) << core::to_string(*whole_.error);
    ASSERT_EQ(whole_.events.size(), 6u);
    static const std::vector<std::size_t> counts = events_at_each_prefix(guarded_stream(), {});
    counts_ = &counts;
  }

  void expect_same(const FeedRun& r, const std::string& what) {
    EXPECT_FALSE(r.error) << what << ": " << core::to_string(*r.error);
    EXPECT_EQ(r.events, whole_.events) << what;
    EXPECT_TRUE(r.on_time) << what << ": events late or early after " << r.late_at << " bytes";
  }

  ParserLimits limits_;
  FeedRun whole_;
  const std::vector<std::size_t>* counts_ = nullptr;  // events at each prefix length
};

TEST_F(ReparseEquivalenceTest, ByteByByte_SameEventsEachDeliveredByTheFeedCompletingIt) {
  auto r = run(guarded_stream(), every_byte(guarded_stream().size()), limits_, counts_);
  expect_same(r, "byte by byte");
  EXPECT_GT(r.max_held, 0u);
}

TEST_F(ReparseEquivalenceTest, EveryTwoWaySplit_SameEventsOnTime) {
  const std::string& s = guarded_stream();
  for (std::size_t split = 1; split < s.size(); ++split) {
    auto r = run(s, {split}, limits_, counts_);
    expect_same(r, "split " + std::to_string(split));
    if (HasFailure()) break;
  }
}

TEST_F(ReparseEquivalenceTest, SmallChunkThenRest_SameEventsOnTime) {
  // The guard engages after the first chunks; the rest arrives in one piece.
  const std::string& s = guarded_stream();
  for (std::size_t chunk : {1u, 2u, 3u, 7u, 64u}) {
    for (std::size_t split = 1; split < s.size(); split += 97) {
      std::vector<std::size_t> cuts;
      for (std::size_t pos = chunk; pos < split; pos += chunk) cuts.push_back(pos);
      cuts.push_back(split);
      auto r = run(s, cuts, limits_, counts_);
      expect_same(r, "chunk " + std::to_string(chunk) + " until " + std::to_string(split));
      if (HasFailure()) return;
    }
  }
}

TEST_F(ReparseEquivalenceTest, FixedAndRandomChunks_SameEventsOnTime) {
  const std::string& s = guarded_stream();
  bool engaged = false;
  for (std::size_t chunk : {2u, 3u, 5u, 16u, 511u, 513u, 1024u}) {
    std::vector<std::size_t> cuts;
    for (std::size_t pos = chunk; pos < s.size(); pos += chunk) cuts.push_back(pos);
    auto r = run(s, cuts, limits_, counts_);
    expect_same(r, "chunk " + std::to_string(chunk));
    engaged |= r.max_held > 0;
  }
  for (unsigned seed = 1; seed <= 40; ++seed) {
    for (std::size_t max_chunk : {4u, 40u, 700u}) {
      auto r = run(s, random_cuts(s.size(), seed, max_chunk), limits_, counts_);
      expect_same(r, "seed " + std::to_string(seed) + " max " + std::to_string(max_chunk));
      engaged |= r.max_held > 0;
    }
  }
  EXPECT_TRUE(engaged);
}

// --- errors ---

struct ErrorCase {
  const char* label;
  std::string doc;
  StreamError expected;
  ParserLimits limits;
};

void PrintTo(const ErrorCase& c, std::ostream* os) {
  *os << c.label;
}

class ReparseErrorTest : public ::testing::TestWithParam<ErrorCase> {};

// Without the guard the error fires at the same feed whatever the split (limits are measured
// on received bytes, and expat reports these at the byte completing a token); so must it with.
TEST_P(ReparseErrorTest, AnySplit_SameErrorAtTheSameByte) {
  const ErrorCase& c = GetParam();
  auto whole = one_shot(c.doc, c.limits);
  ASSERT_TRUE(whole.error);
  EXPECT_EQ(core::to_string(*whole.error), core::to_string(c.expected));
  // The byte at which the error fires: the shortest erroring prefix.
  std::size_t at = 1;
  while (at <= c.doc.size() && !one_shot(std::string_view(c.doc).substr(0, at), c.limits).error)
    at += std::max<std::size_t>(1, (c.doc.size() - at) / 64);
  while (at > 1 && one_shot(std::string_view(c.doc).substr(0, at - 1), c.limits).error) --at;
  ASSERT_LE(at, c.doc.size());

  std::vector<std::vector<std::size_t>> splits = {every_byte(c.doc.size())};
  for (std::size_t chunk : {3u, 100u, 600u}) {
    std::vector<std::size_t> cuts;
    for (std::size_t pos = chunk; pos < c.doc.size(); pos += chunk) cuts.push_back(pos);
    splits.push_back(cuts);
  }
  for (unsigned seed = 1; seed <= 5; ++seed) splits.push_back(random_cuts(c.doc.size(), seed, 50));
  bool engaged = false;
  for (std::size_t i = 0; i < splits.size(); ++i) {
    auto r = run(c.doc, splits[i], c.limits);
    ASSERT_TRUE(r.error) << "split set " << i;
    EXPECT_EQ(core::to_string(*r.error), core::to_string(c.expected)) << "split set " << i;
    EXPECT_EQ(r.events, whole.events) << "split set " << i;
    // The failing feed is the one containing byte `at`.
    EXPECT_GE(r.fed, at) << "split set " << i;
    if (i == 0) {
      EXPECT_EQ(r.fed, at) << "byte by byte";
    }
    engaged |= r.max_held > 0;
  }
  EXPECT_TRUE(engaged);
}

ParserLimits stanza_limit(std::size_t n) {
  ParserLimits l;
  l.max_stanza_size = n;
  return l;
}

ParserLimits attribute_limit(std::size_t n) {
  ParserLimits l;
  l.max_attributes = n;
  return l;
}

ParserLimits depth_limit(std::size_t n) {
  ParserLimits l;
  l.max_depth = n;
  return l;
}

std::string header_of_size(std::size_t size) {
  const std::string open =
      "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='";
  return open + std::string(size - open.size() - 2, 'h') + "'>";
}

const std::string kH(kHeader);

INSTANTIATE_TEST_SUITE_P(
    Limits, ReparseErrorTest,
    ::testing::Values(ErrorCase{"start_tag_never_completing",
                                kH + "<presence/><message to='" + std::string(20000, 'a'),
                                StreamError::kPolicyViolation, stanza_limit(8000)},
                      ErrorCase{
                          "start_tag_completing_over_limit",
                          kH + "<message to='" + std::string(8000 - 15, 'a') + "'/><presence/>",
                          StreamError::kPolicyViolation, stanza_limit(8000)},
                      ErrorCase{"stanza_over_limit_by_its_end_tag",
                                kH + "<message to='" + std::string(3000, 'a') + "'>" +
                                    std::string(4000, 't') + "</message>",
                                StreamError::kPolicyViolation, stanza_limit(7020)},
                      ErrorCase{"header_never_completing", header_of_size(10000),
                                StreamError::kPolicyViolation, ParserLimits{}},
                      ErrorCase{"header_one_byte_over_limit", header_of_size(4097) + "<presence/>",
                                StreamError::kPolicyViolation, ParserLimits{}},
                      ErrorCase{"too_many_attributes_in_long_tag", kH + many_attributes(3000),
                                StreamError::kPolicyViolation, attribute_limit(64)},
                      ErrorCase{"too_deep_with_long_tags",
                                kH + repeat("<e a='" + std::string(600, 'v') + "'>", 6),
                                StreamError::kPolicyViolation, depth_limit(5)}),
    [](const auto& info) { return std::string(info.param.label); });

INSTANTIATE_TEST_SUITE_P(
    Malformed, ReparseErrorTest,
    ::testing::Values(
        ErrorCase{"mismatched_end_tag_after_long_tag",
                  kH + "<message to='" + std::string(2000, 'a') + "'></iq>",
                  StreamError::kNotWellFormed, ParserLimits{}},
        ErrorCase{"duplicate_attribute_in_long_tag",
                  kH + "<message b='" + std::string(2000, 'a') + "' b='2'/>",
                  StreamError::kNotWellFormed, ParserLimits{}},
        ErrorCase{"unbound_prefix_in_long_tag",
                  kH + "<message to='" + std::string(2000, 'a') + "' p:x='1'/>",
                  StreamError::kBadNamespacePrefix, ParserLimits{}},
        ErrorCase{"comment_after_long_tag",
                  kH + "<message to='" + std::string(2000, 'a') + "'><!-- c --></message>",
                  StreamError::kRestrictedXml, ParserLimits{}},
        ErrorCase{"long_comment", kH + "<message><!--" + repeat("->", 2000) + "x--></message>",
                  StreamError::kRestrictedXml, ParserLimits{}}),
    [](const auto& info) { return std::string(info.param.label); });

// Found by tests/fuzz/stream_fuzz: a literal in the prolog ends at its closing quote, not at a
// '>', so each '>' in it made expat tokenize it again from its start (quadratic in the header
// limit). Within the header limit, and refused once complete.
TEST(ReparseGuardTest, GtInPrologLiteralTrickled_ExpatWorkIsLinear) {
  for (const std::string open : {"<!DOCTYPE stream SYSTEM '", "'"}) {
    ParserLimits limits;
    limits.max_header_size = 64 * 1024;
    const std::string literal = open + repeat("a>", 30000) + "'";
    StreamParser p(limits);
    std::vector<StreamEvent> events;
    std::optional<StreamError> err;
    std::size_t max_held = 0;
    for (std::size_t i = 0; i < literal.size() && !err; ++i) {
      err = p.feed(std::string_view(literal).substr(i, 1), events);
      max_held = std::max(max_held, p.bytes_held());
    }
    EXPECT_LT(p.bytes_scanned(), kMaxWorkFactor * literal.size()) << open;
    EXPECT_GT(max_held, 0u) << open;
    EXPECT_FALSE(err) << open;  // nothing refused before the literal is complete...
    const auto rest = p.feed(">", events);
    EXPECT_TRUE(rest) << open;  // ...and refused once it is (DOCTYPE, or a literal out of place)
    EXPECT_TRUE(events.empty());
  }
}

TEST(ReparseGuardTest, StanzaExactlyAtLimitTrickled_IsAccepted) {
  constexpr std::size_t kLimit = 8000;
  const std::string stanza = "<message to='" + std::string(kLimit - 16, 'a') + "'/>";
  ASSERT_EQ(stanza.size(), kLimit);
  const std::string doc = kH + stanza + "<presence/>";
  auto r = run(doc, every_byte(doc.size()), stanza_limit(kLimit));
  EXPECT_FALSE(r.error);
  EXPECT_EQ(r.events.size(), 3u);
  EXPECT_GT(r.max_held, 0u);
}

TEST(ReparseGuardTest, HeaderExactlyAtDefaultLimitTrickled_IsAccepted) {
  const std::string doc = header_of_size(4096) + "<presence/>";
  auto r = run(doc, every_byte(doc.size()), ParserLimits{});
  EXPECT_FALSE(r.error);
  EXPECT_EQ(r.events.size(), 2u);
  EXPECT_GT(r.max_held, 0u);
}

// A malformed byte inside a held token is found when the held bytes are handed to expat: when
// the token may end, when they reach the token's size at the start of holding, or at a limit.
// The error is the same as without the guard, reported within about the token's size again.
TEST(ReparseGuardTest, MalformedByteInsideHeldToken_SameErrorWithinTwiceItsOffset) {
  const std::size_t tag_start = kH.size();
  const std::string doc = kH + "<message to='" + std::string(3000, 'a') + "<" +
                          std::string(20000, 'a');  // '<' is not allowed in a value
  const std::size_t bad = doc.find('<', tag_start + 1) + 1;
  auto whole = one_shot(std::string_view(doc).substr(0, bad), ParserLimits{});
  EXPECT_EQ(whole.error, StreamError::kNotWellFormed);
  auto r = run(doc, every_byte(doc.size()), ParserLimits{});
  EXPECT_EQ(r.error, StreamError::kNotWellFormed);
  EXPECT_GE(r.fed, bad);
  EXPECT_LE(r.fed - tag_start, 2 * (bad - tag_start) + 1);
}

TEST(ReparseGuardTest, HeldBytesReleasedOnErrorAndReset) {
  StreamParser p;
  std::vector<StreamEvent> events;
  ASSERT_FALSE(p.feed(kHeader, events));
  ASSERT_FALSE(p.feed("<message to='" + std::string(1000, 'a'), events));
  ASSERT_FALSE(p.feed("a", events));
  EXPECT_EQ(p.bytes_held(), 1u);
  p.reset();
  EXPECT_EQ(p.bytes_held(), 0u);
  ASSERT_FALSE(p.feed(std::string(kHeader) + "<presence/>", events));
  EXPECT_EQ(events.size(), 3u);

  ASSERT_FALSE(p.feed("<message to='" + std::string(1000, 'a'), events));
  ASSERT_FALSE(p.feed("a", events));
  EXPECT_EQ(p.bytes_held(), 1u);
  EXPECT_EQ(p.feed("'></iq>", events), StreamError::kNotWellFormed);
  EXPECT_EQ(p.bytes_held(), 0u);
  EXPECT_EQ(p.feed("<presence/>", events), StreamError::kNotWellFormed);
  EXPECT_EQ(events.size(), 3u);
}

TEST(ReparseGuardTest, CompletingByteDeliversInSameFeed) {
  StreamParser p(roomy_limits());
  std::vector<StreamEvent> events;
  ASSERT_FALSE(p.feed(kHeader, events));
  ASSERT_FALSE(p.feed("<message to='" + std::string(5000, '>'), events));
  for (int i = 0; i < 5000; ++i) ASSERT_FALSE(p.feed(i % 2 ? ">" : "\"", events));
  ASSERT_GT(p.bytes_held(), 0u);
  ASSERT_FALSE(p.feed("'", events));
  ASSERT_FALSE(p.feed("/", events));
  EXPECT_EQ(events.size(), 1u);
  ASSERT_FALSE(p.feed(">", events));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].element.attr("to").size(), 10000u);
  EXPECT_EQ(p.bytes_held(), 0u);
}

}  // namespace
}  // namespace waddle::xml
