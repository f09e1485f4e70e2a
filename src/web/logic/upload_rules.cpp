// Slot requests, file names, media types and byte ranges for HTTP File Upload.
#include "web/logic/upload_rules.h"

#include <cctype>
#include <charconv>

namespace waddle::web {

namespace {

std::optional<std::uint64_t> parse_u64(std::string_view s) {
  std::uint64_t v = 0;
  if (s.empty()) return std::nullopt;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

bool token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

bool valid_content_type(std::string_view type) {
  if (type.empty() || type.size() > 255) return false;
  const auto semi = type.find(';');
  const std::string_view essence = trim(type.substr(0, semi));
  const auto slash = essence.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == essence.size()) return false;
  for (std::size_t i = 0; i < essence.size(); ++i)
    if (i != slash && !token_char(essence[i])) return false;
  if (semi == std::string_view::npos) return true;
  for (char c : type.substr(semi))
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F || c == '"' || c == '\\') return false;
  return true;
}

std::optional<SlotRequest> parse_slot_request(const xml::Element& request) {
  SlotRequest r;
  r.filename = std::string(request.attr("filename"));
  auto size = parse_u64(request.attr("size"));
  if (r.filename.empty() || !size) return std::nullopt;
  r.size = *size;
  r.content_type = std::string(request.attr("content-type"));
  if (r.content_type.empty()) r.content_type = "application/octet-stream";
  if (!valid_content_type(r.content_type)) return std::nullopt;
  return r;
}

std::string safe_filename(std::string_view name) {
  if (const auto slash = name.find_last_of("/\\"); slash != std::string_view::npos)
    name.remove_prefix(slash + 1);
  std::string out;
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) continue;
    out += c;
  }
  while (!out.empty() && (out.front() == '.' || out.front() == ' ')) out.erase(0, 1);
  if (out.size() > 200) {
    std::size_t cut = 200;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
    out.resize(cut);
  }
  if (out.empty()) out = "file";
  return out;
}

std::string encode_segment(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += hex[u >> 4];
      out += hex[u & 0xF];
    }
  }
  return out;
}

std::optional<std::string> decode_segment(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;  // "%" needs two hex digits after it
    unsigned v = 0;
    auto [end, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
    if (ec != std::errc() || end != s.data() + i + 3) return std::nullopt;
    out += static_cast<char>(v);
    i += 2;
  }
  return out;
}

xml::Element slot_element(std::string_view put_url, std::string_view get_url) {
  xml::Element slot("slot", std::string(kUploadNs));
  slot.add_child("put", std::string(kUploadNs)).set_attr("url", put_url);
  slot.add_child("get", std::string(kUploadNs)).set_attr("url", get_url);
  return slot;
}

xml::Element file_too_large(std::uint64_t max_file_size) {
  xml::Element e("file-too-large", std::string(kUploadNs));
  e.add_child("max-file-size", std::string(kUploadNs)).add_text(std::to_string(max_file_size));
  return e;
}

xml::Element upload_form(std::uint64_t max_file_size) {
  const std::string data = "jabber:x:data";
  xml::Element x("x", data);
  x.set_attr("type", "result");
  auto& type = x.add_child("field", data);
  type.set_attr("var", "FORM_TYPE").set_attr("type", "hidden");
  type.add_child("value", data).add_text(kUploadNs);
  x.add_child("field", data)
      .set_attr("var", "max-file-size")
      .add_child("value", data)
      .add_text(std::to_string(max_file_size));
  return x;
}

bool inline_safe(std::string_view content_type) {
  const std::string t = lower(trim(content_type.substr(0, content_type.find(';'))));
  if (t == "image/svg+xml") return false;  // SVG may carry scripts
  return t.starts_with("image/") || t.starts_with("audio/") || t.starts_with("video/") ||
         t == "text/plain" || t == "application/pdf";
}

ByteRange parse_range(std::string_view header, std::uint64_t size) {
  ByteRange whole;
  header = trim(header);
  if (!header.starts_with("bytes=")) return whole;
  std::string_view spec = trim(header.substr(6));
  if (spec.find(',') != std::string_view::npos) return whole;  // several ranges
  const auto dash = spec.find('-');
  if (dash == std::string_view::npos) return whole;
  const std::string_view a = trim(spec.substr(0, dash));
  const std::string_view b = trim(spec.substr(dash + 1));
  ByteRange r;
  r.kind = ByteRange::Kind::kPartial;
  if (a.empty()) {  // the last b bytes
    auto n = parse_u64(b);
    if (!n) return whole;
    if (*n == 0 || size == 0) return {ByteRange::Kind::kUnsatisfiable, 0, 0};
    r.first = *n >= size ? 0 : size - *n;
    r.last = size - 1;
    return r;
  }
  auto first = parse_u64(a);
  if (!first) return whole;
  std::optional<std::uint64_t> last =
      b.empty() ? std::optional<std::uint64_t>(*first) : parse_u64(b);
  if (!last || *last < *first) return whole;  // invalid: ignored
  if (*first >= size) return {ByteRange::Kind::kUnsatisfiable, 0, 0};
  if (b.empty()) last = size - 1;
  r.first = *first;
  r.last = std::min(*last, size - 1);
  return r;
}

}  // namespace waddle::web
