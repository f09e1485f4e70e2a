// Element tree operations and serialization (canonical enough for golden tests: attributes
// in insertion order, single quotes, xmlns only where the namespace changes).
#include "xml/element.h"

#include <algorithm>
#include <utility>

namespace waddle::xml {

Element::Element(const Element& other) : name_(other.name_), ns_(other.ns_), attrs_(other.attrs_) {
  nodes_.reserve(other.nodes_.size());
  for (const auto& n : other.nodes_) {
    Node copy;
    if (n.element) copy.element = std::make_unique<Element>(*n.element);
    copy.text = n.text;
    nodes_.push_back(std::move(copy));
  }
}

Element& Element::operator=(const Element& other) {
  if (this != &other) {
    Element tmp(other);
    *this = std::move(tmp);
  }
  return *this;
}

std::string_view Element::attr(std::string_view name) const {
  for (const auto& a : attrs_)
    if (a.name == name) return a.value;
  return {};
}

bool Element::has_attr(std::string_view name) const {
  return std::any_of(attrs_.begin(), attrs_.end(), [&](const auto& a) { return a.name == name; });
}

Element& Element::set_attr(std::string_view name, std::string_view value) {
  for (auto& a : attrs_) {
    if (a.name == name) {
      a.value = value;
      return *this;
    }
  }
  attrs_.push_back({std::string(name), std::string(value)});
  return *this;
}

void Element::remove_attr(std::string_view name) {
  std::erase_if(attrs_, [&](const auto& a) { return a.name == name; });
}

const Element* Element::child(std::string_view name, std::string_view ns) const {
  for (const auto& n : nodes_)
    if (n.element && n.element->name_ == name && (ns.empty() || n.element->ns_ == ns))
      return n.element.get();
  return nullptr;
}

Element* Element::child(std::string_view name, std::string_view ns) {
  return const_cast<Element*>(std::as_const(*this).child(name, ns));
}

const Element* Element::first_child() const {
  for (const auto& n : nodes_)
    if (n.element) return n.element.get();
  return nullptr;
}

std::vector<const Element*> Element::children() const {
  std::vector<const Element*> out;
  for (const auto& n : nodes_)
    if (n.element) out.push_back(n.element.get());
  return out;
}

std::vector<const Element*> Element::children(std::string_view name, std::string_view ns) const {
  std::vector<const Element*> out;
  for (const auto& n : nodes_)
    if (n.element && n.element->name_ == name && (ns.empty() || n.element->ns_ == ns))
      out.push_back(n.element.get());
  return out;
}

std::size_t Element::child_count() const {
  return static_cast<std::size_t>(
      std::count_if(nodes_.begin(), nodes_.end(), [](const Node& n) { return n.is_element(); }));
}

Element& Element::add_child(Element child) {
  Node n;
  n.element = std::make_unique<Element>(std::move(child));
  nodes_.push_back(std::move(n));
  return *nodes_.back().element;
}

Element& Element::add_child(std::string name, std::string ns) {
  return add_child(Element(std::move(name), std::move(ns)));
}

Element& Element::add_text(std::string_view text) {
  if (text.empty()) return *this;
  if (!nodes_.empty() && !nodes_.back().element) {
    nodes_.back().text.append(text);
  } else {
    Node n;
    n.text = std::string(text);
    nodes_.push_back(std::move(n));
  }
  return *this;
}

std::string Element::child_text(std::string_view name, std::string_view ns) const {
  const Element* c = child(name, ns);
  return c ? c->text() : std::string();
}

std::string Element::text() const {
  std::string out;
  for (const auto& n : nodes_)
    if (!n.element) out += n.text;
  return out;
}

void Element::remove_children(std::string_view name, std::string_view ns) {
  std::erase_if(nodes_, [&](const Node& n) {
    return n.element && n.element->name_ == name && (ns.empty() || n.element->ns_ == ns);
  });
}

namespace {

// The references for the characters that need them: in character data and attribute values
// & < > ' " and CR (a raw CR would be turned into LF by the receiver's end-of-line handling,
// XML 1.0 §2.11); in attribute values also TAB and LF (raw, they would be read back as
// spaces, §3.3.3). Everything else is copied in runs.
std::string_view reference(char c) {
  switch (c) {
    case '&':
      return "&amp;";
    case '<':
      return "&lt;";
    case '>':
      return "&gt;";
    case '\'':
      return "&apos;";
    case '"':
      return "&quot;";
    case '\r':
      return "&#13;";
    case '\t':
      return "&#9;";
    case '\n':
      return "&#10;";
    default:
      return {};
  }
}

struct EscapeTable {
  bool text[256] = {};
  bool attr[256] = {};
  constexpr EscapeTable() {
    for (unsigned char c : std::string_view("&<>'\"\r")) text[c] = attr[c] = true;
    attr[static_cast<unsigned char>('\t')] = attr[static_cast<unsigned char>('\n')] = true;
  }
};
constexpr EscapeTable kEscape;

void escape_with(std::string& out, std::string_view s, const bool (&special)[256]) {
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t j = i;
    while (j < s.size() && !special[static_cast<unsigned char>(s[j])]) ++j;
    out.append(s.data() + i, j - i);
    if (j == s.size()) break;
    out += reference(s[j]);
    i = j + 1;
  }
}

}  // namespace

void escape(std::string& out, std::string_view s) {
  escape_with(out, s, kEscape.text);
}

namespace {

void escape_attr(std::string& out, std::string_view s) {
  escape_with(out, s, kEscape.attr);
}

void write_attrs(std::string& out, const std::vector<Attribute>& attrs) {
  int extra_ns = 0;
  for (const auto& a : attrs) {
    out += ' ';
    if (!a.name.empty() && a.name.front() == '{') {
      // Namespaced attribute other than xml:*: declare a prefix for it on this element.
      auto close = a.name.rfind('}');  // the URI may contain '}', a local name cannot
      std::string prefix = "ns" + std::to_string(extra_ns++);
      out += "xmlns:" + prefix + "='";
      escape_attr(out, std::string_view(a.name).substr(1, close - 1));
      out += "' " + prefix + ":" + a.name.substr(close + 1);
    } else {
      out += a.name;
    }
    out += "='";
    escape_attr(out, a.value);
    out += '\'';
  }
}

}  // namespace

void Element::serialize(std::string& out, std::string_view parent_ns) const {
  // The XML namespace may only be written with its reserved prefix, never as a default
  // namespace (Namespaces in XML §3); such an element leaves the default in scope unchanged.
  const bool xml_prefixed = ns_ == ns::kXml;
  const std::string_view children_ns = xml_prefixed ? parent_ns : std::string_view(ns_);
  out += '<';
  if (xml_prefixed) out += "xml:";
  out += name_;
  if (!xml_prefixed && ns_ != parent_ns) {
    out += " xmlns='";
    escape_attr(out, ns_);
    out += '\'';
  }
  write_attrs(out, attrs_);
  if (nodes_.empty()) {
    out += "/>";
    return;
  }
  out += '>';
  for (const auto& n : nodes_) {
    if (n.element)
      n.element->serialize(out, children_ns);
    else
      escape(out, n.text);
  }
  out += "</";
  if (xml_prefixed) out += "xml:";
  out += name_;
  out += '>';
}

std::string Element::str(std::string_view parent_ns) const {
  std::string out;
  serialize(out, parent_ns);
  return out;
}

std::string serialize_stanza(const Element& stanza, std::string_view stream_ns) {
  std::string out;
  // Most stanzas fit: one allocation instead of the five or six of growing from empty.
  out.reserve(kStanzaReserve);
  const bool content_ns = stanza.ns() == "jabber:client" || stanza.ns() == "jabber:server";
  if (!content_ns) {
    stanza.serialize(out, stream_ns);
    return out;
  }
  // Write the envelope as if it were in the stream namespace, and its children relative to
  // the stanza's own namespace (they inherit it).
  out += '<';
  out += stanza.name();
  write_attrs(out, stanza.attrs());
  if (stanza.nodes().empty()) {
    out += "/>";
    return out;
  }
  out += '>';
  for (const auto& n : stanza.nodes()) {
    if (n.element) {
      n.element->serialize(out, stanza.ns());
    } else {
      escape(out, n.text);
    }
  }
  out += "</";
  out += stanza.name();
  out += '>';
  return out;
}

SharedStanza share_stanza(const Element& stanza, std::string_view stream_ns) {
  Element without_to = stanza;
  without_to.remove_attr("to");
  std::string all = serialize_stanza(without_to, stream_ns);
  SharedStanza shared;
  shared.name = stanza.name();
  // serialize_stanza writes no prefix for a stanza: "<" + name begins it.
  shared.tail = std::make_shared<const std::string>(all.substr(1 + shared.name.size()));
  return shared;
}

std::string SharedStanza::head(std::string_view to) const {
  std::string out;
  out.reserve(name.size() + to.size() + 8);
  out += '<';
  out += name;
  out += " to='";
  escape_attr(out, to);
  out += '\'';
  return out;
}

}  // namespace waddle::xml
