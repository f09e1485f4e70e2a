// For unit tests: the first top-level element of `element` as the stream parser hands it over
// on a stream whose content namespace is `content_ns` (so that its children inherit it, as
// they do on the wire).
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "xml/parser.h"

namespace waddle::testing {

inline xml::Element parsed_element(std::string_view content_ns, std::string_view element) {
  xml::StreamParser parser;
  std::vector<xml::StreamEvent> events;
  const std::string text = "<stream:stream xmlns='" + std::string(content_ns) +
                           "' xmlns:stream='http://etherx.jabber.org/streams'>" +
                           std::string(element);
  EXPECT_FALSE(parser.feed(text, events).has_value()) << element;
  EXPECT_EQ(events.size(), 2u) << element;
  return events.size() == 2 ? events.back().element : xml::Element();
}

}  // namespace waddle::testing
