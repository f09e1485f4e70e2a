// ConnectionGate: new connections per minute from one address, and unauthenticated
// connections in total and per address (docs/security.md "Memory").
#include "core/connection_gate.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace waddle::core {
namespace {

using namespace std::chrono_literals;
using Refused = ConnectionGate::Refused;
using Ticket = ConnectionGate::Ticket;
const ConnectionGate::Clock::time_point kT0{};

TEST(ConnectionGateTest, PerAddressCap_RefusesTheNextUntilOneAuthenticatesOrEnds) {
  ConnectionGate gate({.max_unauthenticated = 100, .max_unauthenticated_per_address = 3});
  std::vector<Ticket> held(3);
  for (auto& t : held) ASSERT_FALSE(gate.admit("127.0.0.1", kT0, t));
  Ticket extra;
  EXPECT_EQ(gate.admit("127.0.0.1", kT0, extra), Refused::kAddress);
  EXPECT_FALSE(extra.held());
  EXPECT_FALSE(gate.admit("127.0.0.2", kT0, extra)) << "another address is not affected";
  EXPECT_EQ(gate.unauthenticated_from("127.0.0.1"), 3u);
  held[0].release();  // authenticated: no longer counted
  EXPECT_EQ(gate.unauthenticated_from("127.0.0.1"), 2u);
  Ticket next;
  EXPECT_FALSE(gate.admit("127.0.0.1", kT0, next));
  held.pop_back();  // the connection ended
  EXPECT_EQ(gate.unauthenticated(), 3u);
}

TEST(ConnectionGateTest, TotalCap_RefusesEveryAddress) {
  ConnectionGate gate({.max_unauthenticated = 2, .max_unauthenticated_per_address = 5});
  Ticket a, b, c;
  ASSERT_FALSE(gate.admit("127.0.0.1", kT0, a));
  ASSERT_FALSE(gate.admit("127.0.0.2", kT0, b));
  EXPECT_EQ(gate.admit("127.0.0.3", kT0, c), Refused::kTotal);
  a = Ticket();  // moved over: a's slot is given back
  EXPECT_FALSE(gate.admit("127.0.0.3", kT0, c));
  EXPECT_EQ(gate.unauthenticated(), 2u);
}

TEST(ConnectionGateTest, Rate_CountsEveryConnectionPerAddress) {
  ConnectionGate gate(
      {.max_unauthenticated = 100, .max_unauthenticated_per_address = 100, .per_minute = 3});
  for (int i = 0; i < 3; ++i) {
    Ticket t;  // released at once: authenticated or gone, the connection still counted
    ASSERT_FALSE(gate.admit("127.0.0.1", kT0, t)) << i;
  }
  Ticket t;
  EXPECT_EQ(gate.admit("127.0.0.1", kT0 + 1s, t), Refused::kRate);
  EXPECT_FALSE(gate.admit("127.0.0.2", kT0 + 1s, t)) << "another address";
  // 3 per minute: one more every 20 seconds.
  EXPECT_EQ(gate.admit("127.0.0.1", kT0 + 19s, t), Refused::kRate);
  EXPECT_FALSE(gate.admit("127.0.0.1", kT0 + 20s, t));
  EXPECT_EQ(gate.admit("127.0.0.1", kT0 + 21s, t), Refused::kRate);
}

TEST(ConnectionGateTest, RateZero_MeansUnlimited) {
  ConnectionGate gate({.max_unauthenticated = 10, .max_unauthenticated_per_address = 10});
  for (int i = 0; i < 10000; ++i) {
    Ticket t;
    ASSERT_FALSE(gate.admit("127.0.0.1", kT0, t)) << i;
  }
}

TEST(ConnectionGateTest, ManyAddresses_EachStartsWithFullBudget_StateStaysBounded) {
  ConnectionGate gate(
      {.max_unauthenticated = 10, .max_unauthenticated_per_address = 10, .per_minute = 1});
  for (int i = 0; i < 5000; ++i) {
    const std::string address = "127.1." + std::to_string(i / 256) + "." + std::to_string(i % 256);
    Ticket t;
    ASSERT_FALSE(gate.admit(address, kT0 + i * 1ms, t)) << address;
  }
  Ticket t;
  EXPECT_EQ(gate.admit("127.1.19.135", kT0 + 5s, t), Refused::kRate) << "still inside its minute";
  EXPECT_EQ(gate.unauthenticated(), 0u);
}

TEST(ConnectionGateTest, NewLimits_ApplyFromNow) {
  ConnectionGate gate({.max_unauthenticated = 10, .max_unauthenticated_per_address = 1});
  Ticket a, b;
  ASSERT_FALSE(gate.admit("127.0.0.1", kT0, a));
  EXPECT_EQ(gate.admit("127.0.0.1", kT0, b), Refused::kAddress);
  gate.set_limits({.max_unauthenticated = 10, .max_unauthenticated_per_address = 2});
  EXPECT_FALSE(gate.admit("127.0.0.1", kT0, b));
}

TEST(ConnectionGateTest, TicketOutlivesGate) {
  Ticket t;
  {
    ConnectionGate gate({});
    ASSERT_FALSE(gate.admit("127.0.0.1", kT0, t));
  }
  t.release();
  EXPECT_FALSE(t.held());
}

}  // namespace
}  // namespace waddle::core
