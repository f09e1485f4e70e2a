// HTTP File Upload (XEP-0363) served by Waddle: slots handed out over XMPP, the PUT that fills
// a slot and the GET that serves the file (their HTTP side is web/web_server.cpp), quotas per
// user and in total, expiry. Slots not yet used live in memory (a restart forgets them); files
// live in a FileStore. No Asio: the web listener drives it on the reactor thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "core/config.h"
#include "im/upload_slots.h"
#include "web/logic/file_store.h"

namespace waddle::metrics {
struct WebMetrics;
}

namespace waddle::web {

class UploadService : public im::UploadSlots {
 public:
  // `now`: Unix seconds. Files already in the store are counted (and expired ones removed).
  UploadService(const core::Config& config, std::unique_ptr<FileStore> store,
                std::function<std::int64_t()> now, metrics::WebMetrics* metrics = nullptr);

  // --- im::UploadSlots ---
  xml::Element request_slot(const xml::Element& iq) override;
  xml::Element disco_form() const override;

  // The path of a slot's URLs: "/upload/<slot>/<encoded filename>".
  static constexpr std::string_view kPathPrefix = "/upload/";

  // A PUT to `slot`/`filename` (decoded from the path): the HTTP status to refuse it with,
  // or 0 and a writer (the slot is then busy until finish_put or abort_put).
  struct Put {
    unsigned status = 0;
    std::string reason;
    std::uint64_t size = 0;  // bytes to read
    std::unique_ptr<FileStore::Writer> writer;
  };
  Put begin_put(const std::string& slot, const std::string& filename,
                std::optional<std::uint64_t> content_length, std::string_view content_type);
  // All `size` bytes were written: the file is kept (false when the disk refused).
  bool finish_put(const std::string& slot, std::unique_ptr<FileStore::Writer> writer);
  // The upload ended early: the slot may be used again until it expires.
  void abort_put(const std::string& slot);

  // The file for a GET of `slot`/`filename`, or null.
  const StoredFile* find(const std::string& slot, const std::string& filename) const;
  std::unique_ptr<FileStore::Reader> open(const std::string& slot) { return store_->open(slot); }

  // Forgets slots past slot_timeout and removes files past expire_after.
  void cleanup();

  std::size_t files() const { return files_.size(); }
  std::uint64_t stored_bytes() const { return stored_; }
  std::uint64_t usage(const std::string& owner) const;

 private:
  struct Pending {
    StoredFile file;
    std::int64_t expires = 0;
    bool busy = false;  // a PUT is being read
  };
  std::string base_url(const std::string& domain) const;
  void charge(const std::string& owner, std::int64_t bytes);
  void refresh_gauges();
  void count_slot(std::string_view result);

  const core::Config& config_;
  std::unique_ptr<FileStore> store_;
  std::function<std::int64_t()> now_;
  metrics::WebMetrics* metrics_;
  std::map<std::string, Pending> pending_;      // by slot
  std::map<std::string, StoredFile> files_;     // by slot
  std::map<std::string, std::uint64_t> usage_;  // owner -> stored + reserved bytes
  std::uint64_t total_ = 0;                     // stored + reserved, everyone
  std::uint64_t stored_ = 0;
};

}  // namespace waddle::web
