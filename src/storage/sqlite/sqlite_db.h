// The SQLite connection, prepared statements and transactions, as the storage classes use
// them (one thread at a time: the storage worker). Failures throw std::runtime_error.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace waddle::storage::sqlite {

inline constexpr int kBusyTimeoutMs = 5000;

// The connection and the path used in error messages.
class Database {
 public:
  explicit Database(std::string path) : path_(std::move(path)) {}
  ~Database() {
    if (db_ != nullptr) sqlite3_close_v2(db_);
  }
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  void open() {
    configure_once();
    const int rc =
        sqlite3_open_v2(path_.c_str(), &db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      // sqlite3_open_v2 may allocate a handle even on failure; it carries the message.
      const std::string message = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close_v2(db_);
      db_ = nullptr;
      fail(message);
    }
    sqlite3_extended_result_codes(db_, 1);
    check(sqlite3_busy_timeout(db_, kBusyTimeoutMs));
  }

  // Process-wide settings, before SQLite first initialises: no memory statistics (they take a
  // global mutex on every allocation SQLite makes, and nothing reads them).
  static void configure_once() {
    static const bool done = [] {
      sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);  // SQLITE_MISUSE if already initialised
      return true;
    }();
    (void)done;
  }

  [[noreturn]] void fail(std::string_view message) const {
    throw std::runtime_error("sqlite: " + path_ + ": " + std::string(message));
  }
  void check(int rc) const {
    if (rc != SQLITE_OK) fail(sqlite3_errmsg(db_));
  }
  void exec(const char* sql) const { check(sqlite3_exec(db_, sql, nullptr, nullptr, nullptr)); }

  sqlite3* handle() const { return db_; }

 private:
  std::string path_;
  sqlite3* db_ = nullptr;
};

// A prepared statement, reused for the life of the connection.
class Statement {
 public:
  Statement(const Database& db, const char* sql) : db_(&db) {
    db.check(sqlite3_prepare_v3(db.handle(), sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr));
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // One execution: bind, step, read columns; resets the statement when it goes away so the
  // next use starts clean and read locks are not held.
  class Run {
   public:
    explicit Run(Statement& s) : s_(s) {}
    ~Run() {
      sqlite3_reset(s_.stmt_);
      sqlite3_clear_bindings(s_.stmt_);
    }
    Run(const Run&) = delete;
    Run& operator=(const Run&) = delete;

    Run& text(int i, std::string_view v) {
      // A null pointer would bind NULL; an empty value is stored as "".
      const char* data = v.data() != nullptr ? v.data() : "";
      s_.db_->check(
          sqlite3_bind_text64(s_.stmt_, i, data, v.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
      return *this;
    }
    // The same without a copy: `v` must stay alive and unchanged until this run ends (for
    // values that outlive the statement's use, such as a batch being inserted).
    Run& text_kept(int i, std::string_view v) {
      const char* data = v.data() != nullptr ? v.data() : "";
      s_.db_->check(sqlite3_bind_text64(s_.stmt_, i, data, v.size(), SQLITE_STATIC, SQLITE_UTF8));
      return *this;
    }
    Run& blob(int i, std::string_view v) {
      // A zero-length blob, not NULL, for empty values (the columns are NOT NULL).
      s_.db_->check(v.empty()
                        ? sqlite3_bind_zeroblob(s_.stmt_, i, 0)
                        : sqlite3_bind_blob64(s_.stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT));
      return *this;
    }
    Run& integer(int i, std::int64_t v) {
      s_.db_->check(sqlite3_bind_int64(s_.stmt_, i, v));
      return *this;
    }

    // True while there is a row to read.
    bool step() {
      const int rc = sqlite3_step(s_.stmt_);
      if (rc == SQLITE_ROW) return true;
      if (rc == SQLITE_DONE) return false;
      s_.db_->fail(sqlite3_errmsg(s_.db_->handle()));
    }
    // Runs a statement that returns no rows.
    void done() {
      if (step()) s_.db_->fail("unexpected result row");
    }

    std::string column_text(int i) const {
      const auto* p = sqlite3_column_text(s_.stmt_, i);
      const int n = sqlite3_column_bytes(s_.stmt_, i);
      return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p), n);
    }
    std::string column_blob(int i) const {
      const void* p = sqlite3_column_blob(s_.stmt_, i);
      const int n = sqlite3_column_bytes(s_.stmt_, i);
      return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), n);
    }
    std::int64_t column_int(int i) const { return sqlite3_column_int64(s_.stmt_, i); }

   private:
    Statement& s_;
  };

  Run run() { return Run(*this); }

 private:
  const Database* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// BEGIN IMMEDIATE .. COMMIT; rolls back when left without commit() (early return or throw).
class Transaction {
 public:
  explicit Transaction(const Database& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }
  ~Transaction() {
    if (!done_) sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  void commit() {
    db_.exec("COMMIT");
    done_ = true;
  }

 private:
  const Database& db_;
  bool done_ = false;
};

}  // namespace waddle::storage::sqlite
