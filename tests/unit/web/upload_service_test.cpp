// Slots, uploads, quotas and expiry (web/logic/upload_service) over a real directory.
#include "web/logic/upload_service.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "metrics/metrics.h"
#include "web/logic/upload_rules.h"
#include "xml/parser.h"

namespace waddle::web {
namespace {

namespace fs = std::filesystem;

class UploadServiceTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::temp_directory_path() / ("waddle-upload-" + std::to_string(::getpid()) + "-" +
                                     testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    config_.server.domains = {"example.org"};
    config_.upload.max_file_size = 1000;
    config_.upload.quota_per_user = 1500;
    config_.upload.max_total_size = 2500;
    config_.upload.slot_timeout = std::chrono::seconds(300);
    config_.upload.expire_after = std::chrono::seconds(3600);
    config_.web.port = 5443;
    service_ = make();
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<UploadService> make() {
    return std::make_unique<UploadService>(
        config_, std::make_unique<DiskFileStore>(dir_.string()), [this] { return now_; },
        &metrics_);
  }

  xml::Element ask(const std::string& from, const std::string& attrs) {
    auto iq = xml::parse_element("<iq xmlns='jabber:client' type='get' id='1' from='" + from +
                                 "' to='example.org'><request xmlns='urn:xmpp:http:upload:0' " +
                                 attrs + "/></iq>");
    EXPECT_TRUE(iq);
    return service_->request_slot(*iq);
  }

  // The slot id and encoded name from a result's PUT URL.
  std::pair<std::string, std::string> slot_of(const xml::Element& reply) {
    const xml::Element* slot = reply.child("slot", kUploadNs);
    EXPECT_TRUE(slot) << reply.str();
    if (!slot) return {};
    std::string url(slot->child("put", kUploadNs)->attr("url"));
    EXPECT_EQ(url, slot->child("get", kUploadNs)->attr("url"));
    const std::string prefix = "https://example.org:5443/upload/";
    EXPECT_EQ(url.substr(0, prefix.size()), prefix) << url;
    url = url.substr(prefix.size());
    const auto slash = url.find('/');
    return {url.substr(0, slash), *decode_segment(url.substr(slash + 1))};
  }

  bool upload(const std::string& slot, const std::string& name, const std::string& bytes,
              std::string_view type = "image/png") {
    auto put = service_->begin_put(slot, name, bytes.size(), type);
    EXPECT_EQ(put.status, 0u) << put.reason;
    if (put.status) return false;
    EXPECT_TRUE(put.writer->write(bytes));
    return service_->finish_put(slot, std::move(put.writer));
  }

  std::string condition(const xml::Element& reply) {
    const xml::Element* e = reply.child("error");
    if (!e || !e->first_child()) return "";
    return e->first_child()->name();
  }

  fs::path dir_;
  core::Config config_;
  std::int64_t now_ = 1'000'000;
  metrics::Registry registry_;
  metrics::WebMetrics metrics_{registry_};
  std::unique_ptr<UploadService> service_;
};

TEST_F(UploadServiceTest, SlotThenPutThenGet) {
  auto reply =
      ask("alice@example.org/phone", "filename='my photo.png' size='5' content-type='image/png'");
  EXPECT_EQ(reply.attr("type"), "result");
  EXPECT_EQ(reply.attr("to"), "alice@example.org/phone");
  auto [slot, name] = slot_of(reply);
  EXPECT_EQ(name, "my photo.png");
  EXPECT_EQ(slot.size(), 32u);
  EXPECT_FALSE(service_->find(slot, name));  // nothing until the PUT
  ASSERT_TRUE(upload(slot, name, "12345"));
  const StoredFile* f = service_->find(slot, name);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->owner, "alice@example.org");
  EXPECT_EQ(f->size, 5u);
  EXPECT_EQ(f->content_type, "image/png");
  char buf[16];
  auto reader = service_->open(slot);
  ASSERT_TRUE(reader);
  EXPECT_EQ(std::string(buf, reader->read(1, buf, sizeof buf)), "2345");
  EXPECT_FALSE(service_->find(slot, "other.png"));
  EXPECT_EQ(service_->files(), 1u);
  EXPECT_EQ(metrics_.upload_files.value(), 1);
  EXPECT_EQ(metrics_.upload_stored_bytes.value(), 5);
  // A slot is used once.
  EXPECT_EQ(service_->begin_put(slot, name, 5, "image/png").status, 409u);
}

TEST_F(UploadServiceTest, SlotErrorsOfTheXep) {
  auto big = ask("alice@example.org/a", "filename='a' size='1001'");
  EXPECT_EQ(condition(big), "not-acceptable");
  EXPECT_EQ(big.child("error")
                ->child("file-too-large", kUploadNs)
                ->child_text("max-file-size", kUploadNs),
            "1000");
  EXPECT_EQ(condition(ask("alice@example.org/a", "size='10'")), "bad-request");
  EXPECT_EQ(condition(ask("alice@example.org/a", "filename='a' size='ten'")), "bad-request");
  EXPECT_EQ(condition(ask("mallory@elsewhere.net/a", "filename='a' size='1'")), "not-allowed");
  EXPECT_EQ(metrics_.upload_slots.get({"too_large"}).value(), 1);
  EXPECT_EQ(metrics_.upload_slots.get({"bad_request"}).value(), 2);
  EXPECT_EQ(metrics_.upload_slots.get({"not_allowed"}).value(), 1);
}

TEST_F(UploadServiceTest, RemoteUsersWhenAllowed) {
  config_.upload.allow_remote = true;
  EXPECT_EQ(ask("bob@elsewhere.net/a", "filename='a' size='1'").attr("type"), "result");
}

TEST_F(UploadServiceTest, QuotasCountReservedAndStoredBytes) {
  auto first = ask("alice@example.org/a", "filename='a' size='1000'");
  EXPECT_EQ(first.attr("type"), "result");
  // 1000 reserved: 600 more would pass the user's 1500.
  EXPECT_EQ(condition(ask("alice@example.org/a", "filename='b' size='600'")),
            "resource-constraint");
  EXPECT_EQ(ask("alice@example.org/a", "filename='b' size='500'").attr("type"), "result");
  // Everyone together: 1500 of 2500 taken.
  EXPECT_EQ(ask("bob@example.org/a", "filename='c' size='1000'").attr("type"), "result");
  EXPECT_EQ(condition(ask("carol@example.org/a", "filename='d' size='1'")), "resource-constraint");
  // Unused slots give their bytes back once they expire.
  now_ += 301;
  EXPECT_EQ(ask("carol@example.org/a", "filename='d' size='1000'").attr("type"), "result");
  EXPECT_EQ(service_->usage("alice@example.org"), 0u);
}

TEST_F(UploadServiceTest, PutChecks) {
  auto [slot, name] =
      slot_of(ask("alice@example.org/a", "filename='a.txt' size='4' content-type='text/plain'"));
  EXPECT_EQ(service_->begin_put("0123456789abcdef0123456789abcdef", name, 4, "text/plain").status,
            403u);
  EXPECT_EQ(service_->begin_put(slot, "b.txt", 4, "text/plain").status, 403u);
  EXPECT_EQ(service_->begin_put(slot, name, std::nullopt, "text/plain").status, 411u);
  EXPECT_EQ(service_->begin_put(slot, name, 5, "text/plain").status, 413u);
  EXPECT_EQ(service_->begin_put(slot, name, 3, "text/plain").status, 400u);
  EXPECT_EQ(service_->begin_put(slot, name, 4, "text/html").status, 415u);
  // An aborted upload leaves nothing, and the slot may be tried again.
  {
    auto put = service_->begin_put(slot, name, 4, "Text/Plain; charset=utf-8");
    ASSERT_EQ(put.status, 0u) << put.reason;
    EXPECT_EQ(service_->begin_put(slot, name, 4, "text/plain").status, 409u);  // busy
    put.writer->write("ab");
    service_->abort_put(slot);
  }
  EXPECT_TRUE(fs::is_empty(dir_));
  ASSERT_TRUE(upload(slot, name, "abcd", "text/plain"));
  // Past its time a slot is gone.
  auto [late, late_name] = slot_of(ask("alice@example.org/a", "filename='l' size='1'"));
  now_ += 301;
  EXPECT_EQ(service_->begin_put(late, late_name, 1, "application/octet-stream").status, 403u);
}

TEST_F(UploadServiceTest, FilesExpireAndSurviveRestarts) {
  auto [slot, name] = slot_of(ask("alice@example.org/a", "filename='a' size='3'"));
  ASSERT_TRUE(upload(slot, name, "xyz", "application/octet-stream"));
  // A half-written file from a crash is cleared at start-up.
  std::ofstream(dir_ / "0123.data.part") << "junk";
  service_ = make();
  ASSERT_TRUE(service_->find(slot, name));
  EXPECT_EQ(service_->usage("alice@example.org"), 3u);
  EXPECT_FALSE(fs::exists(dir_ / "0123.data.part"));
  now_ += 3600;
  EXPECT_FALSE(service_->find(slot, name));
  service_->cleanup();
  EXPECT_EQ(service_->files(), 0u);
  EXPECT_EQ(service_->usage("alice@example.org"), 0u);
  EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(UploadServiceTest, DiscoFormNamesTheLimit) {
  auto form = service_->disco_form();
  EXPECT_NE(form.str().find("<value>1000</value>"), std::string::npos) << form.str();
}

}  // namespace
}  // namespace waddle::web
