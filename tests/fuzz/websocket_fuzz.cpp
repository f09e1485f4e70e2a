// libFuzzer target for XMPP over WebSocket (web/logic/websocket): any bytes a browser's
// connection may carry, split at a point the input chooses, through the frame decoder and the
// stream parser behind it, as the web listener runs them. Checked: what is held stays within
// the message bound; after a close nothing more is taken; every reply is a well-formed server
// frame (unmasked, FIN); and the encoder turns what it is given back into whole frames, each
// one element that parses on its own.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "web/logic/websocket.h"
#include "xml/parser.h"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

constexpr std::size_t kMaxMessage = 4096;

// Server frames: FIN, unmasked, lengths that add up.
void check_frames(std::string_view bytes, bool elements) {
  std::size_t i = 0;
  while (i < bytes.size()) {
    check(bytes.size() - i >= 2);
    const auto b0 = static_cast<unsigned char>(bytes[i]);
    const auto b1 = static_cast<unsigned char>(bytes[i + 1]);
    check((b0 & 0x80) != 0 && (b1 & 0x80) == 0);
    std::uint64_t n = b1 & 0x7F;
    i += 2;
    if (n == 126) {
      check(bytes.size() - i >= 2);
      n = (std::uint64_t{static_cast<unsigned char>(bytes[i])} << 8) |
          static_cast<unsigned char>(bytes[i + 1]);
      i += 2;
    } else if (n == 127) {
      check(bytes.size() - i >= 8);
      n = 0;
      for (int k = 0; k < 8; ++k) n = (n << 8) | static_cast<unsigned char>(bytes[i + k]);
      i += 8;
    }
    check(bytes.size() - i >= n);
    if (elements && (b0 & 0x0F) == 0x1)
      check(waddle::xml::parse_element(bytes.substr(i, n)).has_value());
    i += n;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view all(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::size_t split = all.empty() ? 0 : data[0] % (all.size() + 1);

  waddle::web::WebSocketFraming ws(kMaxMessage);
  waddle::xml::StreamParser parser;
  std::vector<waddle::xml::StreamEvent> events;
  bool parser_ok = true;
  bool closed = false;
  for (std::string_view part : {all.substr(0, split), all.substr(split)}) {
    waddle::web::WebSocketFraming::Decoded d;
    ws.decode(part, d);
    if (closed) check(d.xml.empty() && d.replies.empty());
    check_frames(d.replies, false);
    check(ws.bytes_held() <= kMaxMessage + part.size() + 14);
    if (parser_ok && !d.xml.empty()) parser_ok = !parser.feed(d.xml, events);
    closed = closed || d.closed;
  }

  // The encoder, over the well-formed elements the parser found: one frame each.
  waddle::web::WebSocketFraming out(kMaxMessage);
  std::string frames;
  for (const auto& ev : events) {
    if (ev.kind != waddle::xml::StreamEvent::Kind::kElement) continue;
    const std::string text = ev.element.str("jabber:client");
    out.encode(std::string_view(text).substr(0, text.size() / 2), frames);
    out.encode(std::string_view(text).substr(text.size() / 2), frames);
  }
  check(out.bytes_held() == 0);
  check_frames(frames, true);
  return 0;
}
