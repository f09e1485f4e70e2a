// XMPP over WebSocket (RFC 7395) on RFC 6455 frames, as the server side of one connection:
// what a client's frames carry becomes the bytes of an ordinary client XML stream for the
// stream parser (its <open/> a stream header, its <close/> the stream's end), and the bytes
// the session writes (a stream header, top-level elements, the closing tag, split anywhere)
// become one text frame per element, each element carrying its namespace as §3.3.3 asks.
// No Asio: the transport (TLS, the write queue) stays the XML stream's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/errors.h"

namespace waddle::web {

inline constexpr std::string_view kFramingNs = "urn:ietf:params:xml:ns:xmpp-framing";

// RFC 6455 §7.4.1 status codes sent in a close frame.
enum class CloseCode : std::uint16_t {
  kNormal = 1000,
  kProtocolError = 1002,
  kUnsupportedData = 1003,  // a binary frame: XMPP is text
  kTooBig = 1009,
};

// The Sec-WebSocket-Accept value for a client's Sec-WebSocket-Key (RFC 6455 §4.2.2).
std::string websocket_accept(std::string_view key);

class WebSocketFraming {
 public:
  // max_message: the largest message (after reassembly of fragments) a client may send.
  explicit WebSocketFraming(std::size_t max_message) : max_message_(max_message) {}

  struct Decoded {
    std::string xml;      // bytes for the stream parser, in order
    std::string replies;  // frames to write back at once (pongs, the closing handshake)
    bool closed = false;  // the connection ends after `replies` (a close frame, an error)
    // Set when the client broke the framing (what the close frame said): the stream ends
    // without an XMPP stream error (there is no stream to put one in that the client reads).
    std::optional<CloseCode> failure;
    // An <open/> in another namespace, or one that cannot be parsed: the stream error to
    // close with.
    std::optional<core::StreamError> error;
  };
  // Takes bytes read from the connection (any split). After `closed`, input is ignored.
  void decode(std::string_view bytes, Decoded& out);

  // Takes bytes the session writes (any split; our own serialisation) and appends the frames
  // of every top-level element they complete. The XML declaration and whitespace between
  // elements are dropped; <stream:stream ...> becomes <open/>, </stream:stream> <close/>
  // followed by a close frame.
  void encode(std::string_view xml, std::string& out);

  // A new bound on messages from now on (a stream raises it once authenticated).
  void set_max_message(std::size_t max_message) { max_message_ = max_message; }

  // A close frame with `code` (RFC 6455 §5.5.1).
  static std::string close_frame(CloseCode code);
  // Bytes held for a frame or element not yet complete, both ways (for idle memory checks).
  std::size_t bytes_held() const { return in_.size() + message_.size() + element_.size(); }

 private:
  bool take_frame(Decoded& out);  // false when in_ holds no complete frame
  void finish_message(Decoded& out);
  void fail(Decoded& out, CloseCode code);
  void emit(std::string& out);  // element_ is one complete top-level element
  static void frame(std::string& out, std::uint8_t opcode, std::string_view payload);

  std::size_t max_message_;
  // Inbound.
  std::string in_;       // bytes of a frame not yet complete
  std::string message_;  // a fragmented message's payload so far
  bool in_message_ = false;
  bool closed_ = false;
  // Outbound scanner state, over element_ (the top-level element being written).
  std::string element_;
  std::size_t depth_ = 0;
  enum class Scan { kText, kTagStart, kTag, kQuote, kDecl };
  Scan scan_ = Scan::kText;
  char quote_ = 0;
  bool end_tag_ = false;
  char last_ = 0;
  std::size_t name_end_ = 0;  // in element_, just after the top-level element's name
  std::string attr_;          // the attribute name being read (top-level start tag)
  bool has_xmlns_ = false;
  bool in_top_tag_ = false;
};

}  // namespace waddle::web
