// XEP-0191 §3.2-§3.5 on the server: the blocklist, block and unblock commands with their
// pushes and presence (unavailable to newly blocked contacts, current presence and a probe
// for unblocked ones), and XEP-0377 abuse reports stored for the operator and counted.
#include <boost/asio.hpp>

#include <set>

#include "im/blocking.h"
#include "im/logic/subscription.h"
#include "metrics/metrics.h"
#include "net/worker.h"
#include "xml/stanza.h"

namespace waddle::im {
namespace asio = boost::asio;
using core::Jid;
using core::StanzaError;
using logic::BlockCommand;
using xml::Element;

asio::awaitable<void> Blocking::handle_command(Element iq, Jid from) {
  auto parsed = logic::parse_block_command(iq);
  if (!parsed.command) {
    Element error = xml::make_error_reply(iq, parsed.error);
    ctx_.deliver_to(from, error);
    co_return;
  }
  if (parsed.command->kind == BlockCommand::Kind::kGet) {
    co_await get(std::move(iq), std::move(from));
    co_return;
  }
  co_await change(std::move(iq), std::move(from), std::move(*parsed.command));
}

// §3.2: the list; the resource now gets the pushes.
asio::awaitable<void> Blocking::get(Element iq, Jid from) {
  Jid user = from.bare();
  if (auto* s = ctx_.router.find(from)) start_loading(user)->second.interested[from] = s;
  std::string domain = user.domain(), name = user.local();
  auto read = [=](storage::Storage& st) { return st.blocklist_get(domain, name); };
  auto jids = co_await ctx_.worker.run(std::move(read));
  Element reply = xml::make_iq_result(iq);
  auto& list = reply.add_child("blocklist", std::string(ns::kBlocking));
  for (const auto& j : jids) list.add_child("item", std::string(ns::kBlocking)).set_attr("jid", j);
  ctx_.deliver_to(from, reply);
}

// §3.3-§3.5, with the XEP-0377 reports of a block written in the same job.
asio::awaitable<void> Blocking::change(Element iq, Jid from, BlockCommand cmd) {
  Jid user = from.bare();
  std::string domain = user.domain(), name = user.local();
  auto write = [=](storage::Storage& st) {
    Change c;
    logic::Blocklist current(st.blocklist_get(domain, name));
    std::vector<std::string> jids;
    for (const auto& item : cmd.items) jids.push_back(item.jid);
    if (cmd.kind == BlockCommand::Kind::kBlock) {
      c.changed = current.add(jids);
      if (current.size() > logic::kMaxBlocklistItems) {
        c.too_many = true;
        return c;
      }
      st.blocklist_add(domain, name, c.changed);
      for (const auto& item : cmd.items) {
        if (item.reason == logic::ReportReason::kNone) continue;
        st.spam_report_add(
            {domain, name, item.jid, std::string(logic::to_string(item.reason)), item.text, 0});
      }
    } else {
      c.changed = jids.empty() ? current.clear() : current.remove(jids);
      if (!c.changed.empty()) st.blocklist_remove(domain, name, c.changed);
    }
    c.list.assign(current.items().begin(), current.items().end());
    if (!c.changed.empty()) c.roster = st.roster_get(domain, name);
    return c;
  };
  Change c = co_await ctx_.worker.run(std::move(write));
  changed(iq, from, cmd, c);
}

// After the change is stored: the answer, the cache, the pushes and the presence.
void Blocking::changed(const Element& iq, const Jid& from, const BlockCommand& cmd,
                       const Change& c) {
  if (c.too_many) {
    ctx_.deliver_to(
        from, xml::make_error_reply(iq, StanzaError::kPolicyViolation, "Too many blocked JIDs"));
    return;
  }
  Jid user = from.bare();
  settle(user, logic::Blocklist(c.list), true);
  ctx_.deliver_to(from, xml::make_iq_result(iq));
  if (ctx_.metrics) {
    for (const auto& item : cmd.items)
      if (item.reason != logic::ReportReason::kNone)
        ctx_.metrics->spam_report(logic::to_string(item.reason));
  }
  push(user, cmd);
  if (c.changed.empty()) return;
  if (cmd.kind == BlockCommand::Kind::kBlock)
    blocked_presence(user, c);
  else
    unblocked_presence(user, c);
}

// §3.3/§3.4: the same command pushed to every resource that asked for the list.
void Blocking::push(const Jid& user, const BlockCommand& cmd) {
  auto it = cache_.find(user.str());
  if (it == cache_.end()) return;
  const bool block = cmd.kind == BlockCommand::Kind::kBlock;
  for (const auto& [full, session] : it->second.interested) {
    if (ctx_.router.find(full) != session) continue;  // gone, or another session took over
    Element iq("iq", std::string(ns::kClient));
    iq.set_attr("type", "set");
    iq.set_attr("id", "block-push" + std::to_string(++push_counter_));
    iq.set_attr("to", full.str());
    auto& q = iq.add_child(block ? "block" : "unblock", std::string(ns::kBlocking));
    for (const auto& item : cmd.items)
      q.add_child("item", std::string(ns::kBlocking)).set_attr("jid", item.jid);
    session->deliver(iq);
  }
}

// §3.3: unavailable presence from each available resource to the newly blocked contacts that
// had its presence (subscribed, or sent directed presence); they get no more.
void Blocking::blocked_presence(const Jid& user, const Change& c) {
  const logic::Blocklist added(c.changed);
  std::set<std::string> subscribed;
  for (const auto& item : c.roster)
    if (logic::receives_presence(item) && added.blocks(item.jid)) subscribed.insert(item.jid);
  for (auto* s : ctx_.router.sessions_of(user)) {
    std::set<std::string> to;
    if (s->available) to = subscribed;
    for (auto d = s->directed_to.begin(); d != s->directed_to.end();) {
      if (added.blocks(*d)) {
        to.insert(*d);
        d = s->directed_to.erase(d);
      } else {
        ++d;
      }
    }
    for (const auto& contact : to)
      ctx_.router.route(presence("unavailable", s->jid().str(), contact));
  }
}

// §3.4/§3.5: contacts no longer blocked get the user's current presence again, and those the
// user is subscribed to are probed so that the user sees theirs.
void Blocking::unblocked_presence(const Jid& user, const Change& c) {
  const logic::Blocklist removed(c.changed);
  const logic::Blocklist still(c.list);
  for (const auto& item : c.roster) {
    if (!removed.blocks(item.jid) || still.blocks(item.jid)) continue;
    if (logic::receives_presence(item)) ctx_.send_presence_of(user, item.jid);
    if (logic::sends_presence(item))
      ctx_.router.route(presence("probe", user.bare_str(), item.jid));
  }
}

}  // namespace waddle::im
