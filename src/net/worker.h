// Runs blocking work (SQLite, password hashing) on a dedicated thread and resumes the
// calling coroutine on its own executor: reactor threads never block (ARCHITECTURE.md #3).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <exception>
#include <optional>
#include <type_traits>

#include "storage/storage.h"

namespace waddle::net {

class Worker {
 public:
  // One thread: the storage object is used by one thread at a time, in submission order.
  explicit Worker(storage::Storage& storage) : storage_(storage), pool_(1) {}
  ~Worker() { stop(); }

  // Runs f(storage) on the worker thread; rethrows its exception in the caller.
  template <class F>
  auto run(F f) -> boost::asio::awaitable<std::invoke_result_t<F&, storage::Storage&>> {
    using R = std::invoke_result_t<F&, storage::Storage&>;
    static_assert(!std::is_void_v<R>, "return a value from storage work");
    namespace asio = boost::asio;
    auto ex = co_await asio::this_coro::executor;
    std::optional<R> result;
    std::exception_ptr error;
    co_await asio::async_initiate<const asio::use_awaitable_t<>&, void()>(
        [&](auto handler) {
          asio::post(pool_, [&, ex, handler = std::move(handler)]() mutable {
            try {
              result.emplace(f(storage_));
            } catch (...) {
              error = std::current_exception();
            }
            asio::post(ex, std::move(handler));
          });
        },
        asio::use_awaitable);
    if (error) std::rethrow_exception(error);
    co_return std::move(*result);
  }

  // Waits for queued work to finish; later run() calls are not executed.
  void stop() {
    if (!stopped_) {
      stopped_ = true;
      pool_.join();
    }
  }

 private:
  storage::Storage& storage_;
  boost::asio::thread_pool pool_;
  bool stopped_ = false;
};

}  // namespace waddle::net
