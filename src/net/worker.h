// Runs blocking work (SQLite, password hashing) on a dedicated thread and resumes the
// calling coroutine on its own executor: reactor threads never block (ARCHITECTURE.md #3).
// Generic over what the work is given (the server runs it with storage::Storage), so that the
// network layer does not depend on storage.
#pragma once

#include <pthread.h>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <exception>
#include <memory>
#include <string>
#include <type_traits>

namespace waddle::net {

template <class Context>
class Worker {
 public:
  // One thread: the context is used by one thread at a time, in submission order. `name`
  // (at most 15 characters) names the thread for top -H, ps and perf.
  explicit Worker(Context& context, std::string name = "worker") : context_(context), pool_(1) {
    boost::asio::post(pool_, [name = std::move(name)] { name_this_thread(name); });
  }
  ~Worker() { stop(); }

  // Runs f(context) on the worker thread and resumes the awaiting coroutine on its own
  // executor; an exception from f is rethrown there. Not a coroutine itself: GCC 12
  // mishandles closures passed by value into coroutine frames (asio's initiation is one), so
  // `f` travels behind a shared_ptr.
  template <class F>
  auto run(F f) -> boost::asio::awaitable<std::invoke_result_t<F&, Context&>> {
    using R = std::invoke_result_t<F&, Context&>;
    static_assert(!std::is_void_v<R>, "return a value from the work");
    static_assert(std::is_default_constructible_v<R>, "work results must be default-constructible");
    namespace asio = boost::asio;
    auto task = std::make_shared<F>(std::move(f));
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(std::exception_ptr, R)>(
        [this](auto handler, std::shared_ptr<F> work) {
          auto guard = asio::make_work_guard(asio::get_associated_executor(handler));
          asio::post(pool_, [this, work = std::move(work), handler = std::move(handler),
                             guard = std::move(guard)]() mutable {
            std::exception_ptr error;
            R result{};
            try {
              result = (*work)(context_);
            } catch (...) {
              error = std::current_exception();
            }
            work.reset();  // destroy the caller's closure here, not on the reactor
            auto target = guard.get_executor();
            asio::post(target,
                       [handler = std::move(handler), error, result = std::move(result)]() mutable {
                         std::move(handler)(error, std::move(result));
                       });
          });
        },
        asio::use_awaitable, std::move(task));
  }

  // Waits for queued work to finish; later run() calls are not executed.
  void stop() {
    if (!stopped_) {
      stopped_ = true;
      pool_.join();
    }
  }

 private:
  static void name_this_thread(const std::string& name) {
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
  }

  Context& context_;
  boost::asio::thread_pool pool_;
  bool stopped_ = false;
};

}  // namespace waddle::net
