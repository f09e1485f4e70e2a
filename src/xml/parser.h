// Incremental XML stream parser (expat) for RFC 6120 streams: reports the stream header,
// each complete top-level element, and the stream end; enforces the limits of ARCHITECTURE.md
// principle 5 and refuses restricted XML (RFC 6120 §11.1).
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/errors.h"
#include "xml/element.h"

namespace waddle::xml {

struct ParserLimits {
  std::size_t max_stanza_size = 256 * 1024;  // bytes of one top-level element
  std::size_t max_depth = 64;                // nesting below the stream element
  std::size_t max_attributes = 64;           // per element
  std::size_t max_header_size = 4096;        // bytes before the stream header is complete
};

struct StreamEvent {
  enum class Kind { kStreamOpen, kElement, kStreamClose };
  Kind kind;
  // kStreamOpen: name/ns of the root and its attributes; kElement: the top-level element.
  Element element;
  // kStreamOpen: the default namespace declared on the stream header ("" when none).
  std::string default_ns;
};

class StreamParser {
 public:
  explicit StreamParser(ParserLimits limits = {});
  ~StreamParser();
  StreamParser(const StreamParser&) = delete;
  StreamParser& operator=(const StreamParser&) = delete;

  // Parses `data`, appending events to `out`. On a violation returns the stream error to
  // send; the parser is then unusable until reset(). Memory held for a partial element is
  // freed on error and on reset.
  std::optional<core::StreamError> feed(std::string_view data, std::vector<StreamEvent>& out);
  // Starts a new stream (after STARTTLS or SASL success).
  void reset();

  const ParserLimits& limits() const { return limits_; }
  // A new stanza size limit from now on, the element being read included (a stream raises
  // it once authenticated: a small limit before, docs/security.md "Memory").
  void set_max_stanza_size(std::size_t bytes) { limits_.max_stanza_size = bytes; }

  // Diagnostics (tests, metrics). bytes_scanned(): bytes expat has had to tokenize since
  // construction or reset(): per XML_Parse call, the new bytes plus the unfinished token
  // carried over from the previous call, which expat 2.5 re-scans from its start
  // (CVE-2023-52425). The parser keeps this linear in the input however it is split into
  // feed() calls. bytes_held(): bytes received but not yet handed to expat because they
  // cannot complete the unfinished token expat is waiting on (see parser.cpp).
  std::size_t bytes_scanned() const;
  std::size_t bytes_held() const;

 private:
  struct Impl;
  ParserLimits limits_;
  std::unique_ptr<Impl> impl_;
};

// Parses one complete, standalone XML element (tests, stored stanzas). nullopt if invalid.
// `default_ns`: the namespace in scope around it (a stanza serialised for a stream whose
// default namespace it shares carries no xmlns of its own).
std::optional<Element> parse_element(std::string_view xml, std::string_view default_ns = {});

}  // namespace waddle::xml
