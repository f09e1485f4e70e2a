// Slots, quotas and expiry of the upload service.
#include "web/logic/upload_service.h"

#include <algorithm>

#include "core/ids.h"
#include "core/jid.h"
#include "metrics/metrics.h"
#include "web/logic/upload_rules.h"
#include "xml/stanza.h"

namespace waddle::web {

using core::StanzaError;
using xml::Element;

UploadService::UploadService(const core::Config& config, std::unique_ptr<FileStore> store,
                             std::function<std::int64_t()> now, metrics::WebMetrics* metrics)
    : config_(config), store_(std::move(store)), now_(std::move(now)), metrics_(metrics) {
  for (auto& f : store_->list()) {
    charge(f.owner, static_cast<std::int64_t>(f.size));
    stored_ += f.size;
    files_.emplace(f.slot, std::move(f));
  }
  cleanup();
}

void UploadService::count_slot(std::string_view result) {
  if (metrics_) metrics_->upload_slots.get({result}).inc();
}

void UploadService::refresh_gauges() {
  if (!metrics_) return;
  metrics_->upload_files.set(static_cast<double>(files_.size()));
  metrics_->upload_stored_bytes.set(static_cast<double>(stored_));
}

void UploadService::charge(const std::string& owner, std::int64_t bytes) {
  auto& u = usage_[owner];
  if (bytes >= 0) {
    u += static_cast<std::uint64_t>(bytes);
    total_ += static_cast<std::uint64_t>(bytes);
  } else {
    const auto b = static_cast<std::uint64_t>(-bytes);
    u -= std::min(u, b);
    total_ -= std::min(total_, b);
  }
  if (u == 0) usage_.erase(owner);
}

std::uint64_t UploadService::usage(const std::string& owner) const {
  auto it = usage_.find(owner);
  return it == usage_.end() ? 0 : it->second;
}

std::string UploadService::base_url(const std::string& domain) const {
  const auto& web = config_.web;
  if (!web.public_url.empty()) {
    std::string url = web.public_url;
    while (!url.empty() && url.back() == '/') url.pop_back();
    return url;
  }
  if (web.port != 0)
    return "https://" + domain + (web.port == 443 ? "" : ":" + std::to_string(web.port));
  return "http://" + web.plain_address + ":" + std::to_string(web.plain_port);
}

Element UploadService::disco_form() const {
  return upload_form(config_.upload.max_file_size);
}

// XEP-0363 §4-§5.
Element UploadService::request_slot(const Element& iq) {
  const auto from = core::Jid::parse(iq.attr("from"));
  const auto to = core::Jid::parse(iq.attr("to"));
  const Element* q = iq.first_child();
  if (!from || !to || !q || iq.attr("type") != "get") {
    count_slot("bad_request");
    return xml::make_error_reply(iq, StanzaError::kBadRequest);
  }
  const bool local = std::find(config_.server.domains.begin(), config_.server.domains.end(),
                               from->domain()) != config_.server.domains.end();
  if (!local && !config_.upload.allow_remote) {
    count_slot("not_allowed");
    return xml::make_error_reply(iq, StanzaError::kNotAllowed,
                                 "Only users of this server may upload files here");
  }
  auto request = parse_slot_request(*q);
  if (!request) {
    count_slot("bad_request");
    return xml::make_error_reply(iq, StanzaError::kBadRequest,
                                 "A filename, a size and a valid content-type are required");
  }
  if (request->size > config_.upload.max_file_size) {
    count_slot("too_large");
    Element reply = xml::make_error_reply(iq, StanzaError::kNotAcceptable, "File too large");
    if (Element* error = reply.child("error"))
      error->add_child(file_too_large(config_.upload.max_file_size));
    return reply;
  }
  cleanup();  // slots past their time give their reservation back first
  const std::string owner = from->bare_str();
  const auto& limits = config_.upload;
  if ((limits.quota_per_user != 0 && usage(owner) + request->size > limits.quota_per_user) ||
      (limits.max_total_size != 0 && total_ + request->size > limits.max_total_size)) {
    count_slot("quota");
    return xml::make_error_reply(iq, StanzaError::kResourceConstraint,
                                 "Quota reached: remove or wait for older files to expire");
  }
  Pending p;
  p.file.slot = core::random_hex(16);
  p.file.owner = owner;
  p.file.filename = safe_filename(request->filename);
  p.file.content_type = request->content_type;
  p.file.size = request->size;
  p.expires =
      now_() + std::chrono::duration_cast<std::chrono::seconds>(limits.slot_timeout).count();
  const std::string url = base_url(std::string(to->domain())) + std::string(kPathPrefix) +
                          p.file.slot + "/" + encode_segment(p.file.filename);
  charge(owner, static_cast<std::int64_t>(request->size));
  pending_.emplace(p.file.slot, std::move(p));
  count_slot("ok");
  Element reply = xml::make_iq_result(iq);
  reply.add_child(slot_element(url, url));
  return reply;
}

UploadService::Put UploadService::begin_put(const std::string& slot, const std::string& filename,
                                            std::optional<std::uint64_t> content_length,
                                            std::string_view content_type) {
  Put put;
  auto refuse = [&](unsigned status, std::string reason) {
    put.status = status;
    put.reason = std::move(reason);
    if (metrics_) metrics_->upload_puts.get({"refused"}).inc();
    return std::move(put);
  };
  if (files_.count(slot)) return refuse(409, "this slot has been used already");
  auto it = pending_.find(slot);
  if (it == pending_.end() || it->second.expires < now_() || it->second.file.filename != filename)
    return refuse(403, "no such upload slot, or it has expired");
  Pending& p = it->second;
  if (p.busy) return refuse(409, "an upload to this slot is in progress");
  if (!content_length) return refuse(411, "Content-Length is required");
  if (*content_length > p.file.size)
    return refuse(413, "larger than the size given in the slot request");
  if (*content_length != p.file.size)
    return refuse(400, "Content-Length differs from the size given in the slot request");
  // §4: the Content-Type must be the one of the slot request (parameters aside).
  auto essence = [](std::string_view t) {
    t = t.substr(0, t.find(';'));
    while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
    std::string out(t);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  };
  const std::string_view sent = content_type.empty() ? "application/octet-stream" : content_type;
  if (essence(sent) != essence(p.file.content_type))
    return refuse(415, "Content-Type differs from the one given in the slot request");
  StoredFile file = p.file;
  file.created = now_();
  put.writer = store_->create(file);
  if (!put.writer) {
    if (metrics_) metrics_->upload_puts.get({"failed"}).inc();
    put.status = 500;
    put.reason = "the file cannot be stored";
    return put;
  }
  p.file.created = file.created;
  p.busy = true;
  put.size = p.file.size;
  return put;
}

bool UploadService::finish_put(const std::string& slot, std::unique_ptr<FileStore::Writer> writer) {
  auto it = pending_.find(slot);
  if (it == pending_.end()) return false;
  if (!writer->commit()) {
    it->second.busy = false;
    if (metrics_) metrics_->upload_puts.get({"failed"}).inc();
    return false;
  }
  StoredFile file = std::move(it->second.file);
  pending_.erase(it);
  stored_ += file.size;  // already charged when the slot was handed out
  if (metrics_) {
    metrics_->upload_puts.get({"ok"}).inc();
    metrics_->upload_bytes.get({"in"}).inc(static_cast<double>(file.size));
  }
  files_.emplace(file.slot, std::move(file));
  refresh_gauges();
  return true;
}

void UploadService::abort_put(const std::string& slot) {
  if (metrics_) metrics_->upload_puts.get({"aborted"}).inc();
  if (auto it = pending_.find(slot); it != pending_.end()) it->second.busy = false;
}

const StoredFile* UploadService::find(const std::string& slot, const std::string& filename) const {
  auto it = files_.find(slot);
  if (it == files_.end() || it->second.filename != filename) return nullptr;
  const auto expire = std::chrono::duration_cast<std::chrono::seconds>(config_.upload.expire_after);
  if (expire.count() > 0 && it->second.created + expire.count() <= now_()) return nullptr;
  return &it->second;
}

void UploadService::cleanup() {
  const std::int64_t now = now_();
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (!it->second.busy && it->second.expires < now) {
      charge(it->second.file.owner, -static_cast<std::int64_t>(it->second.file.size));
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  const auto expire = std::chrono::duration_cast<std::chrono::seconds>(config_.upload.expire_after);
  if (expire.count() > 0) {
    for (auto it = files_.begin(); it != files_.end();) {
      if (it->second.created + expire.count() <= now) {
        store_->remove(it->first);
        charge(it->second.owner, -static_cast<std::int64_t>(it->second.size));
        stored_ -= std::min(stored_, it->second.size);
        it = files_.erase(it);
      } else {
        ++it;
      }
    }
  }
  refresh_gauges();
}

}  // namespace waddle::web
