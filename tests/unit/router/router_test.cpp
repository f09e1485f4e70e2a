// Tests for the router: local vs remote decisions, bounces (RFC 6120 §8.3, never answering an
// error or an IQ result, §8.3.1), jid-malformed for bad 'to', the session registry and stats.
#include "router/router.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "core/jid.h"
#include "xml/element.h"
#include "xml/parser.h"
#include "xml/stanza.h"

namespace waddle::router {
namespace {

using core::Jid;
using core::StanzaError;
using core::StreamError;

Jid parse_jid(std::string_view s) {
  auto j = Jid::parse(s);
  EXPECT_TRUE(j) << s;
  return j ? *j : Jid();
}

xml::Element parse(std::string_view s) {
  auto e = xml::parse_element(s);
  EXPECT_TRUE(e) << s;
  return e ? std::move(*e) : xml::Element();
}

// A bound client session that records what the server does to it.
class FakeSession : public LocalSession {
 public:
  explicit FakeSession(std::string_view full) : jid_(parse_jid(full)) {}
  const Jid& jid() const override { return jid_; }
  void deliver(const xml::Element& stanza) override { delivered.push_back(stanza); }
  void deliver_shared(const xml::Element& stanza, const xml::SharedStanza& shared,
                      std::string_view to) override {
    tails.push_back(shared.tail.get());
    wire.push_back(shared.head(to) + *shared.tail);
    LocalSession::deliver_shared(stanza, shared, to);  // also recorded as delivered
  }
  void close_with(StreamError error, std::string_view text) override {
    closes.emplace_back(error, std::string(text));
  }

  std::vector<xml::Element> delivered;
  std::vector<const std::string*> tails;  // the shared buffers of fan-outs
  std::vector<std::string> wire;          // what a stream writes for them
  std::vector<std::pair<StreamError, std::string>> closes;

 private:
  Jid jid_;
};

// Records local stanzas and, like the IM service, hands those for a bound full JID to its
// session, so a test can see a bounce arrive at the sender's session.
class FakeLocalHandler : public LocalHandler {
 public:
  explicit FakeLocalHandler(const Router& router) : router_(router) {}
  void to_local(xml::Element stanza) override {
    if (auto to = Jid::parse(stanza.attr("to"))) {
      if (LocalSession* s = router_.find(*to)) s->deliver(stanza);
    }
    received.push_back(std::move(stanza));
  }

  std::vector<xml::Element> received;

 private:
  const Router& router_;
};

class FakeRemoteDelivery : public RemoteDelivery {
 public:
  void send(xml::Element stanza) override { sent.push_back(std::move(stanza)); }
  void send_shared(xml::Element stanza, const xml::SharedStanza& shared) override {
    tails.push_back(shared.tail);
    wire.push_back(shared.head(stanza.attr("to")) + *shared.tail);
    send(std::move(stanza));
  }
  std::vector<xml::Element> sent;
  std::vector<std::shared_ptr<const std::string>> tails;  // of send_shared, in order
  std::vector<std::string> wire;                          // what send_shared would write
};

// The condition element of a stanza error and the error's type, for assertions.
struct ErrorInfo {
  std::string type;
  std::string condition;
};

ErrorInfo error_of(const xml::Element& stanza) {
  ErrorInfo info;
  const xml::Element* err = stanza.child("error");
  if (!err) return info;
  info.type = std::string(err->attr("type"));
  for (const auto* c : err->children())
    if (c->ns() == ns::kStanzas && c->name() != "text") info.condition = c->name();
  return info;
}

std::set<LocalSession*> as_set(const std::vector<LocalSession*>& v) {
  return {v.begin(), v.end()};
}

class RouterTest : public ::testing::Test {
 protected:
  RouterTest() : router_({"example.com", "conference.example.com", "example.org"}) {}

  void SetUp() override { router_.set_local_handler(&local_); }

  // Every test ends with an empty registry: whatever was bound is removed, and the gauge
  // must be back to zero.
  void TearDown() override {
    for (auto& s : owned_) router_.remove(s.get());
    EXPECT_EQ(router_.session_count(), 0u);
    EXPECT_TRUE(router_.all().empty());
  }

  FakeSession* make(std::string_view full) {
    owned_.push_back(std::make_unique<FakeSession>(full));
    return owned_.back().get();
  }

  FakeSession* bind(std::string_view full) {
    FakeSession* s = make(full);
    EXPECT_EQ(router_.add(s), nullptr) << full;
    return s;
  }

  // Several accounts with several resources, plus look-alikes on other domains: the same
  // localpart and resource on another local domain, on a subdomain, another user with the
  // same resource.
  void bind_population() {
    juliet_balcony_ = bind("juliet@example.com/balcony");
    juliet_garden_ = bind("juliet@example.com/garden");
    juliet_kitchen_ = bind("juliet@example.com/kitchen");
    romeo_orchard_ = bind("romeo@example.com/orchard");
    romeo_street_ = bind("romeo@example.com/street");
    nurse_balcony_ = bind("nurse@example.com/balcony");
    other_domain_juliet_ = bind("juliet@example.org/balcony");
    subdomain_juliet_ = bind("juliet@conference.example.com/balcony");
  }

  std::vector<FakeSession*> population() const {
    return {juliet_balcony_, juliet_garden_,       juliet_kitchen_,   romeo_orchard_,
            romeo_street_,   other_domain_juliet_, subdomain_juliet_, nurse_balcony_};
  }

  Router router_;
  FakeLocalHandler local_{router_};
  FakeRemoteDelivery remote_;
  std::vector<std::unique_ptr<FakeSession>> owned_;

  FakeSession* juliet_balcony_ = nullptr;
  FakeSession* juliet_garden_ = nullptr;
  FakeSession* juliet_kitchen_ = nullptr;
  FakeSession* romeo_orchard_ = nullptr;
  FakeSession* romeo_street_ = nullptr;
  FakeSession* nurse_balcony_ = nullptr;
  FakeSession* other_domain_juliet_ = nullptr;
  FakeSession* subdomain_juliet_ = nullptr;
};

// --- is_local ---------------------------------------------------------------------------

TEST_F(RouterTest, IsLocal_ConfiguredDomains_True) {
  EXPECT_TRUE(router_.is_local("example.com"));
  EXPECT_TRUE(router_.is_local("conference.example.com"));
  EXPECT_TRUE(router_.is_local("example.org"));
}

TEST_F(RouterTest, IsLocal_OtherAndLookalikeDomains_False) {
  for (const char* d : {"example.net", "other.example.com", "com", "example.co", "example.com.evil",
                        "evilexample.com", "xample.com", ""}) {
    EXPECT_FALSE(router_.is_local(d)) << d;
  }
}

// --- route(): local -----------------------------------------------------------------------

TEST_F(RouterTest, Route_ToLocalDomain_GoesToLocalHandlerNeverRemote) {
  bind_population();
  router_.set_remote(&remote_);
  router_.route(
      parse("<message xmlns='jabber:client' from='romeo@example.com/orchard' "
            "to='juliet@example.com/balcony' id='m1' type='chat'><body>hi</body></message>"));

  ASSERT_EQ(local_.received.size(), 1u);
  EXPECT_EQ(local_.received[0].attr("to"), "juliet@example.com/balcony");
  EXPECT_EQ(local_.received[0].attr("id"), "m1");
  EXPECT_EQ(local_.received[0].child_text("body"), "hi");
  EXPECT_TRUE(remote_.sent.empty());
  // Only the addressed session got it.
  EXPECT_EQ(juliet_balcony_->delivered.size(), 1u);
  for (FakeSession* s : population())
    if (s != juliet_balcony_) {
      EXPECT_TRUE(s->delivered.empty()) << s->jid().str();
    }
  EXPECT_EQ(router_.stats().routed_local, 1u);
  EXPECT_EQ(router_.stats().routed_remote, 0u);
  EXPECT_EQ(router_.stats().bounced, 0u);
}

TEST_F(RouterTest, Route_ToEachLocalDomainForm_GoesLocal) {
  router_.set_remote(&remote_);
  const std::vector<std::string> targets = {"example.com",
                                            "juliet@example.com",
                                            "juliet@example.com/balcony",
                                            "conference.example.com",
                                            "room@conference.example.com/nick",
                                            "example.org/r"};
  for (const auto& to : targets) {
    xml::Element msg("message", "jabber:client");
    msg.set_attr("from", "romeo@example.com/orchard");
    msg.set_attr("to", to);
    router_.route(std::move(msg));
  }
  ASSERT_EQ(local_.received.size(), targets.size());
  for (std::size_t i = 0; i < targets.size(); ++i)
    EXPECT_EQ(local_.received[i].attr("to"), targets[i]);
  EXPECT_TRUE(remote_.sent.empty());
  EXPECT_EQ(router_.stats().routed_local, targets.size());
}

TEST_F(RouterTest, Route_ToLocalDomainInOtherCase_GoesLocal) {
  router_.set_remote(&remote_);
  router_.route(
      parse("<message xmlns='jabber:client' from='romeo@example.com/orchard' "
            "to='juliet@EXAMPLE.Com./balcony'/>"));
  EXPECT_EQ(local_.received.size(), 1u);
  EXPECT_TRUE(remote_.sent.empty());
}

TEST(RouterIdnTest, Route_ToLocalIdnDomainAsULabel_GoesLocal) {
  Router router({"xn--mnchen-3ya.de"});
  FakeLocalHandler local(router);
  FakeRemoteDelivery remote;
  router.set_local_handler(&local);
  router.set_remote(&remote);
  xml::Element msg("message", "jabber:client");
  msg.set_attr("from", "anna@xn--mnchen-3ya.de/r");
  msg.set_attr("to", "bob@m\xC3\xBCnchen.de");
  router.route(std::move(msg));
  EXPECT_EQ(local.received.size(), 1u);
  EXPECT_TRUE(remote.sent.empty());
}

TEST_F(RouterTest, Route_WithoutTo_GoesToLocalHandlerNeverRemote) {
  router_.set_remote(&remote_);
  router_.route(
      parse("<iq xmlns='jabber:client' from='juliet@example.com/balcony' id='r1' type='get'>"
            "<query xmlns='jabber:iq:roster'/></iq>"));
  ASSERT_EQ(local_.received.size(), 1u);
  EXPECT_EQ(local_.received[0].attr("id"), "r1");
  EXPECT_NE(local_.received[0].child("query", "jabber:iq:roster"), nullptr);
  EXPECT_TRUE(remote_.sent.empty());
  EXPECT_EQ(router_.stats().routed_local, 1u);
  EXPECT_EQ(router_.stats().routed_remote, 0u);
}

TEST_F(RouterTest, Route_ToLocalDomainWithoutLocalHandler_NeverFallsBackToRemote) {
  router_.set_local_handler(nullptr);
  router_.set_remote(&remote_);
  router_.route(
      parse("<message xmlns='jabber:client' from='romeo@example.com/orchard' "
            "to='juliet@example.com/balcony'/>"));
  EXPECT_TRUE(remote_.sent.empty());
  EXPECT_TRUE(local_.received.empty());
}

// --- route(): remote ----------------------------------------------------------------------

TEST_F(RouterTest, Route_ToRemoteDomain_GoesToRemoteDeliveryNeverLocal) {
  bind_population();
  router_.set_remote(&remote_);
  router_.route(
      parse("<message xmlns='jabber:client' from='juliet@example.com/balcony' "
            "to='mercutio@example.net/r' id='m2'><body>to verona</body></message>"));

  ASSERT_EQ(remote_.sent.size(), 1u);
  EXPECT_EQ(remote_.sent[0].attr("to"), "mercutio@example.net/r");
  EXPECT_EQ(remote_.sent[0].attr("from"), "juliet@example.com/balcony");
  EXPECT_EQ(remote_.sent[0].child_text("body"), "to verona");
  EXPECT_TRUE(local_.received.empty());
  for (FakeSession* s : population()) EXPECT_TRUE(s->delivered.empty()) << s->jid().str();
  EXPECT_EQ(router_.stats().routed_remote, 1u);
  EXPECT_EQ(router_.stats().routed_local, 0u);
  EXPECT_EQ(router_.stats().bounced, 0u);
}

TEST_F(RouterTest, Route_ToLookalikeOfLocalDomain_GoesRemote) {
  router_.set_remote(&remote_);
  const std::vector<std::string> targets = {"juliet@example.com.evil.net", "juliet@evilexample.com",
                                            "juliet@other.example.com", "com"};
  for (const auto& to : targets) {
    xml::Element msg("message", "jabber:client");
    msg.set_attr("from", "romeo@example.com/orchard");
    msg.set_attr("to", to);
    router_.route(std::move(msg));
  }
  ASSERT_EQ(remote_.sent.size(), targets.size());
  for (std::size_t i = 0; i < targets.size(); ++i)
    EXPECT_EQ(remote_.sent[i].attr("to"), targets[i]);
  EXPECT_TRUE(local_.received.empty());
}

TEST_F(RouterTest, Route_ToRemoteWithoutRemoteDelivery_BouncesRemoteServerNotFoundToSender) {
  bind_population();
  router_.route(
      parse("<message xmlns='jabber:client' from='juliet@example.com/balcony' "
            "to='mercutio@example.net' id='m3' type='chat'><body>anyone?</body></message>"));

  // The bounce is itself routed: it reaches the sender through the local handler.
  ASSERT_EQ(local_.received.size(), 1u);
  const xml::Element& reply = local_.received[0];
  EXPECT_EQ(reply.name(), "message");
  EXPECT_EQ(reply.attr("type"), "error");
  EXPECT_EQ(reply.attr("to"), "juliet@example.com/balcony");
  EXPECT_EQ(reply.attr("from"), "mercutio@example.net");
  EXPECT_EQ(reply.attr("id"), "m3");
  auto err = error_of(reply);
  EXPECT_EQ(err.condition, "remote-server-not-found");
  EXPECT_EQ(err.type, "cancel");
  EXPECT_EQ(xml::stanza_error_condition(reply), StanzaError::kRemoteServerNotFound);

  // Only the sending resource sees it; other resources, users and domains do not.
  ASSERT_EQ(juliet_balcony_->delivered.size(), 1u);
  EXPECT_EQ(juliet_balcony_->delivered[0].attr("type"), "error");
  for (FakeSession* s : population())
    if (s != juliet_balcony_) {
      EXPECT_TRUE(s->delivered.empty()) << s->jid().str();
    }
  for (FakeSession* s : population()) EXPECT_TRUE(s->closes.empty()) << s->jid().str();

  EXPECT_EQ(router_.stats().bounced, 1u);
  EXPECT_EQ(router_.stats().routed_local, 1u);
}

TEST_F(RouterTest, Route_IqGetToRemoteWithoutRemoteDelivery_BounceKeepsIdAndPayload) {
  router_.route(
      parse("<iq xmlns='jabber:client' from='juliet@example.com/balcony' to='example.net' id='v1' "
            "type='get'><query xmlns='jabber:iq:version'/></iq>"));
  ASSERT_EQ(local_.received.size(), 1u);
  const xml::Element& reply = local_.received[0];
  EXPECT_EQ(reply.name(), "iq");
  EXPECT_EQ(reply.attr("type"), "error");
  EXPECT_EQ(reply.attr("id"), "v1");
  EXPECT_EQ(reply.attr("to"), "juliet@example.com/balcony");
  EXPECT_NE(reply.child("query", "jabber:iq:version"), nullptr);
  EXPECT_EQ(error_of(reply).condition, "remote-server-not-found");
  EXPECT_EQ(error_of(reply).type, "cancel");
}

TEST_F(RouterTest, Route_ErrorStanzaToRemoteWithoutRemoteDelivery_NeverBounced) {
  bind_population();
  router_.route(parse(
      "<message xmlns='jabber:client' from='juliet@example.com/balcony' to='mercutio@example.net' "
      "type='error'><error type='cancel'><item-not-found "
      "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"));
  EXPECT_TRUE(local_.received.empty());
  for (FakeSession* s : population()) EXPECT_TRUE(s->delivered.empty()) << s->jid().str();
  EXPECT_EQ(router_.stats().bounced, 0u);
}

TEST_F(RouterTest, Route_IqResultOrErrorToRemoteWithoutRemoteDelivery_NeverBounced) {
  router_.route(
      parse("<iq xmlns='jabber:client' from='juliet@example.com/balcony' to='example.net' id='p1' "
            "type='result'/>"));
  router_.route(
      parse("<iq xmlns='jabber:client' from='juliet@example.com/balcony' to='example.net' id='p2' "
            "type='error'/>"));
  router_.route(
      parse("<presence xmlns='jabber:client' from='juliet@example.com/balcony' to='example.net' "
            "type='error'/>"));
  EXPECT_TRUE(local_.received.empty());
  EXPECT_EQ(router_.stats().bounced, 0u);
}

TEST_F(RouterTest, Route_BounceToRemoteSenderWithoutRemoteDelivery_StopsAfterOneBounce) {
  // The sender is remote too: the bounce itself is unroutable and must not be bounced again.
  router_.route(
      parse("<message xmlns='jabber:server' from='tybalt@example.net/r' to='paris@example.edu' "
            "id='x'/>"));
  EXPECT_EQ(router_.stats().bounced, 1u);
  EXPECT_TRUE(local_.received.empty());
}

TEST_F(RouterTest, Route_ToRemoteWithoutFromOrRemoteDelivery_NotBounced) {
  router_.route(parse("<message xmlns='jabber:client' to='mercutio@example.net'/>"));
  EXPECT_TRUE(local_.received.empty());
  EXPECT_EQ(router_.stats().bounced, 0u);
}

// --- route(): malformed 'to' -------------------------------------------------------------

TEST_F(RouterTest, Route_MalformedTo_AnsweredWithJidMalformed) {
  bind_population();
  router_.set_remote(&remote_);
  const std::vector<std::string> bad = {"@example.com",        "a@b@c", "example.com/", "juliet@",
                                        "juliet@example.com/", "/r"};
  for (const auto& to : bad) {
    xml::Element msg("message", "jabber:client");
    msg.set_attr("from", "juliet@example.com/garden");
    msg.set_attr("to", to);
    msg.set_attr("id", "bad");
    router_.route(std::move(msg));
  }
  EXPECT_TRUE(remote_.sent.empty());
  ASSERT_EQ(local_.received.size(), bad.size());
  for (std::size_t i = 0; i < bad.size(); ++i) {
    const xml::Element& reply = local_.received[i];
    EXPECT_EQ(reply.attr("type"), "error") << bad[i];
    EXPECT_EQ(reply.attr("to"), "juliet@example.com/garden") << bad[i];
    EXPECT_EQ(reply.attr("id"), "bad") << bad[i];
    EXPECT_EQ(error_of(reply).condition, "jid-malformed") << bad[i];
    EXPECT_EQ(error_of(reply).type, "modify") << bad[i];
  }
  EXPECT_EQ(juliet_garden_->delivered.size(), bad.size());
  for (FakeSession* s : population())
    if (s != juliet_garden_) {
      EXPECT_TRUE(s->delivered.empty()) << s->jid().str();
    }
  EXPECT_EQ(router_.stats().bounced, bad.size());
}

TEST_F(RouterTest, Route_MalformedToOnErrorOrResult_NotAnswered) {
  router_.set_remote(&remote_);
  router_.route(
      parse("<message xmlns='jabber:client' from='juliet@example.com/garden' to='a@b@c' "
            "type='error'/>"));
  router_.route(
      parse("<iq xmlns='jabber:client' from='juliet@example.com/garden' to='a@b@c' id='1' "
            "type='result'/>"));
  EXPECT_TRUE(local_.received.empty());
  EXPECT_TRUE(remote_.sent.empty());
  EXPECT_EQ(router_.stats().bounced, 0u);
}

// --- bounce() -----------------------------------------------------------------------------

TEST_F(RouterTest, Bounce_WithText_ReachesSenderWithConditionAndText) {
  bind_population();
  router_.bounce(parse("<message xmlns='jabber:client' from='romeo@example.com/street' "
                       "to='juliet@example.com' id='b1'/>"),
                 StanzaError::kServiceUnavailable, "not now");
  ASSERT_EQ(romeo_street_->delivered.size(), 1u);
  const xml::Element& reply = romeo_street_->delivered[0];
  EXPECT_EQ(error_of(reply).condition, "service-unavailable");
  const xml::Element* err = reply.child("error");
  ASSERT_NE(err, nullptr);
  EXPECT_EQ(err->child_text("text", ns::kStanzas), "not now");
  EXPECT_TRUE(romeo_orchard_->delivered.empty());
  EXPECT_EQ(router_.stats().bounced, 1u);
}

// --- session registry ---------------------------------------------------------------------

TEST_F(RouterTest, Find_EachBoundFullJid_ReturnsExactlyThatSession) {
  bind_population();
  EXPECT_EQ(router_.session_count(), population().size());
  for (FakeSession* s : population()) EXPECT_EQ(router_.find(s->jid()), s) << s->jid().str();
}

TEST_F(RouterTest, Find_UnboundBareOrOtherDomainJid_ReturnsNull) {
  bind_population();
  for (const char* j :
       {"juliet@example.com", "juliet@example.com/attic", "tybalt@example.com/balcony",
        "juliet@example.net/balcony", "example.com/balcony", "juliet@example.com/Balcony"}) {
    EXPECT_EQ(router_.find(parse_jid(j)), nullptr) << j;
  }
}

TEST_F(RouterTest, Find_JidPreparedFromOtherCase_ReturnsSession) {
  bind_population();
  EXPECT_EQ(router_.find(parse_jid("JULIET@Example.COM/balcony")), juliet_balcony_);
}

TEST_F(RouterTest, SessionsOf_Account_ReturnsOnlyThatAccountsSessions) {
  bind_population();
  const std::set<LocalSession*> juliet = {juliet_balcony_, juliet_garden_, juliet_kitchen_};
  EXPECT_EQ(router_.sessions_of(parse_jid("juliet@example.com")).size(), 3u);
  EXPECT_EQ(as_set(router_.sessions_of(parse_jid("juliet@example.com"))), juliet);
  // A full JID names the same account.
  EXPECT_EQ(as_set(router_.sessions_of(parse_jid("juliet@example.com/anything"))), juliet);

  const std::set<LocalSession*> romeo = {romeo_orchard_, romeo_street_};
  EXPECT_EQ(as_set(router_.sessions_of(parse_jid("romeo@example.com"))), romeo);
  EXPECT_EQ(as_set(router_.sessions_of(parse_jid("juliet@example.org"))),
            std::set<LocalSession*>{other_domain_juliet_});
  EXPECT_EQ(as_set(router_.sessions_of(parse_jid("juliet@conference.example.com"))),
            std::set<LocalSession*>{subdomain_juliet_});
}

TEST_F(RouterTest, SessionsOf_UnknownAccountOrDomain_Empty) {
  bind_population();
  EXPECT_TRUE(router_.sessions_of(parse_jid("tybalt@example.com")).empty());
  EXPECT_TRUE(router_.sessions_of(parse_jid("juliet@example.net")).empty());
  EXPECT_TRUE(router_.sessions_of(parse_jid("example.com")).empty());
}

TEST_F(RouterTest, SessionsOf_SeveralResources_InResourceOrder) {
  bind_population();
  FakeSession* zeta = bind("benvolio@example.com/zeta");
  FakeSession* alpha = bind("benvolio@example.com/alpha");
  FakeSession* mid = bind("benvolio@example.com/mid");
  EXPECT_EQ(router_.sessions_of(parse_jid("benvolio@example.com")),
            (std::vector<LocalSession*>{alpha, mid, zeta}));
}

TEST_F(RouterTest, All_Population_ReturnsEverySessionOnce) {
  bind_population();
  auto all = router_.all();
  EXPECT_EQ(all.size(), population().size());
  EXPECT_EQ(all.size(), router_.session_count());
  const auto pop = population();
  const std::set<LocalSession*> expected(pop.begin(), pop.end());
  EXPECT_EQ(as_set(all), expected);
}

TEST_F(RouterTest, SessionCount_EmptyRouter_Zero) {
  EXPECT_EQ(router_.session_count(), 0u);
  EXPECT_TRUE(router_.all().empty());
  EXPECT_EQ(router_.find(parse_jid("juliet@example.com/balcony")), nullptr);
}

TEST_F(RouterTest, Add_ResourceConflict_ReturnsDisplacedAndFindsNew) {
  bind_population();
  FakeSession* replacement = make("juliet@example.com/balcony");
  EXPECT_EQ(router_.add(replacement), juliet_balcony_);

  EXPECT_EQ(router_.find(parse_jid("juliet@example.com/balcony")), replacement);
  EXPECT_EQ(router_.session_count(), population().size());
  EXPECT_EQ(as_set(router_.sessions_of(parse_jid("juliet@example.com"))),
            (std::set<LocalSession*>{replacement, juliet_garden_, juliet_kitchen_}));
  auto all = as_set(router_.all());
  EXPECT_EQ(all.count(juliet_balcony_), 0u);
  EXPECT_EQ(all.count(replacement), 1u);
  // The same resource of other users and domains is untouched.
  EXPECT_EQ(router_.find(parse_jid("nurse@example.com/balcony")), nurse_balcony_);
  EXPECT_EQ(router_.find(parse_jid("juliet@example.org/balcony")), other_domain_juliet_);
  EXPECT_EQ(router_.find(parse_jid("juliet@conference.example.com/balcony")), subdomain_juliet_);
  // Closing the displaced session is the caller's job.
  EXPECT_TRUE(juliet_balcony_->closes.empty());
  EXPECT_TRUE(replacement->closes.empty());
}

TEST_F(RouterTest, Remove_DisplacedSession_KeepsNewOne) {
  bind_population();
  FakeSession* replacement = make("juliet@example.com/balcony");
  ASSERT_EQ(router_.add(replacement), juliet_balcony_);
  router_.remove(juliet_balcony_);  // the old stream finishes closing after the takeover
  EXPECT_EQ(router_.find(parse_jid("juliet@example.com/balcony")), replacement);
  EXPECT_EQ(router_.session_count(), population().size());
  EXPECT_EQ(router_.sessions_of(parse_jid("juliet@example.com")).size(), 3u);
}

TEST_F(RouterTest, Remove_UnknownOrAlreadyRemovedSession_Harmless) {
  bind_population();
  FakeSession* stranger = make("tybalt@example.com/street");
  router_.remove(stranger);
  FakeSession* never_bound_twin = make("romeo@example.com/orchard");  // same JID, other object
  router_.remove(never_bound_twin);
  router_.remove(juliet_garden_);
  router_.remove(juliet_garden_);

  EXPECT_EQ(router_.session_count(), population().size() - 1);
  EXPECT_EQ(router_.find(parse_jid("romeo@example.com/orchard")), romeo_orchard_);
  EXPECT_EQ(as_set(router_.sessions_of(parse_jid("juliet@example.com"))),
            (std::set<LocalSession*>{juliet_balcony_, juliet_kitchen_}));
}

TEST_F(RouterTest, Remove_OneResource_KeepsOtherResourcesAndAccounts) {
  bind_population();
  router_.remove(juliet_kitchen_);
  EXPECT_EQ(router_.find(parse_jid("juliet@example.com/kitchen")), nullptr);
  EXPECT_EQ(router_.session_count(), population().size() - 1);
  for (FakeSession* s : population())
    if (s != juliet_kitchen_) {
      EXPECT_EQ(router_.find(s->jid()), s) << s->jid().str();
    }
  EXPECT_EQ(as_set(router_.all()).count(juliet_kitchen_), 0u);
}

TEST_F(RouterTest, Remove_EverySession_CountsReturnToZero) {
  bind_population();
  for (FakeSession* s : population()) router_.remove(s);
  EXPECT_EQ(router_.session_count(), 0u);
  EXPECT_TRUE(router_.all().empty());
  EXPECT_TRUE(router_.sessions_of(parse_jid("juliet@example.com")).empty());
  EXPECT_TRUE(router_.sessions_of(parse_jid("romeo@example.com")).empty());
  for (FakeSession* s : population()) EXPECT_EQ(router_.find(s->jid()), nullptr);
}

TEST_F(RouterTest, Add_AfterLastResourceRemoved_AccountRebinds) {
  bind_population();
  router_.remove(romeo_orchard_);
  router_.remove(romeo_street_);
  EXPECT_TRUE(router_.sessions_of(parse_jid("romeo@example.com")).empty());
  FakeSession* again = bind("romeo@example.com/orchard");
  EXPECT_EQ(router_.find(parse_jid("romeo@example.com/orchard")), again);
  EXPECT_EQ(router_.sessions_of(parse_jid("romeo@example.com")),
            (std::vector<LocalSession*>{again}));
  EXPECT_EQ(router_.session_count(), population().size() - 1);
}

// --- stats ---------------------------------------------------------------------------------

TEST_F(RouterTest, Stats_MixedTraffic_CountedByName) {
  router_.set_remote(&remote_);
  auto send = [&](std::string_view to) {
    xml::Element msg("message", "jabber:client");
    msg.set_attr("from", "juliet@example.com/balcony");
    if (!to.empty()) msg.set_attr("to", to);
    router_.route(std::move(msg));
  };
  send("romeo@example.com");
  send("");
  send("room@conference.example.com");
  send("a@example.net");
  send("b@example.edu");
  send("a@b@c");  // jid-malformed: one bounce, routed back locally
  EXPECT_EQ(router_.stats().routed_local, 4u);
  EXPECT_EQ(router_.stats().bounced, 1u);
  EXPECT_EQ(remote_.sent.size(), 2u);
  EXPECT_EQ(local_.received.size(), 4u);
}

TEST_F(RouterTest, Stats_FreshRouter_AllZero) {
  EXPECT_EQ(router_.stats().routed_local, 0u);
  EXPECT_EQ(router_.stats().routed_remote, 0u);
  EXPECT_EQ(router_.stats().bounced, 0u);
}

// --- components (room services) -------------------------------------------------------------

TEST(RouterComponentTest, ComponentDomain_IsLocalButNotAUserDomain_AndGetsItsStanzas) {
  Router router({"example.com"});
  FakeLocalHandler local(router);
  FakeLocalHandler rooms(router);
  FakeRemoteDelivery remote;
  router.set_local_handler(&local);
  router.set_remote(&remote);
  router.add_component("conference.example.com", &rooms);

  EXPECT_TRUE(router.is_local("conference.example.com"));
  EXPECT_FALSE(router.is_user_domain("conference.example.com"));
  EXPECT_TRUE(router.is_user_domain("example.com"));
  EXPECT_FALSE(router.is_local("other.example.com"));
  EXPECT_EQ(router.hosted_domains(),
            (std::vector<std::string>{"example.com", "conference.example.com"}));

  for (const char* to : {"lobby@conference.example.com/nick", "lobby@conference.example.com",
                         "conference.example.com"}) {
    router.route(parse(std::string("<message xmlns='jabber:client' from='a@example.com/r' to='") +
                       to + "' type='groupchat'><body>x</body></message>"));
  }
  router.route(
      parse("<message xmlns='jabber:client' from='lobby@conference.example.com/n' "
            "to='a@example.com/r' type='groupchat'><body>y</body></message>"));
  EXPECT_EQ(rooms.received.size(), 3u);
  ASSERT_EQ(local.received.size(), 1u);
  EXPECT_EQ(local.received[0].child_text("body"), "y");
  EXPECT_TRUE(remote.sent.empty());
}

// --- fan_out() -----------------------------------------------------------------------------

// A room's message to many recipients: local sessions share one serialisation (the same
// buffer), each written with its own 'to'; a remote recipient and a resource that is gone get
// a copy through route(); nobody else gets anything.
TEST_F(RouterTest, FanOut_LocalSessionsShareOneBufferOthersAreRouted) {
  bind_population();
  router_.set_remote(&remote_);
  const auto stanza = parse(
      "<message xmlns='jabber:client' from='room@conference.example.net/nick' type='groupchat' "
      "id='g1'><body>to &lt;all&gt;</body></message>");
  router_.fan_out(stanza, {"juliet@example.com/balcony", "juliet@example.com/garden",
                           "romeo@example.com/orchard", "juliet@example.com/gone",
                           "benvolio@example.net/street"});
  for (FakeSession* s : {juliet_balcony_, juliet_garden_, romeo_orchard_}) {
    ASSERT_EQ(s->tails.size(), 1u) << s->jid().str();
    EXPECT_EQ(s->tails[0], juliet_balcony_->tails[0]) << "serialised once for all";
    auto written = xml::parse_element(s->wire[0], ns::kClient);
    ASSERT_TRUE(written) << s->wire[0];
    EXPECT_EQ(written->attr("to"), s->jid().str());
    EXPECT_EQ(written->attr("from"), "room@conference.example.net/nick");
    EXPECT_EQ(written->attr("id"), "g1");
    EXPECT_EQ(written->child_text("body", ns::kClient), "to <all>");
    ASSERT_EQ(s->delivered.size(), 1u);
  }
  for (FakeSession* s :
       {juliet_kitchen_, romeo_street_, nurse_balcony_, other_domain_juliet_, subdomain_juliet_})
    EXPECT_TRUE(s->delivered.empty()) << s->jid().str();
  ASSERT_EQ(local_.received.size(), 1u);  // the resource that is gone: the IM rules decide
  EXPECT_EQ(local_.received[0].attr("to"), "juliet@example.com/gone");
  ASSERT_EQ(remote_.sent.size(), 1u);
  EXPECT_EQ(remote_.sent[0].attr("to"), "benvolio@example.net/street");
  EXPECT_EQ(remote_.sent[0].child_text("body"), "to <all>");
  // The link to the other server is handed the same serialisation as the local sessions.
  ASSERT_EQ(remote_.tails.size(), 1u);
  EXPECT_EQ(remote_.tails[0].get(), juliet_balcony_->tails[0]);
}

// Recipients on other servers (a PEP notification to remote contacts): one serialisation for
// all of them, each written with its own 'to', the same bytes as a stanza of its own.
TEST_F(RouterTest, FanOut_RemoteRecipientsShareOneSerialisation) {
  router_.set_remote(&remote_);
  const auto stanza = parse(
      "<message xmlns='jabber:client' from='juliet@example.com' type='headline'><event "
      "xmlns='http://jabber.org/protocol/pubsub#event'><items node='n'><item id='1'><x "
      "xmlns='urn:x'>a &amp; b</x></item></items></event></message>");
  router_.fan_out(stanza, {"a@example.net/1", "b@example.edu/2", "c@example.net/3"});
  ASSERT_EQ(remote_.sent.size(), 3u);
  ASSERT_EQ(remote_.tails.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(remote_.tails[i], remote_.tails[0]) << "serialised once";
    auto written = xml::parse_element(remote_.wire[i], ns::kServer);
    ASSERT_TRUE(written) << remote_.wire[i];
    EXPECT_EQ(written->attr("to"), remote_.sent[i].attr("to"));
    xml::Element expected = stanza;
    expected.set_attr("to", remote_.sent[i].attr("to"));
    auto own = xml::parse_element(xml::serialize_stanza(expected, ns::kServer), ns::kServer);
    ASSERT_TRUE(own);
    // The same element either way (attribute order aside: 'to' comes first).
    written->remove_attr("to");
    own->remove_attr("to");
    EXPECT_EQ(written->str(ns::kServer), own->str(ns::kServer));
  }
}

}  // namespace
}  // namespace waddle::router
