// Entity capabilities (XEP-0115): the verification string of a disco#info answer, the hash
// a <c/> element's 'ver' must equal before it may stand for those features.
#pragma once

#include <string>

#include "xml/element.h"

namespace waddle::im {

// XEP-0115 §5.1 with SHA-1, base64: identities (category/type/lang/name, sorted), features
// (sorted), then extended forms (XEP-0128, sorted by FORM_TYPE, their fields by var and the
// values of each sorted). `query` is a disco#info <query/>. Empty when the answer may not
// be hashed (§5.4: a duplicate identity or feature, a form without FORM_TYPE, or two forms
// of one FORM_TYPE).
std::string caps_ver(const xml::Element& query);

}  // namespace waddle::im
