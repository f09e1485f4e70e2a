// Steps of the S2S scripts (see s2s_script.h): what a scripted connection sends and expects,
// and what is asked of or observed on the service.
#include <chrono>

#include "core/namespaces.h"
#include "s2s/auth.h"
#include "s2s_script.h"
#include "xml/stanza.h"

namespace waddle::testing {
namespace {

using namespace std::chrono_literals;

// How long a service-side expectation may take to come true.
constexpr auto kExpectDeadline = 2s;

std::string describe(const xml::StreamEvent& ev) {
  switch (ev.kind) {
    case xml::StreamEvent::Kind::kStreamOpen:
      return "a stream header";
    case xml::StreamEvent::Kind::kStreamClose:
      return "</stream:stream>";
    case xml::StreamEvent::Kind::kElement:
      return ev.element.str();
  }
  return "?";
}

// The next event must be an element matching `text`.
std::string expect_element(Peer& p, const std::string& text, bool exact) {
  xml::Element want;
  try {
    want = pattern(text);
  } catch (const std::exception& e) {
    return e.what();
  }
  auto ev = p.next();
  if (!ev) return "nothing came: " + p.problem();
  if (ev->kind != xml::StreamEvent::Kind::kElement || !matches(want, ev->element, exact))
    return "got " + describe(*ev);
  return {};
}

// </stream:stream>, then the end of the connection (not merely a quiet one).
std::string expect_end(Peer& p) {
  auto ev = p.next();
  if (!ev) return "no </stream:stream>: " + p.problem();
  if (ev->kind != xml::StreamEvent::Kind::kStreamClose) return "got " + describe(*ev);
  if (auto more = p.next()) return "got " + describe(*more) + " after </stream:stream>";
  if (!p.at_eof()) return "the connection stays open: " + p.problem();
  return {};
}

Step on(const std::string& role, std::string what, std::function<std::string(Peer&)> f) {
  return {role + ": " + what, role, [role, f](Scene& s) { return f(s.peer(role)); }};
}

}  // namespace

Script operator+(Script a, const Script& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::size_t transport_steps(const Script& script) {
  std::size_t n = 0;
  for (const auto& s : script) n += s.peer.empty() ? 0 : 1;
  return n;
}

// The failing transport makes the connection, then cuts it.
Step Role::connect(bool direct_tls) const {
  return {name_ + ": connect", name_,
          [n = name_, direct_tls](Scene& s) {
            auto& p = s.peer(n);
            return p.connect(direct_tls ? s.direct_endpoint : s.endpoint) ? std::string()
                                                                          : p.problem();
          },
          [n = name_, direct_tls](Scene& s, Fault f) {
            s.peer(n).connect(direct_tls ? s.direct_endpoint : s.endpoint);
            s.peer(n).cut(f == Fault::kReset);
          }};
}

Step Role::accept() const {
  return {name_ + ": accept", name_,
          [n = name_](Scene& s) {
            auto& p = s.peer(n);
            return p.accept(s.remote_listener) ? std::string() : p.problem();
          },
          [n = name_](Scene& s, Fault f) {
            s.peer(n).accept(s.remote_listener);
            s.peer(n).cut(f == Fault::kReset);
          }};
}

Step Role::send(Text xml) const {
  return {name_ + ": send", name_, [n = name_, xml](Scene& s) {
            auto& p = s.peer(n);
            return p.send(xml(s)) ? std::string() : p.problem();
          }};
}

Step Role::expect(Text text) const {
  return {name_ + ": expect", name_,
          [n = name_, text](Scene& s) { return expect_element(s.peer(n), text(s), false); }};
}

Step Role::expect_exact(Text text) const {
  return {name_ + ": expect exactly", name_,
          [n = name_, text](Scene& s) { return expect_element(s.peer(n), text(s), true); }};
}

Step Role::expect_header(std::string from, std::string to) const {
  return on(name_, "expect a stream header", [from, to](Peer& p) -> std::string {
    auto ev = p.next();
    if (!ev) return "nothing came: " + p.problem();
    if (ev->kind != xml::StreamEvent::Kind::kStreamOpen) return "got " + describe(*ev);
    const auto& h = ev->element;
    if (!h.is("stream", ns::kStream) || ev->default_ns != ns::kServer)
      return "not a jabber:server stream";
    if (h.attr("version") != "1.0") return "version '" + std::string(h.attr("version")) + "'";
    if (!from.empty() && h.attr("from") != from)
      return "from '" + std::string(h.attr("from")) + "'";
    if (!to.empty() && h.attr("to") != to) return "to '" + std::string(h.attr("to")) + "'";
    return {};
  });
}

Step Role::expect_stream_error(std::string condition) const {
  return on(name_, "expect stream error " + condition, [condition](Peer& p) -> std::string {
    auto ev = p.next();
    if (!ev) return "nothing came: " + p.problem();
    if (ev->kind != xml::StreamEvent::Kind::kElement || !ev->element.is("error", ns::kStream) ||
        !ev->element.child(condition, ns::kStreams))
      return "got " + describe(*ev);
    return expect_end(p);
  });
}

Step Role::expect_closed() const {
  return on(name_, "expect the stream to close", [](Peer& p) { return expect_end(p); });
}

Step Role::expect_disconnect() const {
  return on(name_, "expect the connection to end", [](Peer& p) -> std::string {
    auto ev = p.next();
    if (ev && ev->kind == xml::StreamEvent::Kind::kStreamClose) ev = p.next();
    if (ev) return "got " + describe(*ev);
    return p.at_eof() ? std::string() : "the connection stays open: " + p.problem();
  });
}

Step Role::start_tls(Cred cred, std::string sni) const {
  return {name_ + ": TLS", name_, [n = name_, cred, sni](Scene& s) {
            auto& p = s.peer(n);
            bool ok = p.initiated() ? p.start_tls_client(*s.env.client_tls_.at(cred), sni)
                                    : p.start_tls_server(*s.env.server_tls_.at(cred));
            return ok ? std::string() : p.problem();
          }};
}

Step Role::restart() const {
  return {name_ + ": new stream", {}, [n = name_](Scene& s) {
            s.peer(n).restart();
            return std::string();
          }};
}

Step Role::cut() const {
  return {name_ + ": cut the connection", {}, [n = name_](Scene& s) {
            s.peer(n).cut();
            return std::string();
          }};
}

Step service_send(std::string from, std::string to, std::string id) {
  return {"service: send " + id + " to " + to, {}, [from, to, id](Scene& s) {
            xml::Element m("message", std::string(ns::kClient));
            m.set_attr("from", "user@" + from + "/r");
            m.set_attr("to", "user@" + to);
            m.set_attr("id", id);
            m.set_attr("type", "chat");
            m.add_child("body", std::string(ns::kClient)).add_text("hello " + id);
            s.sent(id, to);
            s.service->send(std::move(m));
            return std::string();
          }};
}

Step expect_delivered(Text text) {
  return {"service: expect delivered", {}, [text](Scene& s) -> std::string {
            xml::Element want;
            try {
              want = pattern(text(s));
            } catch (const std::exception& e) {
              return e.what();
            }
            auto found = [&] {
              for (const auto& e : s.recorder.got)
                if (matches(want, e, false)) return true;
              return false;
            };
            if (pump(s.io, found, kExpectDeadline)) return {};
            std::string got;
            for (const auto& e : s.recorder.got) got += "\n  " + e.str();
            return "not delivered: " + want.str() + "; the router got:" + got;
          }};
}

Step expect_bounced(std::string id, std::string condition, std::string text) {
  return {"service: expect " + id + " bounced", {}, [id, condition, text](Scene& s) {
            const xml::Element* bounce = nullptr;
            auto found = [&] {
              for (const auto& e : s.recorder.got)
                if (e.attr("id") == id && e.attr("type") == "error") bounce = &e;
              return bounce != nullptr;
            };
            if (!pump(s.io, found, kExpectDeadline)) return id + " was not bounced";
            const xml::Element* err = bounce->child("error");
            if (!err || !err->child(condition, ns::kStanzas)) return "bounced as " + bounce->str();
            if (err->child_text("text", ns::kStanzas).find(text) == std::string::npos)
              return "the bounce does not say '" + text + "': " + bounce->str();
            return std::string();
          }};
}

Step expect_nothing_delivered() {
  return {"service: expect nothing delivered", {}, [](Scene& s) {
            std::string got;
            for (const auto& e : s.recorder.got) got += "\n  " + e.str();
            return got.empty() ? got : "the router got:" + got;
          }};
}

Step expect_no_connection() {
  return {"service: expect no connection to the remote servers", {}, [](Scene& s) {
            boost::asio::ip::tcp::socket pending(s.io);
            boost::system::error_code ec;
            s.remote_listener.non_blocking(true);
            s.remote_listener.accept(pending, ec);
            s.remote_listener.non_blocking(false);
            if (!ec) return std::string("the service connected to the remote servers");
            if (ec != boost::asio::error::would_block) return "accept failed: " + ec.message();
            return std::string();
          }};
}

Step expect_live_streams(std::size_t n) {
  return {"service: expect " + std::to_string(n) + " live streams", {}, [n](Scene& s) {
            if (pump(
                    s.io, [&] { return s.service->live_streams() == n; }, kExpectDeadline))
              return std::string();
            return "live_streams() is " + std::to_string(s.service->live_streams());
          }};
}

std::string header(const std::string& from, const std::string& to, const std::string& id) {
  std::string h = "<stream:stream xmlns='jabber:server' xmlns:stream='";
  h += ns::kStream;
  h += "' xmlns:db='jabber:server:dialback'";
  if (!from.empty()) h += " from='" + from + "'";
  if (!to.empty()) h += " to='" + to + "'";
  if (!id.empty()) h += " id='" + id + "'";
  return h + " version='1.0'>";
}

std::string message(const std::string& from, const std::string& to, const std::string& id) {
  return "<message from='" + from + "' to='" + to + "' id='" + id +
         "' type='chat'><body>scripted</body></message>";
}

std::string db(const std::string& name, const std::string& from, const std::string& to,
               const std::string& type, const std::string& id, const std::string& key) {
  std::string out = "<db:" + name;
  for (auto [attr, value] : {std::pair{"from", &from}, {"to", &to}, {"type", &type}, {"id", &id}})
    if (!value->empty()) out += std::string(" ") + attr + "='" + *value + "'";
  if (key.empty()) return out + "/>";
  return out + ">" + key + "</db:" + name + ">";
}

std::string sasl_auth(const std::string& mechanism, const std::string& payload) {
  return "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='" + mechanism + "'>" + payload +
         "</auth>";
}

std::string sasl_failure(const std::string& condition) {
  return "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><" + condition + "/></failure>";
}

std::string db_error(const std::string& condition, const std::string& text) {
  std::string out = "<db:result type='error'><error type='cancel'><" + condition + " xmlns='";
  out += ns::kStanzas;
  out += "'/>";
  if (!text.empty()) out += "<text xmlns='" + std::string(ns::kStanzas) + "'>" + text + "</text>";
  return out + "</error></db:result>";
}

Script open_with_tls(const Role& r, Cred cred, const std::string& from, const std::string& to) {
  return {r.connect(),
          r.send(header(from, to)),
          r.expect_header(to, from),
          r.expect_exact(kStartTlsRequired),
          r.send(kStartTls),
          r.expect_exact(kProceed),
          r.start_tls(cred, to),
          r.send(header(from, to)),
          r.expect_header(to, from)};
}

Script accept_with_tls(const Role& r, const std::string& local, Cred cred) {
  return {r.accept(),
          r.expect_header(local, kRemote),
          r.send(header(kRemote, local, "s1")),
          r.send(kStartTlsOffered),
          r.expect_exact(kStartTls),
          r.send(kProceed),
          r.start_tls(cred),
          r.expect_header(local, kRemote),
          r.send(header(kRemote, local, "s2"))};
}

std::string key(const std::string& receiving, const std::string& originating,
                const std::string& stream_id) {
  return s2s::dialback_key(kSecret, receiving, originating, stream_id);
}

}  // namespace waddle::testing
