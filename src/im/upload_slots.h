// What the IM service asks of the file upload service (XEP-0363, web/logic/upload_service.h)
// when a slot request or a disco#info reaches a served domain.
#pragma once

#include <optional>

#include "xml/element.h"

namespace waddle::im {

class UploadSlots {
 public:
  virtual ~UploadSlots() = default;
  // The answer to a slot request `iq` (its 'from' stamped): a result with the slot's URLs,
  // or an error reply.
  virtual xml::Element request_slot(const xml::Element& iq) = 0;
  // The disco#info extension form naming the largest file (XEP-0363 §3).
  virtual xml::Element disco_form() const = 0;
};

}  // namespace waddle::im
