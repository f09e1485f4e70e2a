// The pool's test fixture: the pool on an in-process io_context with a fake connector, a
// clock advanced by hand (virtual time: each test takes milliseconds) and a real router whose
// local handler captures the bounces.
#pragma once

#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/duration.h"
#include "metrics/metrics.h"
#include "router/router.h"
#include "s2s/admission.h"
#include "s2s/dialback.h"
#include "s2s/pool.h"
#include "s2s/wire.h"
#include "s2s_fakes.h"
#include "xml/stanza.h"

namespace waddle::s2s::testing {

// Stanzas routed to the local domains: here, the bounces.
class Inbox : public router::LocalHandler {
 public:
  void to_local(xml::Element stanza) override { stanzas.push_back(std::move(stanza)); }
  std::vector<xml::Element> stanzas;
};

// The text of a bounce's error.
// The bodies of the messages written on `ch`, in order.
inline std::vector<std::string> bodies(const FakeChannel& ch) {
  std::vector<std::string> out;
  for (const auto& s : ch.sent) {
    auto at = s.find("<body>");
    if (at == std::string::npos) continue;
    auto end = s.find("</body>", at);
    out.push_back(s.substr(at + 6, end - at - 6));
  }
  return out;
}

inline std::string error_text(const xml::Element& bounce) {
  const xml::Element* error = bounce.child("error");
  return error ? error->child_text("text") : std::string();
}

class PoolTest : public ::testing::Test {
 protected:
  PoolTest() {
    using namespace std::chrono_literals;
    config_.connect_timeout = 10s;
    config_.idle_timeout = 300s;
    config_.ping_interval = 60s;
    config_.retry = {2, 1s, 30s, 2.0, 0.0};  // no jitter: the exact schedule
    router_.set_local_handler(&inbox_);
  }
  ~PoolTest() override {
    // Every coroutine ends before the parts it uses go.
    if (pool_) {
      pool_->stop();
      run();
      advance(std::chrono::seconds(10));  // streams waiting for a last acknowledgement close
    }
  }

  Pool& pool() {
    if (!pool_) {
      admission_ = std::make_unique<Admission>(config_);
      pool_ = std::make_unique<Pool>(config_, io_.get_executor(), time_, connector_, router_,
                                     *admission_, keys_, live_, &metrics_);
    }
    return *pool_;
  }

  // Runs every handler that is ready (bounded: a loop here would be a bug).
  void run() {
    for (int i = 0; i < 10000; ++i) {
      io_.restart();
      if (io_.poll() == 0) return;
    }
    FAIL() << "the io_context never went idle";
  }
  void advance(std::chrono::milliseconds d) {
    time_.advance(d);
    run();
  }

  void send(const std::string& from, const std::string& to, const std::string& body = "hi") {
    xml::Element m("message", "jabber:server");
    m.set_attr("from", from).set_attr("to", to).set_attr("type", "chat");
    m.add_child("body", "jabber:server").add_text(body);
    pool().send(std::move(m));
    run();
  }

  std::string metric(const std::string& series) {
    const std::string text = registry_.render();
    auto at = text.find(series + " ");
    if (at == std::string::npos) return "absent";
    auto end = text.find('\n', at);
    return text.substr(at + series.size() + 1, end - at - series.size() - 1);
  }

  // The peer accepts (or refuses) a multiplexing request for `local` on `channel`.
  void answer(FakeChannel& channel, const std::string& local, const std::string& type,
              const std::string& from = "r.test") {
    channel.push("<db:result from='" + from + "' to='" + local + "' type='" + type + "'/>");
    run();
  }

  boost::asio::io_context io_;
  ManualTimeSource time_{io_};
  FakeConnector connector_{io_};
  core::S2sConfig config_;
  router::Router router_{{"a.test", "b.test", "c.test"}};
  Inbox inbox_;
  metrics::Registry registry_;
  metrics::S2sMetrics metrics_{registry_, 10};
  DialbackKeys keys_{"secret", router_, nullptr};
  core::LiveCount live_;  // links connecting or connected
  std::unique_ptr<Admission> admission_;
  std::unique_ptr<Pool> pool_;
};

}  // namespace waddle::s2s::testing
