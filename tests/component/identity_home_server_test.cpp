// Tests for the home server side of urn:waddle:identity (identity/home_server.h) on an
// in-process io_context: vouching for joins to rooms on other servers (the disco question,
// holding the user's stanzas meanwhile, the cached answer) and the <key/> and <verify/> IQs.
#include "identity/home_server.h"

#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include "core/namespaces.h"
#include "net/worker.h"
#include "storage/storage.h"

namespace waddle::identity {
namespace {

namespace asio = boost::asio;
using xml::Element;
using namespace std::chrono_literals;

const std::string kIdentityNs(ns::kIdentity);
const std::string kClientNs(ns::kClient);

// Everything the router sends to other domains, in order.
class CapturedRemote : public router::RemoteDelivery {
 public:
  void send(Element stanza) override { sent.push_back(std::move(stanza)); }
  std::vector<Element> sent;
};

Element join(const std::string& from, const std::string& room) {
  Element p("presence", kClientNs);
  p.set_attr("from", from).set_attr("to", room);
  p.add_child("x", std::string(ns::kMuc));
  return p;
}

Element leave(const std::string& from, const std::string& room) {
  Element p("presence", kClientNs);
  p.set_attr("from", from).set_attr("to", room).set_attr("type", "unavailable");
  return p;
}

Element disco_answer(const Element& question, bool understands_credentials) {
  Element r("iq", kClientNs);
  r.set_attr("type", "result")
      .set_attr("id", question.attr("id"))
      .set_attr("from", question.attr("to"))
      .set_attr("to", question.attr("from"));
  auto& q = r.add_child("query", std::string(ns::kDiscoInfo));
  q.add_child("feature", std::string(ns::kDiscoInfo)).set_attr("var", ns::kMuc);
  if (understands_credentials)
    q.add_child("feature", std::string(ns::kDiscoInfo)).set_attr("var", ns::kIdentity);
  return r;
}

Element identity_get(const std::string& from, Element query) {
  Element iq("iq", kClientNs);
  iq.set_attr("type", "get")
      .set_attr("id", "q1")
      .set_attr("from", from)
      .set_attr("to", "home.test");
  iq.add_child(std::move(query));
  return iq;
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class HomeServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("waddle-home-server-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    storage_ = storage::open_sqlite((dir_ / "waddle.db").string());
    storage::Account alice;
    alice.domain = "home.test";
    alice.username = "alice";
    ASSERT_TRUE(storage_->create_account(alice));
    worker_ = std::make_unique<net::Worker<storage::Storage>>(*storage_);
    router_.set_remote(&remote_);
    home_ = std::make_unique<HomeServer>(config_, router_, *worker_, io_.get_executor(), key_);
  }
  void TearDown() override {
    home_.reset();
    worker_.reset();
    storage_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Runs the reactor until `n` stanzas have left for other domains, or fails at the deadline.
  void run_until_sent(std::size_t n, std::chrono::seconds limit = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (remote_.sent.size() < n && std::chrono::steady_clock::now() < deadline) {
      io_.restart();
      io_.run_for(10ms);
    }
    ASSERT_EQ(remote_.sent.size(), n);
  }

  // The user's join leaves at once with the disco question before it; returns the question.
  Element expect_question() {
    EXPECT_EQ(remote_.sent.size(), 1u);
    const Element question = remote_.sent.at(0);
    EXPECT_EQ(question.attr("to"), "rooms.remote.test");
    EXPECT_EQ(question.attr("from"), "home.test");
    EXPECT_NE(question.child("query", ns::kDiscoInfo), nullptr);
    return question;
  }

  core::Config config_;
  SigningKey key_ = SigningKey::generate();
  asio::io_context io_;
  std::filesystem::path dir_;
  std::unique_ptr<storage::Storage> storage_;
  std::unique_ptr<net::Worker<storage::Storage>> worker_;
  router::Router router_{{"home.test"}};
  CapturedRemote remote_;
  std::unique_ptr<HomeServer> home_;
};

TEST_F(HomeServerTest, JoinWaitsForTheAnswer_LeaveDoesNotOvertakeIt) {
  home_->route_from_user(join("alice@home.test/phone", "room@rooms.remote.test/alice"));
  Element question = expect_question();
  home_->route_from_user(leave("alice@home.test/phone", "room@rooms.remote.test/alice"));
  ASSERT_EQ(remote_.sent.size(), 1u);  // both wait for the answer

  home_->take_answer(disco_answer(question, true));
  ASSERT_EQ(remote_.sent.size(), 3u);
  const Element& joined = remote_.sent[1];
  EXPECT_EQ(joined.attr("type"), "");
  const std::string token = joined.child_text("credential", kIdentityNs);
  auto result = verify(token, key_.public_key(), "home.test", "alice@home.test",
                       "rooms.remote.test", unix_now());
  EXPECT_EQ(result.verdict, Verdict::kValid) << describe(result.verdict);
  EXPECT_EQ(remote_.sent[2].attr("type"), "unavailable");
  EXPECT_EQ(remote_.sent[2].child("credential", kIdentityNs), nullptr);
}

TEST_F(HomeServerTest, ManyJoinsWhileAsking_AllWaitAndLeaveInOrderWithCredentials) {
  // A community room's members joining at once: one question, and every join waits for it.
  constexpr int kJoins = 300;
  for (int i = 0; i < kJoins; ++i)
    home_->route_from_user(join("u" + std::to_string(i) + "@home.test/r",
                                "room@rooms.remote.test/u" + std::to_string(i)));
  Element question = expect_question();
  home_->take_answer(disco_answer(question, true));
  ASSERT_EQ(remote_.sent.size(), 1u + kJoins);
  for (int i = 0; i < kJoins; ++i) {
    const Element& p = remote_.sent[1 + i];
    EXPECT_EQ(p.attr("from"), "u" + std::to_string(i) + "@home.test/r");
    EXPECT_NE(p.child("credential", kIdentityNs), nullptr) << i;
  }
}

TEST_F(HomeServerTest, TooManyWaiting_TheyLeaveFirstInOrderAndTheQuestionStaysOpen) {
  const std::string room = "room@rooms.remote.test/alice";
  for (std::size_t i = 0; i < HomeServer::kMaxHeld; ++i)
    home_->route_from_user(join("alice@home.test/r" + std::to_string(i), room));
  Element question = expect_question();
  // One more: everything that waits leaves (without credentials, in order), then this one.
  home_->route_from_user(leave("alice@home.test/r0", room));
  ASSERT_EQ(remote_.sent.size(), 2 + HomeServer::kMaxHeld);
  for (std::size_t i = 0; i < HomeServer::kMaxHeld; ++i) {
    const Element& p = remote_.sent[1 + i];
    ASSERT_EQ(p.attr("from"), "alice@home.test/r" + std::to_string(i));
    ASSERT_EQ(p.child("credential", kIdentityNs), nullptr);
  }
  EXPECT_EQ(remote_.sent.back().attr("type"), "unavailable");

  // The question is still open: a later join waits for it (no second question) and leaves
  // with a credential once it is answered.
  home_->route_from_user(join("alice@home.test/late", room));
  ASSERT_EQ(remote_.sent.size(), 2 + HomeServer::kMaxHeld);
  home_->take_answer(disco_answer(question, true));
  ASSERT_EQ(remote_.sent.size(), 3 + HomeServer::kMaxHeld);
  EXPECT_EQ(remote_.sent.back().attr("from"), "alice@home.test/late");
  EXPECT_NE(remote_.sent.back().child("credential", kIdentityNs), nullptr);
}

TEST_F(HomeServerTest, ServiceWithoutTheFeature_JoinsWithoutCredentialAndIsNotAskedAgain) {
  home_->route_from_user(join("alice@home.test/phone", "room@rooms.remote.test/alice"));
  home_->take_answer(disco_answer(expect_question(), false));
  ASSERT_EQ(remote_.sent.size(), 2u);
  EXPECT_EQ(remote_.sent[1].child("credential", kIdentityNs), nullptr);

  home_->route_from_user(join("alice@home.test/laptop", "other@rooms.remote.test/alice"));
  ASSERT_EQ(remote_.sent.size(), 3u);  // the cached answer: no second question
  EXPECT_EQ(remote_.sent[2].name(), "presence");
  EXPECT_EQ(remote_.sent[2].child("credential", kIdentityNs), nullptr);
}

TEST_F(HomeServerTest, AnswerFromAnotherDomain_IsIgnored) {
  home_->route_from_user(join("alice@home.test/phone", "room@rooms.remote.test/alice"));
  Element forged = disco_answer(expect_question(), true);
  forged.set_attr("from", "evil.test");
  home_->take_answer(forged);
  EXPECT_EQ(remote_.sent.size(), 1u);  // the join still waits
}

TEST_F(HomeServerTest, NoAnswer_JoinLeavesWithoutCredentialAfterTheTimeout) {
  home_->route_from_user(join("alice@home.test/phone", "room@rooms.remote.test/alice"));
  expect_question();
  // The question times out after 5 s; the helper's own deadline bounds the wait.
  ASSERT_NO_FATAL_FAILURE(run_until_sent(2, 8s));
  EXPECT_EQ(remote_.sent[1].name(), "presence");
  EXPECT_EQ(remote_.sent[1].child("credential", kIdentityNs), nullptr);
}

TEST_F(HomeServerTest, OtherStanzas_AreRoutedAtOnce) {
  Element message("message", kClientNs);
  message.set_attr("from", "alice@home.test/phone").set_attr("to", "bob@remote.test");
  home_->route_from_user(message);
  ASSERT_EQ(remote_.sent.size(), 1u);
  EXPECT_EQ(remote_.sent[0].name(), "message");
}

TEST_F(HomeServerTest, KeyIq_PublishesThePublicKey) {
  home_->handle_iq(identity_get("rooms.remote.test", Element("key", kIdentityNs)));
  ASSERT_EQ(remote_.sent.size(), 1u);
  const Element* key = remote_.sent[0].child("key", kIdentityNs);
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(key->attr("id"), key_.key_id());
  EXPECT_EQ(key->text(), key_.public_key_b64());
}

TEST_F(HomeServerTest, VerifyIq_ConfirmsACredentialOfAnExistingAccount) {
  Claims claims;
  claims.issuer = "home.test";
  claims.subject = "alice@home.test";
  claims.issued_at = unix_now();
  claims.expires_at = claims.issued_at + 3600;
  Element query("verify", kIdentityNs);
  query.add_child("jid", kIdentityNs).add_text("alice@home.test");
  query.add_child("credential", kIdentityNs).add_text(issue(key_, claims));
  home_->handle_iq(identity_get("rooms.remote.test", std::move(query)));
  ASSERT_NO_FATAL_FAILURE(run_until_sent(1));
  ASSERT_EQ(remote_.sent.size(), 1u);
  EXPECT_EQ(remote_.sent[0].attr("type"), "result");
  const Element* id = remote_.sent[0].child("identity", kIdentityNs);
  ASSERT_NE(id, nullptr);
  EXPECT_EQ(id->attr("jid"), "alice@home.test");
}

TEST_F(HomeServerTest, VerifyIq_RefusesACredentialForAnUnknownAccount) {
  Claims claims;
  claims.issuer = "home.test";
  claims.subject = "mallory@home.test";
  claims.issued_at = unix_now();
  claims.expires_at = claims.issued_at + 3600;
  Element query("verify", kIdentityNs);
  query.add_child("jid", kIdentityNs).add_text("mallory@home.test");
  query.add_child("credential", kIdentityNs).add_text(issue(key_, claims));
  home_->handle_iq(identity_get("rooms.remote.test", std::move(query)));
  ASSERT_NO_FATAL_FAILURE(run_until_sent(1));
  ASSERT_EQ(remote_.sent.size(), 1u);
  EXPECT_EQ(remote_.sent[0].attr("type"), "error");
  EXPECT_NE(remote_.sent[0].str().find("not-authorized"), std::string::npos);
}

}  // namespace
}  // namespace waddle::identity
