// Component tests for the resolver's cache and serve stale (RFC 2308 §5, RFC 8767 §4-§5) against
// a real dnsmasq that is frozen (SIGSTOP: queries wait unanswered), stopped (queries refused) or
// given a new record. ctest label: component.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "dns_fixture.h"
#include "s2s/dns.h"

namespace waddle::s2s {
namespace {

using namespace std::chrono_literals;
using namespace dns_testing;
using Clock = std::chrono::steady_clock;

class DnsStaleTest : public DnsComponentTest {
 protected:
  // RFC 8767 §5's client response timer, as the server uses it.
  const std::chrono::milliseconds wait_ = Resolver::Options{}.stale_answer_wait;

  std::uintmax_t log_size() const { return std::filesystem::file_size(dir_ / "dnsmasq.log"); }

  // Queries for `type` `name` that dnsmasq logged from byte `offset` of its log on.
  int queries_logged(std::uintmax_t offset, const std::string& type, const std::string& name) {
    std::ifstream in(dir_ / "dnsmasq.log");
    in.seekg(static_cast<std::streamoff>(offset));
    const std::string needle = "query[" + type + "] " + name + " from ";
    int n = 0;
    for (std::string line; std::getline(in, line);) n += line.find(needle) != std::string::npos;
    return n;
  }

  // Polls (bounded) with a resolver of its own until dnsmasq gives `host` the address.
  bool serving(const std::string& host, const std::string& address) {
    Resolver probe(options(500ms));
    for (const auto deadline = Clock::now() + 5s; Clock::now() < deadline;) {
      probe.clear_cache();
      auto res = host_of(probe, host, 1);
      if (!res.endpoints.empty() && res.endpoints[0].address == address) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }
};

// Answers within their TTL come from the cache while the server is frozen; a name never asked
// waits for the query's timeout; with the TTLs run out, the last known answers are used once the
// query has failed (here the timeout is shorter than the stale-answer wait).
TEST_F(DnsStaleTest, Cache_AnswersWhileServerFrozen_NewNameTimesOut) {
  const auto timeout = 800ms;
  Resolver r(options(timeout));
  auto first = server_of(r, "srv.test");
  ASSERT_EQ(first.endpoints.size(), 3u) << describe(first);
  auto nx = server_of(r, "nx.test");
  ASSERT_NE(nx.error.find("NXDOMAIN"), std::string::npos) << nx.error;
  auto host = host_of(r, "a.test", 1);
  ASSERT_EQ(host.endpoints.size(), 1u) << describe(host);

  ASSERT_EQ(::kill(pid_, SIGSTOP), 0);  // no answers from now on, sockets stay open

  auto start = Clock::now();
  auto cached = server_of(r, "srv.test");
  EXPECT_EQ(describe(cached), describe(first));
  auto cached_nx = server_of(r, "nx.test");  // negative answers are cached too
  EXPECT_EQ(cached_nx.error, nx.error);
  auto cached_host = host_of(r, "a.test", 1);
  EXPECT_EQ(describe(cached_host), describe(host));
  EXPECT_LT(Clock::now() - start, 300ms);

  start = Clock::now();
  auto fresh = server_of(r, "fresh.test");
  const auto elapsed = Clock::now() - start;
  EXPECT_TRUE(fresh.endpoints.empty());
  EXPECT_NE(fresh.error.find("fresh.test"), std::string::npos) << fresh.error;
  EXPECT_NE(fresh.error.find("DNS server " + server() + " timed out"), std::string::npos)
      << fresh.error;
  EXPECT_GE(elapsed, timeout - 100ms);
  EXPECT_LT(elapsed, timeout + 400ms);

  // Cached answers gone (as when their TTL runs out): the query times out, and the last known
  // answer is used instead (RFC 8767, serve stale), for the SRV records and the addresses.
  r.clear_cache();
  start = Clock::now();
  auto stale = server_of(r, "srv.test");
  EXPECT_EQ(describe(stale), describe(first));
  EXPECT_GE(Clock::now() - start, timeout - 100ms);
  auto stale_host = host_of(r, "a.test", 1);
  EXPECT_EQ(describe(stale_host), describe(host));
  // Negative answers are known answers too; the error says the answer is an earlier one, and why.
  r.clear_cache();
  auto still_nx = server_of(r, "nx.test");
  EXPECT_TRUE(still_nx.endpoints.empty());
  EXPECT_NE(still_nx.error.find("NXDOMAIN, from an earlier answer: DNS server " + server() +
                                " timed out)"),
            std::string::npos)
      << still_nx.error;
}

// RFC 8767 §5: with the server frozen, a lookup whose answer is known gets it after the client
// response timer, long before the query's own timeout. The address lookups that follow the SRV
// lookups do not wait again, so a whole server lookup costs one wait, not one per step; answers
// without records (no _xmpps-server record, no AAAA for host2.test) are known answers too. Until
// the server answers again, further lookups get the known answer at once.
TEST_F(DnsStaleTest, KnownAnswer_AfterShortWait_WhileServerFrozen) {
  ASSERT_EQ(wait_, 1800ms);  // the value RFC 8767 suggests
  Resolver r(options(10s));
  auto first = server_of(r, "srv.test");
  ASSERT_EQ(first.endpoints.size(), 3u) << describe(first);
  r.clear_cache();  // as when the TTLs run out
  ASSERT_EQ(::kill(pid_, SIGSTOP), 0);

  auto start = Clock::now();
  auto stale = server_of(r, "srv.test");
  const auto elapsed = Clock::now() - start;
  EXPECT_EQ(describe(stale), describe(first));
  EXPECT_GE(elapsed, wait_ - 50ms);
  EXPECT_LT(elapsed, wait_ + 700ms);  // not two waits (SRV, then addresses), nor the timeout

  for (int i = 0; i < 3; ++i) {
    start = Clock::now();
    auto again = server_of(r, "srv.test");
    EXPECT_LT(Clock::now() - start, 300ms) << i;
    EXPECT_EQ(describe(again), describe(first)) << i;
  }
}

// A stopped server's port refuses the queries (ICMP port unreachable): the known answers are used
// at once, negative ones included, and a name never answered fails at once. Refusals cost no
// wait, so each lookup asks again: the first one after the server is back gets its answer.
TEST_F(DnsStaleTest, KnownAnswer_AtOnce_WhileServerRefuses) {
  Resolver r(options(10s));
  auto first = server_of(r, "srv.test");
  ASSERT_EQ(first.endpoints.size(), 3u) << describe(first);
  auto nx = server_of(r, "nx.test");
  ASSERT_NE(nx.error.find("NXDOMAIN"), std::string::npos) << nx.error;
  auto moving = host_of(r, "moving.test", 1);
  ASSERT_EQ(describe(moving), "error='' endpoints=[moving.test/127.0.0.71:1 ]");
  std::ofstream(dir_ / "hosts") << "127.0.0.72 moving.test\n";  // read when it starts again
  r.clear_cache();
  const std::string refused = "DNS server " + server() + " unreachable (connection refused)";
  stop_dnsmasq();

  auto start = Clock::now();
  auto stale = server_of(r, "srv.test");
  EXPECT_LT(Clock::now() - start, 500ms);
  EXPECT_EQ(describe(stale), describe(first));

  start = Clock::now();
  auto stale_nx = server_of(r, "nx.test");
  EXPECT_LT(Clock::now() - start, 500ms);
  EXPECT_NE(stale_nx.error.find("NXDOMAIN, from an earlier answer: " + refused + ")"),
            std::string::npos)
      << stale_nx.error;

  start = Clock::now();
  auto never = server_of(r, "never.test");
  EXPECT_LT(Clock::now() - start, 500ms);
  EXPECT_TRUE(never.endpoints.empty());
  EXPECT_NE(never.error.find(refused), std::string::npos) << never.error;

  EXPECT_EQ(describe(host_of(r, "moving.test", 1)), describe(moving));
  start_dnsmasq();  // the same port
  ASSERT_TRUE(wait_until_answering()) << read_file(dir_ / "dnsmasq.log");
  EXPECT_EQ(describe(host_of(r, "moving.test", 1)),
            "error='' endpoints=[moving.test/127.0.0.72:1 ]");
}

// The query left running after the known answer was used refreshes the cache once the server
// answers: a record changed during the outage is used from then on, and the lookups made during
// the outage sent no queries of their own (one refresh per name and type).
TEST_F(DnsStaleTest, KnownAnswer_RefreshedInBackgroundWhenServerAnswers) {
  Resolver r(options(30s));  // c-ares's first try lasts 10 s: no query is sent twice here
  auto before = host_of(r, "moving.test", 1);
  ASSERT_EQ(before.error, "");
  ASSERT_EQ(before.endpoints.size(), 1u) << describe(before);
  ASSERT_EQ(before.endpoints[0].address, "127.0.0.71");

  std::ofstream(dir_ / "hosts") << "127.0.0.72 moving.test\n";
  ASSERT_EQ(::kill(pid_, SIGHUP), 0);  // dnsmasq reads its hosts files again
  ASSERT_TRUE(serving("moving.test", "127.0.0.72"));
  r.clear_cache();
  const auto offset = log_size();
  ASSERT_EQ(::kill(pid_, SIGSTOP), 0);

  auto start = Clock::now();
  auto stale = host_of(r, "moving.test", 1);
  const auto elapsed = Clock::now() - start;
  EXPECT_EQ(describe(stale), describe(before));
  EXPECT_GE(elapsed, wait_ - 50ms);
  EXPECT_LT(elapsed, wait_ + 700ms);
  for (int i = 0; i < 5; ++i) {
    start = Clock::now();
    EXPECT_EQ(describe(host_of(r, "moving.test", 1)), describe(before)) << i;
    EXPECT_LT(Clock::now() - start, 300ms) << i;
  }

  ASSERT_EQ(::kill(pid_, SIGCONT), 0);
  std::string seen;
  for (const auto deadline = Clock::now() + 5s; Clock::now() < deadline;) {
    auto now = host_of(r, "moving.test", 1);
    seen = now.endpoints.empty() ? now.error : now.endpoints[0].address;
    if (seen == "127.0.0.72") break;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(seen, "127.0.0.72");
  EXPECT_EQ(queries_logged(offset, "A", "moving.test"), 1);
  EXPECT_EQ(queries_logged(offset, "AAAA", "moving.test"), 1);
}

}  // namespace
}  // namespace waddle::s2s
