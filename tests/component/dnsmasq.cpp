// dnsmasq for tests (see dnsmasq.h).
#include "dnsmasq.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>
#include <vector>

#include "s2s/dns.h"

extern char** environ;

namespace waddle::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Binds a socket of `type` to address:port (0 = any); returns the bound port, 0 on failure.
std::uint16_t bind_port(const std::string& address, std::uint16_t port, int type) {
  const int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  inet_pton(AF_INET, address.c_str(), &sa.sin_addr);
  socklen_t len = sizeof sa;
  std::uint16_t bound = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), len) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0)
    bound = ntohs(sa.sin_port);
  ::close(fd);
  return bound;
}

// A UDP port the kernel picks, also free for TCP (dnsmasq listens on both).
std::uint16_t pick_port(const std::string& address) {
  for (int i = 0; i < 20; ++i) {
    const std::uint16_t port = bind_port(address, 0, SOCK_DGRAM);
    if (port != 0 && bind_port(address, port, SOCK_STREAM) == port) return port;
  }
  return 0;
}

pid_t spawn(const std::filesystem::path& dir, const std::string& address, std::uint16_t port) {
  std::vector<std::string> args = {Dnsmasq::kBinary,
                                   "--keep-in-foreground",
                                   "--no-resolv",
                                   "--no-hosts",
                                   "--bind-interfaces",
                                   "--listen-address=" + address,
                                   "--port=" + std::to_string(port),
                                   "--conf-file=" + (dir / "dnsmasq.conf").string(),
                                   "--pid-file=" + (dir / "dnsmasq.pid").string(),
                                   "--log-facility=-"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  const std::string log = (dir / "dnsmasq.log").string();
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, Dnsmasq::kBinary, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -1;
}

void stop(pid_t pid) {
  if (pid <= 0) return;
  ::kill(pid, SIGTERM);
  const auto deadline = Clock::now() + 3s;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (Clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return;
    }
    std::this_thread::sleep_for(5ms);
  }
}

// Polls (bounded) until `host` resolves; false when dnsmasq exited or never answered. A query
// is sent only once dnsmasq holds its UDP port: one sent earlier would wait for the timeout.
bool wait_until_answering(pid_t pid, const std::string& address, std::uint16_t port,
                          const std::string& host) {
  const std::string nameserver = address + ":" + std::to_string(port);
  s2s::Resolver probe(s2s::Resolver::Options{{nameserver}, 200ms, 1, 5269});
  const auto deadline = Clock::now() + 5s;
  while (Clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return false;  // exited (e.g. port taken)
    if (bind_port(address, port, SOCK_DGRAM) == port) {
      std::this_thread::sleep_for(2ms);
      continue;
    }
    auto promise = std::make_shared<std::promise<bool>>();
    auto answer = promise->get_future();
    probe.resolve_host(host, 1, [promise](s2s::Resolution r) {
      promise->set_value(r.error.empty() && !r.endpoints.empty());
    });
    if (answer.wait_for(2s) == std::future_status::ready && answer.get()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

}  // namespace

bool Dnsmasq::installed() {
  return ::access(kBinary, X_OK) == 0;
}

std::unique_ptr<Dnsmasq> Dnsmasq::start(const std::filesystem::path& dir, const std::string& zone,
                                        const std::string& probe_host, std::string& log,
                                        const char* address) {
  std::ofstream(dir / "dnsmasq.conf") << zone;
  // The port may be taken between picking and binding by a parallel process: a few attempts.
  for (int attempt = 0; attempt < 5; ++attempt) {
    const std::uint16_t port = pick_port(address);
    if (port == 0) continue;
    const pid_t pid = spawn(dir, address, port);
    if (pid <= 0) continue;
    auto server = std::unique_ptr<Dnsmasq>(new Dnsmasq(address, port, pid));
    if (wait_until_answering(pid, address, port, probe_host)) return server;
    stop(pid);
    server->pid_ = -1;
  }
  std::stringstream ss;
  ss << std::ifstream(dir / "dnsmasq.log").rdbuf();
  log = ss.str();
  return nullptr;
}

Dnsmasq::~Dnsmasq() {
  stop(pid_);
}

}  // namespace waddle::testing
