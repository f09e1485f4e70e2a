// Stream headers, features, stream-error closings and parser limits, for client and server
// streams alike.
#include "stream/negotiation.h"

#include "xml/stanza.h"

namespace waddle::stream {

namespace {

std::string stream_header(std::string_view content_ns, std::string_view from, std::string_view to,
                          std::string_view id, bool dialback, bool lang_en, bool version = true) {
  // Written as an element without children, whose "/>" becomes ">": the tag stays open for
  // the stream's content, and every value is escaped by the serializer.
  xml::Element tag("stream:stream", "");
  tag.set_attr("xmlns", content_ns);
  tag.set_attr("xmlns:stream", ns::kStream);
  if (dialback) tag.set_attr("xmlns:db", ns::kDialback);
  if (!from.empty()) tag.set_attr("from", from);
  if (!to.empty()) tag.set_attr("to", to);
  if (!id.empty()) tag.set_attr("id", id);
  if (version) tag.set_attr("version", "1.0");
  if (lang_en) tag.set_attr("xml:lang", "en");
  std::string out = "<?xml version='1.0'?>";
  tag.serialize(out);
  out.replace(out.size() - 2, 2, ">");
  return out;
}

}  // namespace

std::string client_header(std::string_view from, std::string_view id) {
  return stream_header(ns::kClient, from, {}, id, false, true);
}

std::string server_header(std::string_view from, std::string_view to, std::string_view id) {
  return stream_header(ns::kServer, from, to, id, true, false);
}

std::string component_header(std::string_view from, std::string_view id) {
  return stream_header(ns::kComponentAccept, from, {}, id, false, false, false);
}

xml::Element stream_features() {
  return xml::Element("stream:features", "");
}

void offer_starttls(xml::Element& features) {
  features.add_child("starttls", std::string(ns::kTls))
      .add_child("required", std::string(ns::kTls));
}

void offer_sasl(xml::Element& features, std::span<const std::string_view> mechanisms) {
  auto& offer = features.add_child("mechanisms", std::string(ns::kSasl));
  for (auto m : mechanisms) offer.add_child("mechanism", std::string(ns::kSasl)).add_text(m);
}

std::string stream_error_close(core::StreamError error, std::string_view text,
                               std::string_view header_first) {
  std::string out(header_first);
  out += xml::stream_error_xml(error, text);
  out += kStreamEnd;
  return out;
}

}  // namespace waddle::stream
