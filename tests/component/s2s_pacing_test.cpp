// Pacing of an authenticated remote domain that sends faster than its limits: its stream is
// read more slowly, every stanza it wrote is delivered, the stream stays open, another
// domain's stream is read meanwhile, and /metrics shows the pacing. Disconnecting is only the
// operator's explicit choice (disconnect_when_paced_for). ctest label: component.
#include <chrono>
#include <string>

#include "core/base64.h"
#include "s2s_script.h"

namespace waddle::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// `role` authenticates as `from` with SASL EXTERNAL, up to the features of the new stream.
Script external(const Role& role, const std::string& from) {
  return open_with_tls(role, Cred::kValid, from) +
         Script{role.expect_exact(kExternalAndDialback),
                role.send(sasl_auth("EXTERNAL", core::base64_encode(from))),
                role.expect_exact(kSuccess),
                role.restart(),
                role.send(header(from, kLocal)),
                role.expect_header(kLocal, from),
                role.expect_exact(kDialbackAndSm)};
}

// `n` messages from a@`from` to b@kLocal with ids PREFIX0, PREFIX1, ...
std::string flood(const std::string& from, const std::string& prefix, int n) {
  std::string out;
  for (int i = 0; i < n; ++i)
    out += message("a@" + from + "/x", "b@local.test", prefix + std::to_string(i));
  return out;
}

// The ids of delivered stanzas that start with `prefix`, in the order they were delivered.
std::vector<std::string> delivered(const Scene& s, const std::string& prefix) {
  std::vector<std::string> ids;
  for (const auto& e : s.recorder.got) {
    const std::string id(e.attr("id"));
    if (id.rfind(prefix, 0) == 0) ids.push_back(id);
  }
  return ids;
}

class S2sPacingTest : public FederationTest {
 protected:
  void SetUp() override {
    FederationTest::SetUp();
    if (IsSkipped()) return;
    config_.s2s.stanza_rate = 100;  // per second
    config_.s2s.stanza_burst = 20;
  }
};

TEST_F(S2sPacingTest, FloodOverTheLimit_IsPacedNotClosed_AndOthersAreReadMeanwhile) {
  const Role in("in"), other("other");
  Scene scene(*this);
  ASSERT_TRUE(scene.start());
  ASSERT_TRUE(scene.run(external(in, kRemote) + external(other, kRemote2)));

  // 400 messages in one write: 20 at once, then 380 at 100 per second (~3.8 s).
  constexpr int kFlood = 400;
  const auto t0 = Clock::now();
  ASSERT_TRUE(scene.peer("in").send(flood(kRemote, "f", kFlood))) << scene.peer("in").problem();
  // While remote.test is paced, remote2.test's message is read at once.
  ASSERT_TRUE(pump(
      scene.io, [&] { return delivered(scene, "f").size() >= 50; }, 5s));
  ASSERT_TRUE(scene.peer("other").send(message("a@remote2.test/x", "b@local.test", "o1")));
  const auto asked = Clock::now();
  ASSERT_TRUE(pump(
      scene.io, [&] { return !delivered(scene, "o1").empty(); }, 5s));
  const auto other_took = Clock::now() - asked;
  EXPECT_LT(other_took, 250ms) << "another domain waited behind the paced one";
  EXPECT_LT(delivered(scene, "f").size(), static_cast<std::size_t>(kFlood) - 100)
      << "the flood was not paced: it was nearly over when the other domain was read";

  // Every message of the flood arrives, in order, at the paced rate.
  ASSERT_TRUE(pump(
      scene.io, [&] { return delivered(scene, "f").size() >= kFlood; }, 10s))
      << delivered(scene, "f").size() << " of " << kFlood << " delivered";
  const auto took = Clock::now() - t0;
  EXPECT_GE(took, 3s) << "not paced to 100 per second";
  const auto ids = delivered(scene, "f");
  for (int i = 0; i < kFlood; ++i) ASSERT_EQ(ids[i], "f" + std::to_string(i));

  // The stream is still open and still carries stanzas.
  ASSERT_TRUE(scene.run({in.send(message("a@remote.test/x", "b@local.test", "after")),
                         expect_delivered("<message id='after'/>")}));
  EXPECT_TRUE(scene.peer("in").open());
  EXPECT_EQ(scene.metrics.streams_closed.get({kRemote, "in", "rate_limit"}).value(), 0u);
  EXPECT_EQ(scene.metrics.stanzas_received.get({kRemote}).value(), kFlood + 1u);
  EXPECT_GE(scene.metrics.paced_total.get({kRemote}).value(), 1u);
  EXPECT_GE(scene.metrics.paced_time.get({kRemote}).value(), 3u);
  EXPECT_EQ(scene.metrics.paced_total.get({kRemote2}).value(), 0u);
  EXPECT_TRUE(scene.settle());
}

TEST_F(S2sPacingTest, DisconnectWhenPacedFor_IsTheOperatorsExplicitChoice) {
  config_.s2s.disconnect_when_paced_for = 1s;
  const Role in("in");
  Scene scene(*this);
  ASSERT_TRUE(scene.start());
  ASSERT_TRUE(scene.run(external(in, kRemote)));
  const auto t0 = Clock::now();
  ASSERT_TRUE(scene.peer("in").send(flood(kRemote, "f", 400)));
  // Paced for a second (20 at once, ~100 more), then closed with policy-violation.
  ASSERT_TRUE(scene.run({in.expect_stream_error("policy-violation")}));
  EXPECT_GE(Clock::now() - t0, 1s);
  const auto got = delivered(scene, "f").size();
  EXPECT_GE(got, 100u);
  EXPECT_LT(got, 400u);
  EXPECT_EQ(scene.metrics.streams_closed.get({kRemote, "in", "rate_limit"}).value(), 1u);
  EXPECT_EQ(scene.metrics.errors.get({kRemote, "rate_limit"}).value(), 1u);
  EXPECT_TRUE(scene.settle());
}

}  // namespace
}  // namespace waddle::testing
