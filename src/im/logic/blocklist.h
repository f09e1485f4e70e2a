// A user's blocklist without I/O: JID matching (XEP-0191 §3.3, which takes XEP-0016 §2.1's
// order: full JID, bare JID, domain) and reading the blocking commands (XEP-0191 §3.2-§3.5)
// with the abuse reports of XEP-0377 inside <block/> items.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/errors.h"
#include "core/jid.h"
#include "xml/element.h"

namespace waddle::im::logic {

// Entries one account may block; a block command past it is refused with policy-violation.
inline constexpr std::size_t kMaxBlocklistItems = 1000;
// Bytes of a report's <text/> kept (longer ones are cut at a UTF-8 character boundary).
inline constexpr std::size_t kMaxReportText = 1024;

class Blocklist {
 public:
  Blocklist() = default;
  explicit Blocklist(const std::vector<std::string>& jids) { add(jids); }

  bool empty() const { return items_.empty(); }
  std::size_t size() const { return items_.size(); }
  const std::set<std::string, std::less<>>& items() const { return items_; }
  bool contains(std::string_view jid) const { return items_.find(jid) != items_.end(); }

  // Whether stanzas from or to `jid` are blocked: an item equal to its full JID, its bare
  // JID, or its domain (a domain item blocks every JID at that domain).
  bool blocks(const core::Jid& jid) const;
  // The same for a JID given as text (an unparsable one is never blocked).
  bool blocks(std::string_view jid) const;
  // Adds the JIDs (prepared strings); returns those that were not there already.
  std::vector<std::string> add(const std::vector<std::string>& jids);
  // Removes the JIDs; returns those that were there.
  std::vector<std::string> remove(const std::vector<std::string>& jids);
  // Removes everything; returns what was there.
  std::vector<std::string> clear();

 private:
  std::set<std::string, std::less<>> items_;
};

// XEP-0377 reasons; kOther is a report whose reason this server does not know.
enum class ReportReason { kNone, kSpam, kAbuse, kOther };
std::string_view to_string(ReportReason reason);

struct BlockItem {
  std::string jid;  // prepared (core::Jid::str())
  ReportReason reason = ReportReason::kNone;
  std::string text;  // the report's <text/>, at most kMaxReportText bytes
};

struct BlockCommand {
  enum class Kind { kGet, kBlock, kUnblock };
  Kind kind = Kind::kGet;
  std::vector<BlockItem> items;  // kUnblock with no items: unblock everything (§3.5)
};

struct ParsedCommand {
  std::optional<BlockCommand> command;
  core::StanzaError error = core::StanzaError::kBadRequest;  // when command is nullopt
};

// Whether `iq` (type get or set) carries a blocking command payload.
bool is_block_command(const xml::Element& iq);
// Reads a blocking command: bad-request for a <block/> without items or a payload that does
// not fit the IQ type, jid-malformed for an item whose 'jid' is not a valid JID (§3.3).
ParsedCommand parse_block_command(const xml::Element& iq);

// `text` cut to at most `max` bytes without splitting a UTF-8 sequence.
std::string truncate_utf8(std::string_view text, std::size_t max);

}  // namespace waddle::im::logic
