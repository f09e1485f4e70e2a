// DNS discovery for S2S (RFC 6120 §3.2.1, XEP-0368 §2) with RFC 2782 SRV ordering, on c-ares:
// one event-loop thread per Resolver fed by a queue woken through an eventfd; answers are cached
// for their TTL, negative ones for the SOA minimum (RFC 2308 §5); when the DNS server fails, or
// has not answered within a short wait, the last answer is used for up to a day and the query
// goes on to refresh it (RFC 8767 §5, serve stale with a client response timer).
#include "s2s/dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>
#include <utility>

#include "s2s/dns_cache.h"
#include "s2s/dns_message.h"

namespace waddle::s2s {

std::vector<SrvRecord> order_srv(std::vector<SrvRecord> records, std::mt19937& rng) {
  std::stable_sort(records.begin(), records.end(),
                   [](const SrvRecord& a, const SrvRecord& b) { return a.priority < b.priority; });
  std::vector<SrvRecord> out;
  out.reserve(records.size());
  for (auto begin = records.begin(); begin != records.end();) {
    auto end = std::find_if(begin, records.end(),
                            [&](const SrvRecord& r) { return r.priority != begin->priority; });
    // RFC 2782: "arrange ... in any order, except that all those with weight 0 are placed at the
    // beginning"; the shuffle makes the order among equal chances random too.
    std::vector<SrvRecord> group(std::make_move_iterator(begin), std::make_move_iterator(end));
    std::shuffle(group.begin(), group.end(), rng);
    std::stable_partition(group.begin(), group.end(),
                          [](const SrvRecord& r) { return r.weight == 0; });
    while (!group.empty()) {
      std::uint64_t sum = 0;
      for (const auto& r : group) sum += r.weight;
      if (sum == 0) {  // only weight-0 records left, already in random order
        std::move(group.begin(), group.end(), std::back_inserter(out));
        break;
      }
      // The RFC draws in [0, sum] so that weight-0 records (running sum 0) get a small chance.
      // Without any left, draw in [1, sum] so that each record gets exactly weight/sum instead of
      // the first one getting an extra 1/(sum+1).
      const std::uint64_t low = group.front().weight == 0 ? 0 : 1;
      const std::uint64_t pick = std::uniform_int_distribution<std::uint64_t>(low, sum)(rng);
      std::uint64_t running = 0;
      auto chosen = group.begin();
      for (auto it = group.begin(); it != group.end(); ++it) {
        running += it->weight;
        if (running >= pick) {
          chosen = it;
          break;
        }
      }
      out.push_back(std::move(*chosen));
      group.erase(chosen);
    }
    begin = end;
  }
  return out;
}

namespace {

using Clock = std::chrono::steady_clock;
using Done = std::function<void(Resolution)>;
using dns::Answer;
using dns::kClassIn;
using dns::kTypeA;
using dns::kTypeAaaa;
using dns::kTypeSrv;
using dns::negative;
using dns::Outcome;

constexpr std::size_t kMaxNameLength = 253;
constexpr std::size_t kMaxLabelLength = 63;

struct HostAnswer {
  Answer aaaa;
  Answer a;
};

const std::string kShutdownText = "resolver shut down";

std::string outcome_text(const Answer& a) {
  switch (a.outcome) {
    case Outcome::kRecords:
      return "answered";
    case Outcome::kNxDomain:
      return "NXDOMAIN";
    case Outcome::kNoData:
      return "no such record (NODATA)";
    case Outcome::kFailure:
      return a.failure;
    case Outcome::kShutdown:
      return kShutdownText;
  }
  return a.failure;
}

// A stale answer says so: "NXDOMAIN, from an earlier answer: DNS server 192.0.2.53:53 timed out".
std::string what(const Answer& a) {
  if (!a.stale) return outcome_text(a);
  return outcome_text(a) + ", from an earlier answer: " + a.failure;
}

// "NXDOMAIN", or "AAAA: ...; A: ..." when the two queries failed differently.
std::string host_details(const HostAnswer& h) {
  const std::string six = what(h.aaaa);
  const std::string four = what(h.a);
  return six == four ? four : "AAAA: " + six + "; A: " + four;
}

std::string printable(const std::string& s) {
  std::string out;
  for (char c : s.substr(0, 300)) out += (c > 0x20 && c < 0x7f) ? c : '?';
  return out;
}

// Lower-cased name without the final dot, or nullopt when it cannot be a DNS host name
// (IDNs must arrive as A-labels).
std::optional<std::string> normalize_name(const std::string& raw) {
  std::string name = raw;
  if (!name.empty() && name.back() == '.') name.pop_back();
  if (name.empty() || name.size() > kMaxNameLength) return std::nullopt;
  std::size_t label = 0;
  for (char& c : name) {
    if (c == '.') {
      if (label == 0) return std::nullopt;
      label = 0;
      continue;
    }
    if (++label > kMaxLabelLength) return std::nullopt;
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return std::nullopt;
  }
  return name;
}

// An IPv4 or IPv6 literal (optionally in brackets) in canonical text form.
std::optional<std::pair<int, std::string>> ip_literal(const std::string& s) {
  std::string text = s;
  if (text.size() > 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
  }
  unsigned char buf[sizeof(in6_addr)];
  char out[INET6_ADDRSTRLEN];
  for (int family : {AF_INET6, AF_INET}) {
    if (inet_pton(family, text.c_str(), buf) == 1 && inet_ntop(family, buf, out, sizeof out)) {
      return std::make_pair(family, std::string(out));
    }
  }
  return std::nullopt;
}

void deliver(Done& done, Resolution r) {
  if (!done) return;
  // The callback runs on the c-ares thread: an exception escaping it would end the process.
  try {
    done(std::move(r));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "waddle: DNS result callback threw: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "waddle: DNS result callback threw\n");
  }
}

Resolution failed(std::string error) {
  return Resolution{{}, std::move(error)};
}

}  // namespace

struct Resolver::Impl {
  using Task = std::function<void()>;
  using AnswerFn = std::function<void(const Answer&)>;
  using HostFn = std::function<void(const HostAnswer&)>;

  using Key = dns::AnswerCache::Key;

  // One c-ares query; owned by c-ares (freed in on_ares_answer, which c-ares always calls,
  // with ARES_EDESTRUCTION at the latest). `answered` is set when our own deadline fired first.
  // Lookups of the same name and type while it runs join it: a burst of stanzas to one domain
  // makes one query, not hundreds that overflow the server's socket buffer. At `stale_at` (RFC
  // 8767 §5's client response timer) its waiters get the last known answer if there is one,
  // and it goes on without them to refresh the cache.
  struct Query {
    Impl* impl = nullptr;
    Key key;
    Clock::time_point deadline;
    Clock::time_point stale_at;
    bool answered = false;
    bool stale_checked = false;
    std::vector<AnswerFn> waiters = {};
  };

  struct Ordered {
    SrvRecord record;
    bool direct_tls;
  };

  struct ServerOp {
    std::string domain;
    Done done;
    int pending = 0;
    Answer tls_srv;  // _xmpps-server._tcp
    Answer tcp_srv;  // _xmpp-server._tcp
    std::vector<Ordered> records;
    std::map<std::string, HostAnswer> hosts;
  };

  explicit Impl(Options o) : options(std::move(o)), rng(std::random_device{}()) {
    static std::once_flag once;
    static int library_status = ARES_SUCCESS;
    std::call_once(once, [] { library_status = ares_library_init(ARES_LIB_INIT_ALL); });
    if (library_status != ARES_SUCCESS) {
      throw std::runtime_error(std::string("c-ares library init failed: ") +
                               ares_strerror(library_status));
    }
    if (options.timeout.count() <= 0) throw std::runtime_error("DNS timeout must be positive");
    if (options.stale_answer_wait.count() <= 0) {
      throw std::runtime_error("DNS stale_answer_wait must be positive");
    }
    if (options.tries < 1) throw std::runtime_error("DNS tries must be at least 1");
    if (options.default_port == 0) throw std::runtime_error("DNS default_port must be non-zero");
    for (const auto& server : options.nameservers) {
      if (server.empty() || server.find_first_of(", \t\r\n") != std::string::npos) {
        throw std::runtime_error("invalid DNS nameserver '" + printable(server) + "'");
      }
    }
    // c-ares gives each server `timeout` on the first round and doubles it on each later round:
    // split the configured budget so that all tries of all servers fit into it. Our own
    // deadline (options.timeout per query) bounds it anyway.
    const auto total_ms = static_cast<long long>(options.timeout.count());
    const long long rounds = (1LL << std::min(options.tries, 20)) - 1;
    channel = make_channel(std::max(10LL, total_ms / rounds), 1);
    const std::size_t servers = describe_servers();
    if (servers > 1) {
      ares_destroy(channel);
      channel = nullptr;
      channel = make_channel(std::max(10LL, total_ms / rounds / static_cast<long long>(servers)),
                             servers);
    }
    wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd < 0) {
      ares_destroy(channel);
      throw std::runtime_error("DNS resolver: eventfd failed");
    }
    try {
      thread = std::thread([this] { run(); });
    } catch (...) {
      ares_destroy(channel);
      ::close(wake_fd);
      throw;
    }
  }

  ~Impl() {
    if (channel) ares_destroy(channel);
    for (Query* q : in_flight) delete q;
    if (wake_fd >= 0) ::close(wake_fd);
  }

  ares_channel make_channel(long long per_try_ms, std::size_t servers) {
    ares_options opts{};
    opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
    // c-ares 1.18 moves on to the next server on SERVFAIL/REFUSED/NOTIMP and, once out of
    // servers, reports ECONNREFUSED. With a single server there is nothing to move on to: take
    // the answer as is, so that errors say what the server said.
    if (servers == 1) opts.flags |= ARES_FLAG_NOCHECKRESP;
    opts.timeout = static_cast<int>(std::min(per_try_ms, 3600000LL));
    opts.tries = options.tries;
    opts.sock_state_cb = &Impl::on_sock_state;
    opts.sock_state_cb_data = this;
    const int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB;
    ares_channel ch = nullptr;
    int status = ares_init_options(&ch, &opts, mask);
    if (status != ARES_SUCCESS) {
      throw std::runtime_error(std::string("c-ares init failed: ") + ares_strerror(status));
    }
    if (!options.nameservers.empty()) {
      std::string csv;
      for (const auto& s : options.nameservers) csv += (csv.empty() ? "" : ",") + s;
      status = ares_set_servers_ports_csv(ch, csv.c_str());
      if (status != ARES_SUCCESS) {
        ares_destroy(ch);
        throw std::runtime_error("invalid DNS nameservers '" + printable(csv) +
                                 "': " + ares_strerror(status));
      }
    }
    return ch;
  }

  // Fills servers_text ("127.0.0.53:53, [::1]:5353") for error messages; returns the count.
  std::size_t describe_servers() {
    ares_addr_port_node* list = nullptr;
    if (ares_get_servers_ports(channel, &list) != ARES_SUCCESS) list = nullptr;
    std::size_t count = 0;
    servers_text.clear();
    for (auto* n = list; n; n = n->next) {
      char addr[INET6_ADDRSTRLEN] = "?";
      inet_ntop(n->family,
                n->family == AF_INET6 ? static_cast<const void*>(&n->addr.addr6)
                                      : static_cast<const void*>(&n->addr.addr4),
                addr, sizeof addr);
      const int port = n->udp_port ? n->udp_port : 53;
      if (count++) servers_text += ", ";
      servers_text += n->family == AF_INET6 ? "[" + std::string(addr) + "]" : std::string(addr);
      servers_text += ":" + std::to_string(port);
    }
    ares_free_data(list);
    if (count == 0) {
      ares_destroy(channel);
      channel = nullptr;
      throw std::runtime_error("DNS resolver: no name server configured");
    }
    servers.plural = count > 1;
    servers.phrase = (servers.plural ? "DNS servers " : "DNS server ") + servers_text;
    return count;
  }

  const std::string& server_phrase() const { return servers.phrase; }

  // --- submission (any thread) ---

  bool post(Task& task) {
    {
      std::lock_guard lock(mutex);
      if (closed) return false;
      queue.push_back(std::move(task));
    }
    wake();
    return true;
  }

  void wake() const {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd, &one, sizeof one);
  }

  void request_stop() {
    {
      std::lock_guard lock(mutex);
      stop_requested = true;
    }
    wake();
  }

  // --- the loop (resolver thread) ---

  void run() {
    pthread_setname_np(pthread_self(), "waddle-dns");
    std::vector<pollfd> fds;
    for (;;) {
      std::deque<Task> tasks;
      {
        std::lock_guard lock(mutex);
        tasks.swap(queue);
        if (stop_requested) stopping = true;
      }
      for (auto& task : tasks) task();  // with stopping set, they complete as shut down
      if (stopping) break;
      fire_deadlines();
      wait_and_process(fds);
    }
    shut_down();
    if (self_owned) delete this;  // the Resolver was destroyed from one of our callbacks
  }

  void wait_and_process(std::vector<pollfd>& fds) {
    fds.clear();
    fds.push_back(pollfd{wake_fd, POLLIN, 0});
    for (const auto& [fd, events] : sockets) fds.push_back(pollfd{fd, events, 0});

    std::optional<Clock::time_point> next;
    for (const Query* q : in_flight) {
      if (q->answered) continue;
      const auto due = q->stale_checked ? q->deadline : std::min(q->deadline, q->stale_at);
      if (!next || due < *next) next = due;
    }
    timeval max_tv{};
    timeval tv{};
    timeval* max_ptr = nullptr;
    if (next) {
      const auto ms = std::max<long long>(
          0, std::chrono::ceil<std::chrono::milliseconds>(*next - Clock::now()).count());
      max_tv.tv_sec = static_cast<time_t>(ms / 1000);
      max_tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
      max_ptr = &max_tv;
    }
    int timeout_ms = -1;
    if (const timeval* t = ares_timeout(channel, max_ptr, &tv)) {
      timeout_ms = static_cast<int>(t->tv_sec * 1000 + (t->tv_usec + 999) / 1000);
    }
    const int ready = ::poll(fds.data(), fds.size(), timeout_ms);
    if (ready < 0) {
      if (errno != EINTR) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      return;
    }
    if (fds[0].revents) {
      std::uint64_t value = 0;
      [[maybe_unused]] auto n = ::read(wake_fd, &value, sizeof value);
    }
    bool processed = false;
    for (std::size_t i = 1; i < fds.size(); ++i) {
      const short ev = fds[i].revents;
      if (!ev || (ev & POLLNVAL)) continue;
      const ares_socket_t r = (ev & (POLLIN | POLLERR | POLLHUP)) ? fds[i].fd : ARES_SOCKET_BAD;
      const ares_socket_t w = (ev & POLLOUT) ? fds[i].fd : ARES_SOCKET_BAD;
      ares_process_fd(channel, r, w);
      processed = true;
    }
    if (!processed) ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts
  }

  // Queries past our deadline end as timed out; those past their stale_at hand their waiters the
  // last known answer (RFC 8767 §5) and go on in the background.
  void fire_deadlines() {
    const auto now = Clock::now();
    std::vector<std::pair<AnswerFn, Answer>> expired;
    Answer timeout;
    timeout.failure = server_phrase() + " timed out";
    timeout.timed_out = true;
    for (Query* q : in_flight) {
      if (q->answered) continue;
      if (q->deadline <= now) {
        q->answered = true;  // c-ares still owns it; a late answer only refreshes the cache
        forget(q);
        answers.note_failure(q->key, now, timeout.failure);
        const Answer a = or_stale(q->key, timeout);
        for (auto& fn : q->waiters) expired.emplace_back(std::move(fn), a);
        q->waiters.clear();
      } else if (!q->stale_checked && q->stale_at <= now) {
        q->stale_checked = true;
        const std::string why = server_phrase() + " had not answered after " +
                                std::to_string(options.stale_answer_wait.count()) + " ms";
        auto stale = answers.stale(q->key, now, why);
        if (!stale) continue;  // nothing to use instead: wait for the answer or the deadline
        answers.note_failure(q->key, now, why);
        for (auto& fn : q->waiters) expired.emplace_back(std::move(fn), *stale);
        q->waiters.clear();
      }
    }
    for (auto& [fn, a] : expired) fn(a);
  }

  void shut_down() {
    stopping = true;
    // Calls every pending query back with ARES_EDESTRUCTION: their operations end as shut down.
    if (channel) {
      ares_destroy(channel);
      channel = nullptr;
    }
    for (Query* q : in_flight) delete q;  // none expected: c-ares called them all back
    in_flight.clear();
    joinable.clear();
    answers.clear();
    for (;;) {
      std::deque<Task> tasks;
      {
        std::lock_guard lock(mutex);
        if (queue.empty()) {
          closed = true;  // later submissions complete on the caller's thread
          break;
        }
        tasks.swap(queue);
      }
      for (auto& task : tasks) task();
    }
    sockets.clear();
  }

  void forget(const Query* q) {
    if (auto it = joinable.find(q->key); it != joinable.end() && it->second == q) {
      joinable.erase(it);
    }
  }

  static void on_sock_state(void* data, ares_socket_t fd, int readable, int writable) {
    auto* self = static_cast<Impl*>(data);
    if (!readable && !writable) {
      self->sockets.erase(fd);
    } else {
      self->sockets[fd] = static_cast<short>((readable ? POLLIN : 0) | (writable ? POLLOUT : 0));
    }
  }

  static void on_ares_answer(void* arg, int status, int /*timeouts*/, unsigned char* abuf,
                             int alen) {
    std::unique_ptr<Query> q(static_cast<Query*>(arg));
    Impl* self = q->impl;
    self->in_flight.erase(q.get());
    const bool late = q->answered;  // after our deadline: nobody waits for it any more
    q->answered = true;
    if (!late) self->forget(q.get());
    // Called from C: nothing may propagate.
    try {
      const Answer fresh = dns::interpret(q->key.first, status, abuf, alen, self->servers);
      self->remember(q->key, fresh);
      if (late) return;
      const Answer a = self->or_stale(q->key, fresh);
      for (auto& fn : q->waiters) fn(a);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "waddle: DNS answer handling failed: %s\n", e.what());
    }
  }

  // What a query's end teaches: an answer from the server is cached; a timeout is noted, so that
  // the next lookups of the question use the last known answer without waiting. A server that
  // refuses or fails at once is asked again each time: that costs no wait, and its first answer
  // after the outage is used at once.
  void remember(const Key& key, const Answer& a) {
    if (a.outcome == Outcome::kShutdown) return;
    if (a.outcome != Outcome::kFailure) {
      answers.store(key, a, Clock::now());
    } else if (a.timed_out) {
      answers.note_failure(key, Clock::now(), a.failure);
    }
  }

  // A failed query's answer, or the last known answer to the question when there is one recent
  // enough (serve stale).
  Answer or_stale(const Key& key, const Answer& a) const {
    if (a.outcome != Outcome::kFailure) return a;
    return answers.stale(key, Clock::now(), a.failure).value_or(a);
  }

  // A query for `key`; `fn` (if any) waits for it. May call back before returning.
  void start_query(const Key& key, Clock::time_point now, AnswerFn fn) {
    auto* q = new Query{.impl = this,
                        .key = key,
                        .deadline = now + options.timeout,
                        .stale_at = now + options.stale_answer_wait};
    if (fn) q->waiters.push_back(std::move(fn));
    in_flight.insert(q);
    joinable[key] = q;
    ares_query(channel, q->key.second.c_str(), kClassIn, key.first, &Impl::on_ares_answer, q);
  }

  // A query for `key` with nobody waiting, unless one is still out: refreshes the cache when the
  // server answers again, without piling up queries while it does not.
  void refresh(const Key& key, Clock::time_point now) {
    const bool out = std::any_of(in_flight.begin(), in_flight.end(),
                                 [&](const Query* q) { return q->key == key; });
    if (!out) start_query(key, now, nullptr);
  }

  // Answers from the cache or from one c-ares query; `fn` may run before this returns. With
  // `hurry` set (why), or while the server is failing for this question, the last known
  // answer is used at once and a refresh query goes out.
  void lookup(const std::string& name, int type, AnswerFn fn, const std::string& hurry = {}) {
    if (stopping) {
      Answer a;
      a.outcome = Outcome::kShutdown;
      fn(a);
      return;
    }
    const auto now = Clock::now();
    const Key key{type, name};
    if (auto fresh = answers.fresh(key, now)) return fn(*fresh);
    if (!hurry.empty() || answers.failing(key, now)) {
      if (auto stale = answers.stale(key, now, hurry)) {
        refresh(key, now);
        return fn(*stale);
      }
    }
    if (auto it = joinable.find(key); it != joinable.end()) {
      it->second->waiters.push_back(std::move(fn));
      return;
    }
    start_query(key, now, std::move(fn));
  }

  // AAAA and A in parallel; IP literals answer themselves.
  void lookup_host(const std::string& name, HostFn fn, const std::string& hurry = {}) {
    if (auto ip = ip_literal(name)) {
      HostAnswer h;
      h.aaaa.outcome = h.a.outcome = Outcome::kNoData;
      Answer& hit = ip->first == AF_INET6 ? h.aaaa : h.a;
      hit.outcome = Outcome::kRecords;
      hit.addresses.push_back(ip->second);
      fn(h);
      return;
    }
    struct State {
      HostAnswer h;
      int pending = 3;
      HostFn fn;
    };
    auto st = std::make_shared<State>();
    st->fn = std::move(fn);
    auto step = [st] {
      if (--st->pending == 0) st->fn(st->h);
    };
    lookup(
        name, kTypeAaaa,
        [st, step](const Answer& a) {
          st->h.aaaa = a;
          step();
        },
        hurry);
    lookup(
        name, kTypeA,
        [st, step](const Answer& a) {
          st->h.a = a;
          step();
        },
        hurry);
    step();
  }

  static void append_addresses(std::vector<Endpoint>& out, const std::string& host,
                               const HostAnswer& h, std::uint16_t port, bool direct_tls, bool srv) {
    for (const Answer* a : {&h.aaaa, &h.a}) {
      for (const auto& address : a->addresses) {
        const bool seen = std::any_of(out.begin(), out.end(), [&](const Endpoint& e) {
          return e.address == address && e.port == port && e.direct_tls == direct_tls;
        });
        if (!seen) out.push_back(Endpoint{host, address, port, direct_tls, srv});
      }
    }
  }

  static bool is_shutdown(const HostAnswer& h) {
    return h.aaaa.outcome == Outcome::kShutdown || h.a.outcome == Outcome::kShutdown;
  }

  // The endpoints of a host, or an error naming it and what failed (then `note`).
  static Resolution host_resolution(const std::string& name, std::uint16_t port,
                                    const HostAnswer& h, const std::string& no_record,
                                    const std::string& note = "") {
    if (is_shutdown(h)) return failed(kShutdownText);
    Resolution r;
    append_addresses(r.endpoints, name, h, port, false, false);
    if (r.endpoints.empty()) {
      r.error = negative(h.aaaa) && negative(h.a)
                    ? no_record + " (" + host_details(h) + ")" + note
                    : "cannot resolve " + name + ": " + host_details(h) + note;
    }
    return r;
  }

  void start_host(const std::string& raw, std::uint16_t port, Done done) {
    if (stopping) return deliver(done, failed(kShutdownText));
    auto literal = ip_literal(raw);
    auto name = literal ? std::optional<std::string>(raw) : normalize_name(raw);
    if (!name) return deliver(done, failed("invalid host name '" + printable(raw) + "'"));
    const std::string host = *name;
    lookup_host(host, [host, port, done = std::move(done)](const HostAnswer& h) mutable {
      deliver(done, host_resolution(host, port, h, "no A/AAAA record for " + host));
    });
  }

  void start_server(const std::string& raw, Done done) {
    if (stopping) return deliver(done, failed(kShutdownText));
    if (auto literal = ip_literal(raw)) {  // RFC 6120 §3.2.1: no SRV lookup for IP addresses
      Resolution r;
      r.endpoints.push_back(Endpoint{raw, literal->second, options.default_port, false, false});
      return deliver(done, std::move(r));
    }
    auto name = normalize_name(raw);
    if (!name) return deliver(done, failed("invalid domain name '" + printable(raw) + "'"));
    auto op = std::make_shared<ServerOp>();
    op->domain = *name;
    op->done = std::move(done);
    op->pending = 3;
    lookup("_xmpps-server._tcp." + op->domain, kTypeSrv, [this, op](const Answer& a) {
      op->tls_srv = a;
      srv_step(op);
    });
    lookup("_xmpp-server._tcp." + op->domain, kTypeSrv, [this, op](const Answer& a) {
      op->tcp_srv = a;
      srv_step(op);
    });
    srv_step(op);
  }

  static std::vector<SrvRecord> usable(const Answer& a) {
    std::vector<SrvRecord> out;
    for (const auto& r : a.srv) {
      if (!r.target.empty()) out.push_back(r);
    }
    return out;
  }

  // RFC 2782 / RFC 6120 §3.2.1 step 4: target "." (and nothing else) = service not offered.
  static bool not_offered(const Answer& a) {
    return a.outcome == Outcome::kRecords && usable(a).empty();
  }

  // Once the server has failed an SRV query of the operation (the answer used is stale), the
  // address lookups do not wait for it again: a connection attempt during a DNS outage costs
  // one stale-answer wait, not one per step. Empty when the SRV answers are fresh.
  std::string hurry(const ServerOp& op) const {
    for (const Answer* a : {&op.tcp_srv, &op.tls_srv}) {
      if (a->stale) return a->failure.empty() ? server_phrase() + " failing" : a->failure;
    }
    return {};
  }

  void srv_step(const std::shared_ptr<ServerOp>& op) {
    if (--op->pending > 0) return;
    const std::string& d = op->domain;
    if (op->tls_srv.outcome == Outcome::kShutdown || op->tcp_srv.outcome == Outcome::kShutdown) {
      return deliver(op->done, failed(kShutdownText));
    }
    const auto tls = order_srv(usable(op->tls_srv), rng);
    const auto tcp = order_srv(usable(op->tcp_srv), rng);
    if (tls.empty() && tcp.empty()) {
      const std::string tcp_name = "_xmpp-server._tcp." + d;
      if (not_offered(op->tcp_srv)) {
        const std::string where =
            not_offered(op->tls_srv) ? "_xmpps-server._tcp." + d + " and " + tcp_name : tcp_name;
        return deliver(op->done,
                       failed(d + ": service not offered ('.' SRV target at " + where + ")"));
      }
      const bool srv_failed = !negative(op->tcp_srv);
      if (srv_failed && !op->tcp_srv.server_replied) {
        // Timed out or unreachable: an address lookup would most likely fail the same way, after
        // as long again.
        const std::string tls_what = what(op->tls_srv), tcp_what = what(op->tcp_srv);
        const std::string details =
            tls_what == tcp_what || negative(op->tls_srv) || not_offered(op->tls_srv)
                ? "SRV lookup: " + tcp_what
                : "_xmpps-server SRV: " + tls_what + "; _xmpp-server SRV: " + tcp_what;
        return deliver(op->done, failed("cannot resolve " + d + ": " + details));
      }
      // RFC 6120 §3.2.1 step 5 / §3.2.2: the domain's own addresses on the default port, also
      // when the server answered the SRV query with an error (some middleboxes reject SRV).
      const std::uint16_t port = options.default_port;
      const std::string no_record =
          (srv_failed ? "no A/AAAA record for " : "no SRV or A/AAAA record for ") + d;
      const std::string note = srv_failed ? "; SRV lookup: " + what(op->tcp_srv) : "";
      return lookup_host(
          d,
          [op, port, no_record, note](const HostAnswer& h) {
            deliver(op->done, host_resolution(op->domain, port, h, no_record, note));
          },
          hurry(*op));
    }
    // XEP-0368 §2: _xmpps-server records first among equal priorities.
    std::size_t i = 0, j = 0;
    while (i < tls.size() || j < tcp.size()) {
      if (j == tcp.size() || (i < tls.size() && tls[i].priority <= tcp[j].priority)) {
        op->records.push_back(Ordered{tls[i++], true});
      } else {
        op->records.push_back(Ordered{tcp[j++], false});
      }
    }
    for (const auto& o : op->records) op->hosts.try_emplace(o.record.target);
    op->pending = static_cast<int>(op->hosts.size()) + 1;
    // Copy the names: the callbacks may run right away and touch op->hosts.
    std::vector<std::string> targets;
    for (const auto& [target, unused] : op->hosts) targets.push_back(target);
    const std::string why = hurry(*op);
    for (const auto& target : targets) {
      lookup_host(
          target,
          [this, op, target](const HostAnswer& h) {
            op->hosts[target] = h;
            targets_step(op);
          },
          why);
    }
    targets_step(op);
  }

  void targets_step(const std::shared_ptr<ServerOp>& op) {
    if (--op->pending > 0) return;
    Resolution r;
    std::string problems;
    std::set<std::string> reported;
    for (const auto& o : op->records) {
      const HostAnswer& h = op->hosts[o.record.target];
      if (is_shutdown(h)) return deliver(op->done, failed(kShutdownText));
      const std::size_t before = r.endpoints.size();
      append_addresses(r.endpoints, o.record.target, h, o.record.port, o.direct_tls, true);
      if (r.endpoints.size() == before && h.aaaa.addresses.empty() && h.a.addresses.empty() &&
          reported.insert(o.record.target).second) {
        problems += (problems.empty() ? "" : "; ") + std::string("no address for SRV target ") +
                    o.record.target + " (" + host_details(h) + ")";
      }
    }
    if (r.endpoints.empty()) r.error = op->domain + ": " + problems;
    deliver(op->done, std::move(r));
  }

  Options options;
  std::mt19937 rng;
  ares_channel channel = nullptr;
  std::string servers_text;
  dns::Servers servers;  // for error texts
  int wake_fd = -1;
  std::thread thread;

  std::mutex mutex;
  std::deque<Task> queue;       // guarded by mutex
  bool stop_requested = false;  // guarded by mutex
  bool closed = false;          // guarded by mutex: the loop has ended

  // Resolver thread only.
  bool stopping = false;
  bool self_owned = false;
  std::map<ares_socket_t, short> sockets;
  std::set<Query*> in_flight;      // until c-ares calls back
  std::map<Key, Query*> joinable;  // not answered yet
  dns::AnswerCache answers;
};

Resolver::Resolver(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Resolver::~Resolver() {
  if (!impl_) return;
  impl_->request_stop();
  if (std::this_thread::get_id() == impl_->thread.get_id()) {
    // Destroyed from a result callback: the loop finishes (and frees itself) once it returns.
    impl_->self_owned = true;
    impl_->thread.detach();
    static_cast<void>(impl_.release());
    return;
  }
  impl_->thread.join();
}

void Resolver::resolve_server(const std::string& domain, std::function<void(Resolution)> done) {
  Impl* impl = impl_.get();
  Impl::Task task = [impl, domain, done = std::move(done)]() mutable {
    impl->start_server(domain, std::move(done));
  };
  if (!impl->post(task)) task();  // loop already ended: completes as shut down
}

void Resolver::resolve_host(const std::string& host, std::uint16_t port,
                            std::function<void(Resolution)> done) {
  Impl* impl = impl_.get();
  Impl::Task task = [impl, host, port, done = std::move(done)]() mutable {
    impl->start_host(host, port, std::move(done));
  };
  if (!impl->post(task)) task();
}

void Resolver::clear_cache() {
  Impl* impl = impl_.get();
  Impl::Task task = [impl] { impl->answers.clear_fresh(); };
  impl->post(task);
}

}  // namespace waddle::s2s
