// expat-driven stream parser. Limits are checked in callbacks and after every chunk, so a
// peer can never make us buffer more than one chunk beyond a limit.
#include "xml/parser.h"

#include <expat.h>

#include <strings.h>

#include <cstring>

namespace waddle::xml {
namespace {

constexpr char kNsSep = ' ';

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
  if (uri == kXmlNs) return std::string("xml:") + (sep + 1);
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
  long long total_fed = 0;
  long long boundary = 0;  // byte index where the current top-level element may begin

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

std::optional<core::StreamError> StreamParser::feed(std::string_view data,
                                                    std::vector<StreamEvent>& out) {
  Impl& s = *impl_;
  if (s.error) return s.error;
  s.out = &out;
  auto status = XML_Parse(s.parser, data.data(), static_cast<int>(data.size()), XML_FALSE);
  s.out = nullptr;
  s.total_fed += static_cast<long long>(data.size());
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
  if (!s.error) {
    if (!s.header_seen && s.total_fed > static_cast<long long>(limits_.max_header_size))
      s.error = core::StreamError::kPolicyViolation;
    else if (s.stream_open &&
             s.total_fed - s.boundary > static_cast<long long>(limits_.max_stanza_size))
      s.error = core::StreamError::kPolicyViolation;
  }
  if (s.error) {
    s.stanza.reset();
    s.stack.clear();
  }
  return s.error;
}

std::optional<Element> parse_element(std::string_view xml) {
  // Wrap in a neutral root so the parser's stream handling applies unchanged.
  ParserLimits limits;
  limits.max_stanza_size = xml.size() + 1024;
  limits.max_header_size = 1024;
  StreamParser p(limits);
  std::vector<StreamEvent> events;
  if (p.feed("<r>", events)) return std::nullopt;
  if (p.feed(xml, events)) return std::nullopt;
  if (p.feed("</r>", events)) return std::nullopt;
  for (auto& ev : events)
    if (ev.kind == StreamEvent::Kind::kElement) return std::move(ev.element);
  return std::nullopt;
}

}  // namespace waddle::xml
