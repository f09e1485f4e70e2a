// HTTP File Upload (XEP-0363) without I/O: slot requests and answers, the names and types a
// file is kept and served under, and HTTP byte ranges (RFC 9110 §14).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "xml/element.h"

namespace waddle::web {

inline constexpr std::string_view kUploadNs = ns::kHttpUpload;

struct SlotRequest {
  std::string filename;      // as the client named it (shown to recipients)
  std::uint64_t size = 0;    // bytes
  std::string content_type;  // "application/octet-stream" when the client gave none
};

// XEP-0363 §4: <request filename='' size='' content-type=''/>; nullopt when a required
// attribute is missing or malformed (bad-request).
std::optional<SlotRequest> parse_slot_request(const xml::Element& request);

// A media type a server can echo back: "type/subtype" of RFC 9110 token characters, with
// optional parameters (no quotes, no line breaks).
bool valid_content_type(std::string_view type);

// The name a file is served under (the last path segment of its URLs): the client's name
// without directories, control characters or leading dots; "file" when nothing is left.
// At most 200 bytes (a UTF-8 sequence is not cut).
std::string safe_filename(std::string_view name);

// Percent-encoding of one URL path segment (RFC 3986 unreserved characters stay), and its
// decoding (nullopt on a malformed escape).
std::string encode_segment(std::string_view s);
std::optional<std::string> decode_segment(std::string_view s);

// The <slot/> of a result (§4), and the <file-too-large/> of a not-acceptable error (§5).
xml::Element slot_element(std::string_view put_url, std::string_view get_url);
xml::Element file_too_large(std::uint64_t max_file_size);
// The disco#info extension form with max-file-size (§3).
xml::Element upload_form(std::uint64_t max_file_size);

// Whether browsers may show a file of this type inline without running anything in it:
// images other than SVG, audio, video, plain text, PDF. Everything else is an attachment.
bool inline_safe(std::string_view content_type);

// A "Range: bytes=..." header against a file of `size` bytes. One range is honoured; several,
// or a unit other than bytes, get the whole file (RFC 9110 allows ignoring Range).
struct ByteRange {
  enum class Kind { kWhole, kPartial, kUnsatisfiable } kind = Kind::kWhole;
  std::uint64_t first = 0;  // inclusive
  std::uint64_t last = 0;   // inclusive
};
ByteRange parse_range(std::string_view header, std::uint64_t size);

}  // namespace waddle::web
