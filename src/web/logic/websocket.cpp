// RFC 6455 frames (server side) and the RFC 7395 translation of <open/> and <close/>.
#include "web/logic/websocket.h"

#include <openssl/sha.h>

#include <algorithm>
#include <cstring>

#include "core/base64.h"
#include "xml/element.h"
#include "xml/parser.h"

namespace waddle::web {

namespace {

constexpr std::uint8_t kContinuation = 0x0;
constexpr std::uint8_t kText = 0x1;
constexpr std::uint8_t kBinary = 0x2;
constexpr std::uint8_t kClose = 0x8;
constexpr std::uint8_t kPing = 0x9;
constexpr std::uint8_t kPong = 0xA;
constexpr std::size_t kKeep = 4096;  // buffers larger than this are released when empty
constexpr std::string_view kClientNs = "jabber:client";
constexpr std::string_view kStreamNs = "http://etherx.jabber.org/streams";

void release_if_large(std::string& s) {
  if (s.empty() && s.capacity() > kKeep) std::string().swap(s);
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

std::string_view trim_front(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  return s;
}

// "<open" or "<close" followed by a delimiter: the framing elements (§3.3.1, §3.3.2).
bool starts_element(std::string_view s, std::string_view name) {
  if (s.size() <= name.size() + 1 || s[0] != '<' || s.substr(1, name.size()) != name) return false;
  const char next = s[name.size() + 1];
  return is_space(next) || next == '/' || next == '>';
}

}  // namespace

std::string websocket_accept(std::string_view key) {
  std::string input(key);
  input += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return core::base64_encode(
      std::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

void WebSocketFraming::frame(std::string& out, std::uint8_t opcode, std::string_view payload) {
  out += static_cast<char>(0x80 | opcode);  // FIN: the server never fragments
  const std::uint64_t n = payload.size();
  if (n < 126) {
    out += static_cast<char>(n);
  } else if (n <= 0xFFFF) {
    out += static_cast<char>(126);
    out += static_cast<char>((n >> 8) & 0xFF);
    out += static_cast<char>(n & 0xFF);
  } else {
    out += static_cast<char>(127);
    for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((n >> shift) & 0xFF);
  }
  out.append(payload);  // server frames are not masked (RFC 6455 §5.1)
}

std::string WebSocketFraming::close_frame(CloseCode code) {
  const auto c = static_cast<std::uint16_t>(code);
  const char payload[2] = {static_cast<char>(c >> 8), static_cast<char>(c & 0xFF)};
  std::string out;
  frame(out, kClose, std::string_view(payload, 2));
  return out;
}

void WebSocketFraming::fail(Decoded& out, CloseCode code) {
  out.replies += close_frame(code);
  out.closed = true;
  out.failure = code;
  closed_ = true;
  in_.clear();
  message_.clear();
  release_if_large(in_);
  release_if_large(message_);
}

void WebSocketFraming::decode(std::string_view bytes, Decoded& out) {
  if (closed_) return;
  in_.append(bytes);
  while (!closed_ && take_frame(out)) {
  }
  release_if_large(in_);
}

bool WebSocketFraming::take_frame(Decoded& out) {
  const auto* p = reinterpret_cast<const unsigned char*>(in_.data());
  const std::size_t have = in_.size();
  if (have < 2) return false;
  const bool fin = (p[0] & 0x80) != 0;
  const std::uint8_t opcode = p[0] & 0x0F;
  const bool masked = (p[1] & 0x80) != 0;
  // No extension is negotiated, so the RSV bits are zero; a client masks every frame.
  if ((p[0] & 0x70) != 0 || !masked) {
    fail(out, CloseCode::kProtocolError);
    return false;
  }
  std::uint64_t length = p[1] & 0x7F;
  std::size_t header = 2;
  if (length == 126) {
    if (have < 4) return false;
    length = (std::uint64_t{p[2]} << 8) | p[3];
    header = 4;
  } else if (length == 127) {
    if (have < 10) return false;
    length = 0;
    for (int i = 0; i < 8; ++i) length = (length << 8) | p[2 + i];
    header = 10;
  }
  const bool control = (opcode & 0x8) != 0;
  if (control && (length > 125 || !fin)) {
    fail(out, CloseCode::kProtocolError);
    return false;
  }
  if (!control && length > max_message_ - std::min(max_message_, message_.size())) {
    // Refused before its payload arrives: a large frame is never buffered.
    fail(out, CloseCode::kTooBig);
    return false;
  }
  if (have - header < 4 + length) return false;
  const unsigned char* mask = p + header;
  const std::size_t start = header + 4;
  std::string payload(in_, start, static_cast<std::size_t>(length));
  for (std::size_t i = 0; i < payload.size(); ++i)
    payload[i] = static_cast<char>(static_cast<unsigned char>(payload[i]) ^ mask[i % 4]);
  in_.erase(0, start + static_cast<std::size_t>(length));

  switch (opcode) {
    case kContinuation:
      if (!in_message_) {
        fail(out, CloseCode::kProtocolError);
        return false;
      }
      message_ += payload;
      if (fin) finish_message(out);
      return true;
    case kText:
      if (in_message_) {  // a new message before the last one finished
        fail(out, CloseCode::kProtocolError);
        return false;
      }
      in_message_ = true;
      message_ = std::move(payload);
      if (fin) finish_message(out);
      return true;
    case kBinary:
      fail(out, CloseCode::kUnsupportedData);
      return false;
    case kClose: {
      // The closing handshake: answered with the client's status (§5.5.1), then the end.
      std::string reply;
      frame(reply, kClose, payload.substr(0, std::min<std::size_t>(payload.size(), 2)));
      out.replies += reply;
      out.closed = true;
      closed_ = true;
      return false;
    }
    case kPing: {
      std::string reply;
      frame(reply, kPong, payload);
      out.replies += reply;
      return true;
    }
    case kPong:
      return true;
    default:
      fail(out, CloseCode::kProtocolError);
      return false;
  }
}

void WebSocketFraming::finish_message(Decoded& out) {
  in_message_ = false;
  std::string_view msg = trim_front(message_);
  if (starts_element(msg, "open")) {
    auto open = xml::parse_element(msg);
    if (!open || open->name() != "open" || open->ns() != kFramingNs) {
      out.error = open ? core::StreamError::kInvalidNamespace : core::StreamError::kBadFormat;
    } else {
      // The header of an ordinary client stream, so that the stream parser and the session
      // see what a TCP client sends.
      xml::Element header("stream:stream", "");
      header.set_attr("xmlns", kClientNs);
      header.set_attr("xmlns:stream", kStreamNs);
      for (const auto& a : open->attrs())
        if (a.name != "xmlns") header.set_attr(a.name, a.value);
      std::string text;
      header.serialize(text);
      text.replace(text.size() - 2, 2, ">");
      out.xml += text;
    }
  } else if (starts_element(msg, "close")) {
    out.xml += "</stream:stream>";
  } else {
    out.xml += msg;
  }
  message_.clear();
  release_if_large(message_);
}

void WebSocketFraming::encode(std::string_view xml, std::string& out) {
  for (const char c : xml) {
    switch (scan_) {
      case Scan::kText:
        if (c == '<') {
          element_ += c;
          scan_ = Scan::kTagStart;
        } else if (depth_ > 0) {
          element_ += c;
        }  // text between top-level elements (whitespace) has no frame to go in
        break;
      case Scan::kTagStart:
        element_ += c;
        if (c == '?') {
          scan_ = Scan::kDecl;
        } else {
          end_tag_ = c == '/';
          scan_ = Scan::kTag;
          if (depth_ == 0 && !end_tag_) {
            in_top_tag_ = true;
            name_end_ = 0;
            has_xmlns_ = false;
            attr_.clear();
          }
        }
        break;
      case Scan::kDecl:
        element_ += c;
        if (c == '>' && last_ == '?') {
          scan_ = Scan::kText;
          if (depth_ == 0) element_.clear();  // the XML declaration: none in RFC 7395
        }
        break;
      case Scan::kQuote:
        element_ += c;
        if (c == quote_) scan_ = Scan::kTag;
        break;
      case Scan::kTag:
        element_ += c;
        if (c == '\'' || c == '"') {
          quote_ = c;
          scan_ = Scan::kQuote;
          break;
        }
        if (in_top_tag_) {
          if (name_end_ == 0) {
            if (is_space(c) || c == '/' || c == '>') name_end_ = element_.size() - 1;
          } else if (c == '=') {
            if (attr_ == "xmlns" || attr_ == "xmlns:stream") has_xmlns_ = true;
            attr_.clear();
          } else if (is_space(c) || c == '/' || c == '>') {
            attr_.clear();
          } else {
            attr_ += c;
          }
        }
        if (c != '>') break;
        scan_ = Scan::kText;
        if (end_tag_) {
          if (depth_ == 0) {  // </stream:stream>: the end of the stream
            element_.clear();
            std::string close = "<close xmlns='";
            close += kFramingNs;
            close += "'/>";
            frame(out, kText, close);
            out += close_frame(CloseCode::kNormal);
          } else if (--depth_ == 0) {
            emit(out);
          }
        } else if (last_ == '/') {  // an empty element
          in_top_tag_ = false;
          if (depth_ == 0) emit(out);
        } else if (depth_ == 0 &&
                   std::string_view(element_).substr(1, name_end_ - 1) == "stream:stream") {
          // The stream header: its attributes go on <open/>.
          in_top_tag_ = false;
          std::string tag = element_;
          tag.replace(tag.size() - 1, 1, "/>");
          element_.clear();
          auto header = xml::parse_element(tag);
          xml::Element open("open", std::string(kFramingNs));
          if (header)
            for (const auto& a : header->attrs()) open.set_attr(a.name, a.value);
          frame(out, kText, open.str());
        } else {
          in_top_tag_ = false;
          ++depth_;
        }
        break;
    }
    last_ = c;
  }
}

void WebSocketFraming::emit(std::string& out) {
  // §3.3.3: every element carries its namespace: stanzas the stream's default one, the
  // stream namespace's elements (features, errors) their prefix's declaration.
  if (!has_xmlns_) {
    const std::string_view name = std::string_view(element_).substr(1, name_end_ - 1);
    std::string decl;
    if (name.substr(0, 7) == "stream:") {
      decl = " xmlns:stream='";
      decl += kStreamNs;
      decl += '\'';
    } else {
      decl = " xmlns='";
      decl += kClientNs;
      decl += '\'';
    }
    element_.insert(name_end_, decl);
  }
  frame(out, kText, element_);
  element_.clear();
  release_if_large(element_);
}

}  // namespace waddle::web
