#include "im/caps.h"

#include <algorithm>
#include <vector>

#include "im/logic/caps.h"
#include "metrics/metrics.h"
#include "xml/stanza.h"

namespace waddle::im {

using core::Jid;
using xml::Element;

namespace {

constexpr std::string_view kCaps = "http://jabber.org/protocol/caps";
// A question not answered within this time may be asked again (of the next resource that
// sends the same 'ver'); questions out at once, at most.
constexpr auto kAskAgainAfter = std::chrono::seconds(30);
constexpr std::size_t kMaxQuestions = 1000;

}  // namespace

void Caps::presence(const Jid& from, const Element& p, std::string_view asker) {
  const Element* c = p.child("c", kCaps);
  if (!c || c->attr("hash") != "sha-1" || c->attr("ver").empty() || c->attr("node").empty()) {
    forget(from);
    return;
  }
  const std::string ver(c->attr("ver"));
  const std::string jid = from.str();
  const std::size_t max_jids = 10 * std::max<std::size_t>(ctx_.config.c2s.caps_cache_size, 1);
  bool changed = false;
  if (auto it = jids_.find(jid); it != jids_.end()) {
    changed = it->second != ver;
    it->second = ver;
  } else if (jids_.size() < max_jids) {
    changed = true;
    jids_.emplace(jid, ver);
  }
  if (hashes_.count(ver)) {
    if (changed && on_features) on_features(from);
    return;
  }
  if (ctx_.config.c2s.caps_cache_size == 0) return;
  // Asked already and not answered yet: not again, unless that was long ago.
  const auto now = std::chrono::steady_clock::now();
  if (std::any_of(questions_.begin(), questions_.end(), [&](const auto& q) {
        return q.second.key == ver && now - q.second.asked < kAskAgainAfter;
      }))
    return;
  ask(ver, from, asker, c->attr("node"));
}

void Caps::ask(const std::string& key, const Jid& to, std::string_view asker,
               std::string_view node) {
  const auto now = std::chrono::steady_clock::now();
  if (questions_.size() >= kMaxQuestions) {
    // Questions nobody answered in time go.
    std::erase_if(questions_,
                  [&](const auto& q) { return now - q.second.asked >= kAskAgainAfter; });
    if (questions_.size() >= kMaxQuestions) return;
  }
  const std::string id = "caps-" + std::to_string(++next_id_);
  questions_[id] = {key, to.str(), now};
  Element iq("iq", std::string(ns::kClient));
  iq.set_attr("type", "get").set_attr("id", id).set_attr("from", asker).set_attr("to", to.str());
  iq.add_child("query", std::string(ns::kDiscoInfo))
      .set_attr("node", std::string(node) + "#" + key);
  ctx_.router.route(std::move(iq));
}

void Caps::forget(const Jid& full) {
  jids_.erase(full.str());
}

std::shared_ptr<const Caps::Features> Caps::features(const Jid& full) const {
  auto j = jids_.find(full.str());
  if (j == jids_.end()) return nullptr;
  auto h = hashes_.find(j->second);
  return h == hashes_.end() ? nullptr : h->second;
}

bool Caps::take_answer(const Element& iq) {
  auto q = questions_.find(std::string(iq.attr("id")));
  if (q == questions_.end()) return false;
  // An answer from anyone else than the resource asked is not one (and is dropped).
  if (const auto from = Jid::parse(iq.attr("from")); !from || from->str() != q->second.to)
    return true;
  const std::string key = q->second.key;
  questions_.erase(q);
  const Element* query = iq.child("query", ns::kDiscoInfo);
  if (iq.attr("type") != "result" || !query) {
    count("error");
    return true;
  }
  if (caps_ver(*query) != key) {
    count("mismatch");  // §5.4: not to be believed for that 'ver'
    return true;
  }
  auto features = std::make_shared<Features>();
  for (const auto* f : query->children("feature", ns::kDiscoInfo))
    features->emplace(f->attr("var"));
  if (!hashes_.count(key)) {
    while (!order_.empty() && hashes_.size() >= ctx_.config.c2s.caps_cache_size) {
      hashes_.erase(order_.front());
      order_.pop_front();
    }
    order_.push_back(key);
  }
  hashes_[key] = std::move(features);
  count("ok");
  if (ctx_.metrics) ctx_.metrics->caps_cached.set(static_cast<double>(hashes_.size()));
  if (on_features) {
    std::vector<Jid> known;
    for (const auto& [jid, ver] : jids_)
      if (ver == key)
        if (auto j = Jid::parse(jid)) known.push_back(std::move(*j));
    for (const auto& j : known) on_features(j);
  }
  return true;
}

void Caps::count(std::string_view result) {
  if (ctx_.metrics) ctx_.metrics->caps_queries.get({result}).inc();
}

Element Caps::server_caps(const Element& info) {
  Element c("c", std::string(kCaps));
  c.set_attr("hash", "sha-1").set_attr("node", kServerNode).set_attr("ver", caps_ver(info));
  return c;
}

}  // namespace waddle::im
