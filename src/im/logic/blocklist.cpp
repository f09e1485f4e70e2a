// XEP-0191 blocklists and commands without I/O; see blocklist.h.
#include "im/logic/blocklist.h"

#include "core/namespaces.h"

namespace waddle::im::logic {
using core::Jid;
using core::StanzaError;
using xml::Element;

bool Blocklist::blocks(const Jid& jid) const {
  if (items_.empty()) return false;
  // XEP-0016 §2.1: <user@domain/resource>, then <user@domain>, then <domain>.
  if (!jid.is_bare() && contains(jid.str())) return true;
  if (!jid.local().empty() && contains(jid.bare_str())) return true;
  return contains(jid.domain());
}

bool Blocklist::blocks(std::string_view jid) const {
  if (items_.empty()) return false;
  auto parsed = Jid::parse(jid);
  return parsed && blocks(*parsed);
}

std::vector<std::string> Blocklist::add(const std::vector<std::string>& jids) {
  std::vector<std::string> added;
  for (const auto& j : jids)
    if (items_.insert(j).second) added.push_back(j);
  return added;
}

std::vector<std::string> Blocklist::remove(const std::vector<std::string>& jids) {
  std::vector<std::string> removed;
  for (const auto& j : jids)
    if (auto it = items_.find(j); it != items_.end()) {
      removed.push_back(j);
      items_.erase(it);
    }
  return removed;
}

std::vector<std::string> Blocklist::clear() {
  std::vector<std::string> all(items_.begin(), items_.end());
  items_.clear();
  return all;
}

std::string_view to_string(ReportReason reason) {
  switch (reason) {
    case ReportReason::kSpam:
      return "spam";
    case ReportReason::kAbuse:
      return "abuse";
    case ReportReason::kOther:
      return "other";
    case ReportReason::kNone:
      break;
  }
  return "none";
}

std::string truncate_utf8(std::string_view text, std::size_t max) {
  if (text.size() <= max) return std::string(text);
  std::size_t end = max;
  // Back up over continuation bytes (10xxxxxx) to the start of the cut character.
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return std::string(text.substr(0, end));
}

namespace {

// XEP-0377 §4 (urn:xmpp:reporting:1: a 'reason' attribute) and its earlier version 0.2
// (urn:xmpp:reporting:0: a <spam/> or <abuse/> child), as clients still send both. `parent`
// is the <item/>; a report there is missing, one in <block/> itself applies to every item
// (COMPAT(slixmpp): its XEP-0377 plugin puts the report there).
bool read_report(const Element& parent, BlockItem& out) {
  const Element* report = parent.child("report", ns::kReporting);
  if (report) {
    auto reason = report->attr("reason");
    out.reason = reason == ns::kReportingSpam    ? ReportReason::kSpam
                 : reason == ns::kReportingAbuse ? ReportReason::kAbuse
                                                 : ReportReason::kOther;
  } else if ((report = parent.child("report", ns::kReporting0))) {
    out.reason = report->child("spam", ns::kReporting0)    ? ReportReason::kSpam
                 : report->child("abuse", ns::kReporting0) ? ReportReason::kAbuse
                                                           : ReportReason::kOther;
  } else {
    return false;
  }
  out.text = truncate_utf8(report->child_text("text", report->ns()), kMaxReportText);
  return true;
}

}  // namespace

bool is_block_command(const Element& iq) {
  const Element* q = iq.first_child();
  return q && q->ns() == ns::kBlocking &&
         (q->name() == "blocklist" || q->name() == "block" || q->name() == "unblock");
}

ParsedCommand parse_block_command(const Element& iq) {
  ParsedCommand out;
  const Element* q = iq.first_child();
  if (!q || q->ns() != ns::kBlocking) return out;
  const bool get = iq.attr("type") == "get";
  BlockCommand cmd;
  if (q->name() == "blocklist" && get) {
    cmd.kind = BlockCommand::Kind::kGet;
    out.command = std::move(cmd);
    return out;
  }
  if (get || (q->name() != "block" && q->name() != "unblock")) return out;
  cmd.kind = q->name() == "block" ? BlockCommand::Kind::kBlock : BlockCommand::Kind::kUnblock;
  for (const Element* item : q->children("item", ns::kBlocking)) {
    auto jid = Jid::parse(item->attr("jid"));
    if (!jid) {
      out.error = StanzaError::kJidMalformed;
      return out;
    }
    BlockItem b;
    b.jid = jid->str();
    if (cmd.kind == BlockCommand::Kind::kBlock && !read_report(*item, b)) read_report(*q, b);
    cmd.items.push_back(std::move(b));
  }
  if (cmd.kind == BlockCommand::Kind::kBlock && cmd.items.empty()) return out;  // §3.3
  out.command = std::move(cmd);
  return out;
}

}  // namespace waddle::im::logic
