// The element tree shared by every stanza handler: namespaced elements, attributes, text.
// Attributes live in a small vector (no per-attribute map); children are owned.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/namespaces.h"

namespace waddle::xml {

namespace ns = waddle::ns;

struct Attribute {
  std::string name;  // "to", "xml:lang"; other namespaced attributes as "{uri}local"
  std::string value;
};

class Element;

// A child node: either an element or a run of text.
struct Node {
  std::unique_ptr<Element> element;
  std::string text;
  bool is_element() const { return element != nullptr; }
};

class Element {
 public:
  Element() = default;
  Element(std::string name, std::string ns) : name_(std::move(name)), ns_(std::move(ns)) {}
  Element(const Element& other);
  Element& operator=(const Element& other);
  Element(Element&&) noexcept = default;
  Element& operator=(Element&&) noexcept = default;

  const std::string& name() const { return name_; }
  const std::string& ns() const { return ns_; }
  void set_ns(std::string ns) { ns_ = std::move(ns); }
  bool is(std::string_view name, std::string_view ns) const { return name_ == name && ns_ == ns; }

  // Attribute value, or "" when absent.
  std::string_view attr(std::string_view name) const;
  bool has_attr(std::string_view name) const;
  Element& set_attr(std::string_view name, std::string_view value);
  void remove_attr(std::string_view name);
  const std::vector<Attribute>& attrs() const { return attrs_; }

  const std::vector<Node>& nodes() const { return nodes_; }
  // First child element with this name (and namespace when given), or nullptr.
  const Element* child(std::string_view name, std::string_view ns = {}) const;
  Element* child(std::string_view name, std::string_view ns = {});
  // First child element, or nullptr.
  const Element* first_child() const;
  std::vector<const Element*> children() const;
  std::vector<const Element*> children(std::string_view name, std::string_view ns) const;
  std::size_t child_count() const;

  Element& add_child(Element child);
  Element& add_child(std::string name, std::string ns);
  Element& add_text(std::string_view text);
  // Text of the first child with this name, or "".
  std::string child_text(std::string_view name, std::string_view ns = {}) const;
  // Concatenated direct text children.
  std::string text() const;
  void clear_children() { nodes_.clear(); }
  void remove_children(std::string_view name, std::string_view ns);

  // Serializes this element. `parent_ns` is the namespace in scope (the stream's content
  // namespace for stanzas): xmlns is written only when this element's namespace differs.
  std::string str(std::string_view parent_ns = {}) const;
  void serialize(std::string& out, std::string_view parent_ns = {}) const;

 private:
  std::string name_;
  std::string ns_;
  std::vector<Attribute> attrs_;
  std::vector<Node> nodes_;
};

// Appends `s` escaped for character data or attribute values (both quote kinds escaped).
void escape(std::string& out, std::string_view s);

// Serializes a top-level stanza for a stream whose default namespace is `stream_ns`
// (jabber:client or jabber:server): the stanza's own jabber:client / jabber:server namespace
// is treated as the stream's, so stanzas cross between c2s and s2s unchanged.
// The result starts with kStanzaReserve bytes of capacity.
inline constexpr std::size_t kStanzaReserve = 512;
std::string serialize_stanza(const Element& stanza, std::string_view stream_ns);

// One stanza serialised once for many recipients (a room's message to its occupants): all of
// it but its 'to' is `tail`, shared between the recipients' streams; each writes head(to)
// first. 2,000 recipients of a 512 KB message then queue one 512 KB buffer, not 2,000.
struct SharedStanza {
  std::string name;                             // "message"
  std::shared_ptr<const std::string> tail;      // what follows "<message": attributes to the end
  std::string head(std::string_view to) const;  // "<message to='…'"
};
SharedStanza share_stanza(const Element& stanza, std::string_view stream_ns);

}  // namespace waddle::xml
