// Local vs remote routing (spec "Stanza Routing") and the bound-session registry.
#include "router/router.h"

#include <algorithm>
#include <optional>

#include "xml/stanza.h"

namespace waddle::router {

Router::Router(std::vector<std::string> local_domains) : domains_(std::move(local_domains)) {}

bool Router::is_user_domain(std::string_view domain) const {
  return std::find(domains_.begin(), domains_.end(), domain) != domains_.end();
}

bool Router::is_local(std::string_view domain) const {
  return is_user_domain(domain) || components_.find(domain) != components_.end();
}

std::vector<std::string> Router::hosted_domains() const {
  std::vector<std::string> out = domains_;
  for (const auto& [d, h] : components_) out.push_back(d);
  return out;
}

void Router::add_component(std::string domain, LocalHandler* handler) {
  components_[std::move(domain)] = handler;
}

LocalHandler* Router::component(std::string_view domain) const {
  auto it = components_.find(domain);
  return it == components_.end() ? nullptr : it->second;
}

void Router::bounce(const xml::Element& stanza, core::StanzaError condition,
                    std::string_view text) {
  if (!xml::may_bounce(stanza) || !stanza.has_attr("from")) return;
  ++stats_.bounced;
  route(xml::make_error_reply(stanza, condition, text));
}

void Router::route(xml::Element stanza, const xml::SharedStanza* shared) {
  auto to_attr = stanza.attr("to");
  if (to_attr.empty()) {
    // Addressed to the sender's own account or server: local by definition.
    ++stats_.routed_local;
    if (local_) local_->to_local(std::move(stanza));
    return;
  }
  auto to = core::Jid::parse(to_attr);
  if (!to) {
    bounce(stanza, core::StanzaError::kJidMalformed);
    return;
  }
  if (auto* c = component(to->domain())) {
    ++stats_.routed_local;
    c->to_local(std::move(stanza));
    return;
  }
  if (is_user_domain(to->domain())) {
    ++stats_.routed_local;
    if (local_) local_->to_local(std::move(stanza));
    return;
  }
  ++stats_.routed_remote;
  if (remote_) {
    if (shared)
      remote_->send_shared(std::move(stanza), *shared);
    else
      remote_->send(std::move(stanza));
    return;
  }
  bounce(stanza, core::StanzaError::kRemoteServerNotFound,
         "Federation is not enabled on this server");
}

void Router::fan_out(const xml::Element& stanza, const std::vector<std::string>& recipients) {
  std::optional<xml::SharedStanza> shared;  // made at the first local session
  for (const auto& r : recipients) {
    auto to = core::Jid::parse(r);
    LocalSession* s = nullptr;
    if (to && !to->is_bare() && !component(to->domain()) && is_user_domain(to->domain()))
      s = find(*to);
    if (!s) {
      xml::Element copy = stanza;
      copy.set_attr("to", r);
      // Bound for another server: its link writes the shared serialisation.
      const bool remote = to && !is_local(to->domain());
      if (remote && !shared) shared = xml::share_stanza(stanza, xml::ns::kClient);
      route(std::move(copy), remote ? &*shared : nullptr);
      continue;
    }
    if (!shared) shared = xml::share_stanza(stanza, xml::ns::kClient);
    ++stats_.routed_local;
    s->deliver_shared(stanza, *shared, r);
  }
}

LocalSession* Router::add(LocalSession* session) {
  auto& resources = sessions_[session->jid().bare_str()];
  auto [it, inserted] = resources.try_emplace(session->jid().resource(), session);
  if (inserted) {
    ++count_;
    return nullptr;
  }
  LocalSession* old = it->second;
  it->second = session;
  return old;
}

void Router::remove(LocalSession* session) {
  auto it = sessions_.find(session->jid().bare_str());
  if (it == sessions_.end()) return;
  auto r = it->second.find(session->jid().resource());
  if (r == it->second.end() || r->second != session) return;
  it->second.erase(r);
  --count_;
  if (it->second.empty()) sessions_.erase(it);
}

LocalSession* Router::find(const core::Jid& full) const {
  auto it = sessions_.find(full.bare_str());
  if (it == sessions_.end()) return nullptr;
  auto r = it->second.find(full.resource());
  return r == it->second.end() ? nullptr : r->second;
}

std::vector<LocalSession*> Router::sessions_of(const core::Jid& bare) const {
  std::vector<LocalSession*> out;
  auto it = sessions_.find(bare.bare_str());
  if (it == sessions_.end()) return out;
  for (const auto& [res, s] : it->second) out.push_back(s);
  return out;
}

std::vector<LocalSession*> Router::all() const {
  std::vector<LocalSession*> out;
  out.reserve(count_);
  for (const auto& [bare, res] : sessions_)
    for (const auto& [r, s] : res) out.push_back(s);
  return out;
}

}  // namespace waddle::router
