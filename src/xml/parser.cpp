// expat-driven stream parser. Limits are checked in callbacks and after every chunk, so a
// peer can never make us buffer more than one chunk beyond a limit.
//
// Reparse guard (CVE-2023-52425). expat 2.5 keeps an unfinished token (typically a start tag
// with long or many attributes) in its buffer and tokenizes it again from its first byte on
// every XML_Parse call; expat 2.6's reparse deferral is not available here. A peer trickling a
// 256 KiB start tag one byte per read would cost O(n^2) work on the reactor thread. So once
// expat is waiting on an unfinished token longer than kHoldThreshold, feed() keeps further
// bytes in `held` and hands them to expat only when
//   (a) they may end that token (TokenEnd below): every event we report, and every limit or
//       restriction checked in a handler (sizes, depth, attributes, comments, PIs), fires when
//       expat reads the '>' ending a tag, comment or PI, or
//   (b) the held bytes reach the size the token had when holding began (geometric growth, so
//       the total re-scan work stays linear), or
//   (c) the bytes received would now exceed the header or stanza limit: expat then sees
//       everything first, so the error is exactly the one it was without the guard.
// A complete stanza is therefore never delayed, and limits trip at the same feed() with the
// same error. Only a well-formedness error inside a held token (or a DOCTYPE refused at its
// '[') can be reported later, by at most the token's size again, and at the latest when a limit
// is reached.
#include "xml/parser.h"

#include <expat.h>

#include <strings.h>

#include <algorithm>
#include <cstring>

namespace waddle::xml {
namespace {

constexpr char kNsSep = ' ';

// XML whitespace (S), the only thing allowed after the stream's closing tag.
bool only_whitespace(std::string_view data) {
  return std::all_of(data.begin(), data.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
}

// Unfinished tokens up to this size are re-fed as before (each later byte costs at most this
// much re-scanning); longer ones engage the guard.
constexpr long long kHoldThreshold = 512;

// Whether bytes appended to expat's unfinished token may end it. Conservative: it may say yes
// when the token does not end (costing one re-scan), but never no when it does. A '>' ends any
// token except inside a quoted attribute value of a start tag, or inside a comment or PI
// unless it follows "--" / "?"; distinguishing those keeps a peer from forcing a re-scan per
// read by sending '>' there. A literal in the prolog (a quoted public or system id, or a quote
// out of place) ends at its closing quote whatever '>' it holds. Other pending tokens (end
// tags, references, names) end at or before their first '>', and produce no event before one.
class TokenEnd {
 public:
  // Starts tracking the unfinished token whose bytes so far are `token` (empty if unknown).
  // Returns true if it may already be complete, in which case nothing should be held.
  bool start(std::string_view token) {
    kind_ = Kind::kOther;
    quote_ = 0;
    last_ = before_last_ = 0;
    if (token.starts_with("<!--")) {
      kind_ = Kind::kComment;
      return scan(token.substr(4));
    }
    if (token.starts_with("<?")) {
      kind_ = Kind::kPi;
      return scan(token.substr(2));
    }
    if (!token.empty() && (token[0] == '\'' || token[0] == '"')) {
      kind_ = Kind::kLiteral;
      quote_ = token[0];
      return scan(token.substr(1));
    }
    if (token.size() >= 2 && token[0] == '<' && token[1] != '/' && token[1] != '!') {
      kind_ = Kind::kStartTag;
      return scan(token.substr(1));
    }
    return scan(token);
  }

  // Consumes the next bytes of the token; true if they may end it.
  bool scan(std::string_view bytes) {
    const char* p = bytes.data();
    const char* const end = p + bytes.size();
    switch (kind_) {
      case Kind::kOther:
        return std::memchr(p, '>', bytes.size()) != nullptr;
      case Kind::kLiteral:
        return std::memchr(p, quote_, bytes.size()) != nullptr;
      case Kind::kStartTag:
        while (p < end) {
          if (quote_) {
            const void* q = std::memchr(p, quote_, static_cast<std::size_t>(end - p));
            if (!q) return false;
            p = static_cast<const char*>(q) + 1;
            quote_ = 0;
            continue;
          }
          const char c = *p++;
          if (c == '\'' || c == '"') quote_ = c;
          if (c == '>') return true;
        }
        return false;
      case Kind::kComment:
      case Kind::kPi:
        for (; p < end; ++p) {
          if (*p == '>' &&
              (kind_ == Kind::kPi ? last_ == '?' : last_ == '-' && before_last_ == '-'))
            return true;
          before_last_ = last_;
          last_ = *p;
        }
        return false;
    }
    return true;
  }

 private:
  enum class Kind { kOther, kStartTag, kComment, kPi, kLiteral };
  Kind kind_ = Kind::kOther;
  // kStartTag: the quote of the attribute value we are in, or 0; kLiteral: the closing quote.
  char quote_ = 0;
  char last_ = 0, before_last_ = 0;  // kComment, kPi: the two bytes before the next
};

void split_name(const char* qname, std::string& ns, std::string& local) {
  const char* sep = std::strrchr(qname, kNsSep);
  if (sep) {
    ns.assign(qname, sep);
    local.assign(sep + 1);
  } else {
    ns.clear();
    local.assign(qname);
  }
}

std::string attr_name(const char* qname) {
  const char* sep = std::strrchr(qname, kNsSep);
  if (!sep) return qname;
  std::string_view uri(qname, static_cast<std::size_t>(sep - qname));
  if (uri == ns::kXml) return std::string("xml:") + (sep + 1);
  return "{" + std::string(uri) + "}" + (sep + 1);
}

}  // namespace

struct StreamParser::Impl {
  StreamParser* owner;
  XML_Parser parser = nullptr;
  std::vector<StreamEvent>* out = nullptr;
  std::optional<core::StreamError> error;
  std::size_t depth = 0;  // 0 = outside the stream element, 1 = stream, 2 = stanza, ...
  bool stream_open = false;
  bool header_seen = false;
  std::string default_ns;
  std::unique_ptr<Element> stanza;
  std::vector<Element*> stack;
  long long total_fed = 0;  // bytes received by feed(), held ones included
  long long boundary = 0;   // byte index where the current top-level element may begin
  // Byte index just after the stream's closing tag, once it has come: anything but
  // whitespace after it is not well-formed, however the bytes are split into reads (expat
  // reports such junk only once its token is complete, which a read boundary may delay).
  std::optional<long long> closed_at;

  // Reparse guard (see the top of this file).
  std::string held;             // received bytes not yet handed to expat
  bool holding = false;         // expat waits on a long unfinished token; hold new bytes
  std::size_t hold_target = 0;  // (b): flush once held reaches this many bytes
  TokenEnd token_end;           // (a): where the unfinished token may end
  long long expat_fed = 0;      // bytes handed to XML_Parse
  long long token_start = 0;    // byte index of expat's unfinished token after the last call
  std::size_t scanned = 0;      // see StreamParser::bytes_scanned()

  explicit Impl(StreamParser* o) : owner(o) { create(); }
  ~Impl() {
    if (parser) XML_ParserFree(parser);
  }

  void create() {
    if (parser) XML_ParserFree(parser);
    parser = XML_ParserCreateNS("UTF-8", kNsSep);
    XML_SetUserData(parser, this);
    XML_SetElementHandler(parser, &Impl::on_start, &Impl::on_end);
    XML_SetCharacterDataHandler(parser, &Impl::on_text);
    XML_SetStartNamespaceDeclHandler(parser, &Impl::on_ns);
    XML_SetXmlDeclHandler(parser, &Impl::on_xmldecl);
    XML_SetStartDoctypeDeclHandler(parser, &Impl::on_doctype);
    XML_SetCommentHandler(parser, &Impl::on_comment);
    XML_SetProcessingInstructionHandler(parser, &Impl::on_pi);
    XML_SetEntityDeclHandler(parser, &Impl::on_entity);
    XML_SetNotationDeclHandler(parser, &Impl::on_notation);
    XML_SetStartCdataSectionHandler(parser, nullptr);
    error.reset();
    depth = 0;
    stream_open = false;
    header_seen = false;
    default_ns.clear();
    stanza.reset();
    stack.clear();
    total_fed = 0;
    boundary = 0;
    closed_at.reset();
    release_held();
    expat_fed = 0;
    token_start = 0;
    scanned = 0;
  }

  void release_held() {
    std::string().swap(held);  // frees the memory, not just the contents
    holding = false;
  }

  // Hands `data` to expat, accounting the work it does: expat 2.5 tokenizes the unfinished
  // token left by the previous call again from its start, then the new bytes.
  XML_Status parse(std::string_view data) {
    scanned += static_cast<std::size_t>(expat_fed - token_start) + data.size();
    auto status = XML_Parse(parser, data.data(), static_cast<int>(data.size()), XML_FALSE);
    expat_fed += static_cast<long long>(data.size());
    // Outside callbacks expat leaves the current event at the start of the unfinished token.
    long long index = XML_GetCurrentByteIndex(parser);
    token_start = index >= 0 && index <= expat_fed ? index : expat_fed;
    return status;
  }

  // The header and stanza limits, measured on all bytes received (held ones included).
  bool over_limit() const {
    const auto& limits = owner->limits_;
    if (!header_seen) return total_fed > static_cast<long long>(limits.max_header_size);
    return stream_open && total_fed - boundary > static_cast<long long>(limits.max_stanza_size);
  }

  // After a successful XML_Parse: start holding if expat waits on a long unfinished token.
  void maybe_hold() {
    holding = false;
    const long long pending = expat_fed - token_start;
    if (pending <= kHoldThreshold) return;
    // The unfinished token's bytes, from expat's buffer (empty if expat does not say).
    std::string_view token;
    int offset = 0, size = 0;
    const char* context = XML_GetInputContext(parser, &offset, &size);
    if (context && offset >= 0 && size - offset == pending)
      token = std::string_view(context + offset, static_cast<std::size_t>(pending));
    if (token_end.start(token)) return;
    hold_target = static_cast<std::size_t>(pending);
    holding = true;
  }

  // While holding: whether `data`, about to be received, must go to expat now.
  bool must_flush(std::string_view data) {
    if (token_end.scan(data)) return true;                      // (a)
    if (held.size() + data.size() >= hold_target) return true;  // (b)
    return over_limit();                                        // (c); total_fed includes data
  }

  // RFC 6120 §11.6: UTF-8 only. Told that the document is UTF-8, expat still switches to
  // UTF-16 when the first bytes look like it (a byte order mark FE FF / FF FE, or a NUL next to
  // the first '<'), and would then parse a whole UTF-16 stream; so those bytes never reach it.
  // NUL is no XML character anywhere (XML 1.0 §2.2), so one later is merely not well-formed.
  std::optional<core::StreamError> not_utf8(std::string_view data) const {
    for (std::size_t i = 0; i < data.size() && total_fed + static_cast<long long>(i) < 2; ++i) {
      const auto c = static_cast<unsigned char>(data[i]);
      if (c == 0xFE || c == 0xFF) return core::StreamError::kUnsupportedEncoding;
    }
    const void* nul = std::memchr(data.data(), '\0', data.size());
    if (!nul) return std::nullopt;
    const long long at = total_fed + (static_cast<const char*>(nul) - data.data());
    return at < 4 ? core::StreamError::kUnsupportedEncoding : core::StreamError::kNotWellFormed;
  }

  void fail(core::StreamError e) {
    if (!error) error = e;
    XML_StopParser(parser, XML_FALSE);
  }

  long long position_after_current() const {
    return XML_GetCurrentByteIndex(parser) + XML_GetCurrentByteCount(parser);
  }

  static Impl* self(void* ud) { return static_cast<Impl*>(ud); }

  static void on_ns(void* ud, const XML_Char* prefix, const XML_Char* uri) {
    Impl* s = self(ud);
    if (s->error) return;
    if (s->depth == 0 && prefix == nullptr) s->default_ns = uri ? uri : "";
  }

  static void on_xmldecl(void* ud, const XML_Char*, const XML_Char* encoding, int) {
    Impl* s = self(ud);
    if (encoding && strcasecmp(encoding, "UTF-8") != 0)
      s->fail(core::StreamError::kUnsupportedEncoding);
  }
  static void on_doctype(void* ud, const XML_Char*, const XML_Char*, const XML_Char*, int) {
    self(ud)->fail(core::StreamError::kRestrictedXml);
  }
  static void on_comment(void* ud, const XML_Char*) {
    self(ud)->fail(core::StreamError::kRestrictedXml);
  }
  static void on_pi(void* ud, const XML_Char*, const XML_Char*) {
    self(ud)->fail(core::StreamError::kRestrictedXml);
  }
  static void on_entity(void* ud, const XML_Char*, int, const XML_Char*, int, const XML_Char*,
                        const XML_Char*, const XML_Char*, const XML_Char*) {
    self(ud)->fail(core::StreamError::kRestrictedXml);
  }
  static void on_notation(void* ud, const XML_Char*, const XML_Char*, const XML_Char*,
                          const XML_Char*) {
    self(ud)->fail(core::StreamError::kRestrictedXml);
  }

  static void on_start(void* ud, const XML_Char* name, const XML_Char** atts) {
    Impl* s = self(ud);
    if (s->error) return;
    const auto& limits = s->owner->limits_;
    std::size_t nattrs = 0;
    for (const XML_Char** a = atts; *a; a += 2) ++nattrs;
    if (nattrs > limits.max_attributes) return s->fail(core::StreamError::kPolicyViolation);

    Element el;
    std::string ns, local;
    split_name(name, ns, local);
    el = Element(std::move(local), std::move(ns));
    for (const XML_Char** a = atts; *a; a += 2) el.set_attr(attr_name(a[0]), a[1]);

    if (s->depth == 0) {
      // The per-chunk check in feed() only sees headers that are still incomplete; one that
      // arrives whole in a single chunk is measured here.
      if (s->position_after_current() > static_cast<long long>(limits.max_header_size))
        return s->fail(core::StreamError::kPolicyViolation);
      s->depth = 1;
      s->stream_open = true;
      s->header_seen = true;
      s->boundary = s->position_after_current();
      StreamEvent ev{StreamEvent::Kind::kStreamOpen, std::move(el), s->default_ns};
      s->out->push_back(std::move(ev));
      return;
    }
    if (s->depth >= limits.max_depth + 1) return s->fail(core::StreamError::kPolicyViolation);
    ++s->depth;
    if (s->depth == 2) {
      s->stanza = std::make_unique<Element>(std::move(el));
      s->stack.assign(1, s->stanza.get());
    } else {
      Element& child = s->stack.back()->add_child(std::move(el));
      s->stack.push_back(&child);
    }
  }

  static void on_end(void* ud, const XML_Char*) {
    Impl* s = self(ud);
    if (s->error) return;
    if (s->depth == 1) {
      s->depth = 0;
      s->stream_open = false;
      s->closed_at = s->position_after_current();
      s->out->push_back(StreamEvent{StreamEvent::Kind::kStreamClose, Element(), {}});
      return;
    }
    --s->depth;
    s->stack.pop_back();
    if (s->depth == 1) {
      long long end = s->position_after_current();
      if (end - s->boundary > static_cast<long long>(s->owner->limits_.max_stanza_size))
        return s->fail(core::StreamError::kPolicyViolation);
      s->boundary = end;
      s->out->push_back(StreamEvent{StreamEvent::Kind::kElement, std::move(*s->stanza), {}});
      s->stanza.reset();
    }
  }

  static void on_text(void* ud, const XML_Char* text, int len) {
    Impl* s = self(ud);
    if (s->error) return;
    if (s->depth >= 2) {
      s->stack.back()->add_text(std::string_view(text, static_cast<std::size_t>(len)));
    } else if (s->depth == 1) {
      // Whitespace between stanzas (keepalives) starts a new boundary.
      s->boundary = s->position_after_current();
    }
  }
};

StreamParser::StreamParser(ParserLimits limits)
    : limits_(limits), impl_(std::make_unique<Impl>(this)) {}

StreamParser::~StreamParser() = default;

void StreamParser::reset() {
  impl_->create();
}

std::size_t StreamParser::bytes_scanned() const {
  return impl_->scanned;
}

std::size_t StreamParser::bytes_held() const {
  return impl_->held.size();
}

std::optional<core::StreamError> StreamParser::feed(std::string_view data,
                                                    std::vector<StreamEvent>& out) {
  Impl& s = *impl_;
  if (s.error) return s.error;
  if (s.closed_at) {  // after the stream's end: whitespace at most
    if (!only_whitespace(data)) s.error = core::StreamError::kNotWellFormed;
    return s.error;
  }
  if (auto refused = s.not_utf8(data)) {
    s.error = refused;
    s.stanza.reset();
    s.stack.clear();
    s.release_held();
    return s.error;
  }
  s.total_fed += static_cast<long long>(data.size());
  if (s.holding && !s.must_flush(data)) {
    s.held.append(data);
    return std::nullopt;
  }
  s.out = &out;
  XML_Status status;
  std::string_view parsed = data;  // what this call hands to expat
  std::string flushed;
  if (s.holding) {
    s.held.append(data);
    flushed.swap(s.held);
    parsed = flushed;
    status = s.parse(parsed);
    s.release_held();
  } else {
    status = s.parse(data);
  }
  s.out = nullptr;
  // The stream ended within these bytes: what follows its closing tag here is checked now.
  if (!s.error && status == XML_STATUS_OK && s.closed_at) {
    const long long first = s.expat_fed - static_cast<long long>(parsed.size());
    const long long after =
        std::clamp(*s.closed_at - first, 0LL, static_cast<long long>(parsed.size()));
    if (!only_whitespace(parsed.substr(static_cast<std::size_t>(after))))
      s.error = core::StreamError::kNotWellFormed;
  }
  if (!s.error && status != XML_STATUS_OK) {
    auto code = XML_GetErrorCode(s.parser);
    switch (code) {
      case XML_ERROR_UNBOUND_PREFIX:
        s.error = core::StreamError::kBadNamespacePrefix;
        break;
      case XML_ERROR_UNKNOWN_ENCODING:
      case XML_ERROR_INCORRECT_ENCODING:
        s.error = core::StreamError::kUnsupportedEncoding;
        break;
      case XML_ERROR_MISPLACED_XML_PI:
        s.error = core::StreamError::kRestrictedXml;
        break;
      default:
        s.error = core::StreamError::kNotWellFormed;
    }
  }
  if (!s.error && s.over_limit()) s.error = core::StreamError::kPolicyViolation;
  if (s.error) {
    s.stanza.reset();
    s.stack.clear();
    s.release_held();
  } else {
    s.maybe_hold();
  }
  return s.error;
}

std::optional<Element> parse_element(std::string_view xml, std::string_view default_ns) {
  // Wrap in a neutral root so the parser's stream handling applies unchanged.
  ParserLimits limits;
  limits.max_stanza_size = xml.size() + 1024;
  limits.max_header_size = 1024 + default_ns.size() * 6;
  StreamParser p(limits);
  std::vector<StreamEvent> events;
  std::string root = "<r>";
  if (!default_ns.empty()) {
    root = "<r xmlns='";
    escape(root, default_ns);
    root += "'>";
  }
  if (p.feed(root, events)) return std::nullopt;
  if (p.feed(xml, events)) return std::nullopt;
  if (p.feed("</r>", events)) return std::nullopt;
  for (auto& ev : events)
    if (ev.kind == StreamEvent::Kind::kElement) return std::move(ev.element);
  return std::nullopt;
}

}  // namespace waddle::xml
