// When is a routed stanza safe? route() hands most stanzas on before it returns (written to a
// local session, queued for the next hop, bounced). Some handlers finish later: storing a
// message offline is work on the storage thread. A receiver that acknowledges stanzas (XEP-0198
// on server links) must not acknowledge one before that work is done, or a crash in between
// would lose a stanza the sender believes delivered.
//
// The receiver routes each stanza inside a Handling::Scope. A handler that defers work takes
// Handling::hold() and keeps it until the work is done; the stanza counts as handled once the
// route() call has returned and every hold taken during it has been released. Outside a scope,
// hold() is empty and costs nothing; inside one, only the first hold allocates.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <set>

namespace waddle::router {

class Handling {
 public:
  // Stanzas numbered from 1 in arrival order; handled() is the highest number up to which
  // every stanza has been handled (the XEP-0198 'h' a receiver may send).
  Handling() = default;
  Handling(const Handling&) = delete;
  Handling& operator=(const Handling&) = delete;

  std::uint64_t received() const { return received_; }
  std::uint64_t handled() const { return pending_.empty() ? received_ : *pending_.begin() - 1; }
  // Called when handled() has grown because deferred work finished.
  void on_progress(std::function<void()> f) { on_progress_ = std::move(f); }

  // While alive, the stanza being routed is the next one of `handling`'s stanzas.
  class Scope {
   public:
    explicit Scope(const std::shared_ptr<Handling>& handling);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    friend class Handling;
    std::shared_ptr<Handling> handling_;
    std::uint64_t seq_;
    std::shared_ptr<void> hold_;
    Scope* outer_;
  };

  // Handling that continues later, outside the stanza's scope (after waiting for a lookup),
  // runs inside a Resume with the hold it kept: hold() then returns that hold, so the
  // handlers it calls keep the stanza held too. Scopes opened inside take precedence.
  class Resume {
   public:
    explicit Resume(std::shared_ptr<void> hold);
    ~Resume();
    Resume(const Resume&) = delete;
    Resume& operator=(const Resume&) = delete;

   private:
    friend class Handling;
    std::shared_ptr<void> hold_;
    Scope* scope_;
    Resume* outer_;
  };

  // A hold on the stanza being routed in the current scope, or of the current Resume (empty
  // outside both).
  static std::shared_ptr<void> hold();

 private:
  void done(std::uint64_t seq);
  std::uint64_t received_ = 0;
  std::set<std::uint64_t> pending_;  // stanzas with deferred work still running
  std::function<void()> on_progress_;
};

}  // namespace waddle::router
