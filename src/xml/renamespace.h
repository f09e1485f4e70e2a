// A copy of an element tree with one namespace replaced by another, on the element and on every
// descendant in it: what a stanza carries from a stream whose content namespace means nothing
// elsewhere (jabber:server in a client's forwarded copy, jabber:component:accept from a
// component) into the namespace of the stanzas the server handles.
#pragma once

#include <string_view>

#include "xml/element.h"

namespace waddle::xml {

Element renamespaced(const Element& e, std::string_view from, std::string_view to);

}  // namespace waddle::xml
