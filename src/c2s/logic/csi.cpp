#include "c2s/logic/csi.h"

#include <utility>

#include "core/namespaces.h"

namespace waddle::c2s {

std::string ClientState::hold_key(const xml::Element& stanza) {
  const auto from = stanza.attr("from");
  if (stanza.name() == "presence") {
    const auto type = stanza.attr("type");
    if (type.empty() || type == "unavailable") return "p" + std::string(from);
    return {};
  }
  if (stanza.name() != "message" || stanza.attr("type") == "error") return {};
  bool state = false;
  for (const auto& node : stanza.nodes()) {
    if (!node.is_element()) continue;
    const auto& child = *node.element;
    if (child.ns() == ns::kChatStates) {
      state = true;
    } else if (child.name() != "thread" && child.ns() != ns::kHints) {
      return {};  // a body, a receipt, anything else: it goes now
    }
  }
  return state ? "c" + std::string(from) : std::string();
}

ClientState::Hold ClientState::hold(std::string key, Held stanza) {
  if (auto it = by_key_.find(key); it != by_key_.end()) {
    bytes_ -= size_of(*it->second);
    order_.erase(it->second);
    by_key_.erase(it);
    ++replaced_;
  } else if (order_.size() >= capacity_) {
    return Hold::kFull;
  }
  const std::uint64_t size = size_of(stanza);
  if (bytes_ + size > capacity_bytes_) return Hold::kFullBytes;
  bytes_ += size;
  order_.push_back(std::move(stanza));
  by_key_.emplace(std::move(key), std::prev(order_.end()));
  return Hold::kHeld;
}

std::list<ClientState::Held> ClientState::take() {
  by_key_.clear();
  bytes_ = 0;
  return std::exchange(order_, {});
}

}  // namespace waddle::c2s
