#include "xml/renamespace.h"

namespace waddle::xml {

Element renamespaced(const Element& e, std::string_view from, std::string_view to) {
  Element out(e.name(), e.ns() == from ? std::string(to) : e.ns());
  for (const auto& a : e.attrs()) out.set_attr(a.name, a.value);
  for (const auto& n : e.nodes()) {
    if (n.is_element())
      out.add_child(renamespaced(*n.element, from, to));
    else
      out.add_text(n.text);
  }
  return out;
}

}  // namespace waddle::xml
