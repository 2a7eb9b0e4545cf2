// One PostgreSQL session driven by libpq in non-blocking mode, with every wait done by Asio.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "pgasync/error.hpp"
#include "pgasync/query_result.hpp"

struct pg_conn;  // libpq's PGconn

namespace shardurl::pgasync {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

/// One text-format parameter; std::nullopt is SQL NULL.
using Param = std::optional<std::string_view>;

/// Builds the parameter list for one call: `co_await conn.query(sql, params(id, url), deadline)`.
/// Use this (or any array/vector you own) rather than a braced list: GCC 12 rejects an
/// initializer_list temporary in a co_await expression ("array used as initializer").
template <class... Args>
std::array<Param, sizeof...(Args)> params(const Args&... args) {
  return {Param(args)...};
}

/// One statement of a pipeline and its parameters. With a `name`, the statement created under that
/// name with prepare() (or SQL PREPARE) runs; with an empty name, `sql` is sent as an unnamed
/// statement, parsed and planned afresh, which needs no session state (what a transaction-mode
/// pooler such as PgBouncer requires). Every view must stay alive until the pipeline's co_await
/// completes.
struct PipelineCall {
  std::string_view name;
  std::span<const Param> params;
  std::string_view sql = {};
};

/// An asynchronous notification (NOTIFY) on a channel this session LISTENs to.
struct Notification {
  std::string channel;
  std::string payload;
  int sender_pid = 0;  // the backend that sent it (this session's own for its own NOTIFYs)
};

/// A PostgreSQL connection.
///
/// Threading: a Connection belongs to the executor it was connected on. All its members must be
/// called from that executor (one thread, or one strand whose io_context runs on one thread; see
/// the note below), and at most one operation (query / prepare / execute_prepared) may be
/// outstanding at a time; a second one fails at once with Errc::busy and does not disturb the
/// first.
///
/// Ownership: the Connection owns libpq's PGconn and its socket. Asio only watches the socket for
/// readiness and never closes it; close() and the destructor release it from Asio, then PQfinish.
/// Arguments passed by view (sql, params, names) must stay alive until the co_await completes;
/// temporaries in the co_await's full expression are fine.
///
/// Deadlines and cancel: every operation takes an absolute deadline. When it passes, the operation
/// completes with Errc::timeout; when the caller cancels it through Asio's cancellation slots it
/// completes with Errc::cancelled. Either way the session may still owe us a reply, so the
/// Connection is marked broken and closed at once (no PQcancel: it blocks on a new socket). The
/// server notices the closed socket and abandons the statement on its own.
///
/// Broken: after any error for which is_fatal() holds, is_broken() is true and every later
/// operation fails with Errc::connection_lost without I/O. Destroy it (ShardPool does) and
/// connect a new one.
///
/// Single reactor thread: Asio's epoll reactor is edge-triggered and its async_wait does not look
/// at the socket first, so pgasync polls the socket once (non-blocking) before every wait. That
/// check is race-free only while no other thread runs the same io_context's reactor; with several
/// threads a readiness edge can in rare cases be missed and the operation ends at its deadline.
class Connection {
 public:
  using executor_type = boost::asio::any_io_executor;

  /// Opens a session. `conninfo` is libpq's "key=value ..." or URI form. A failure carries the
  /// server's SQLSTATE in its diagnostics when the server (or a pooler) sent one. Host names are resolved
  /// with Asio's asynchronous resolver and handed to libpq as hostaddr (every address of every
  /// host, tried in order), so libpq never blocks in DNS; `host` is kept for TLS and messages:
  /// with sslmode=verify-full libpq checks the server's certificate against the host NAME
  /// written in the conninfo, not the address it connected to. Every ssl* option is passed to
  /// libpq as written (libpq reads the certificate files it names during the connect).
  /// Unix-socket hosts and an explicit hostaddr are used as given. Hosts from a service file are
  /// not resolved here; do not use `service=` with host names.
  /// Fails with connection_failed (with libpq's message), timeout or cancelled.
  /// `session_options` is added to libpq's `options` (after any the conninfo sets): server
  /// settings for every session, such as "-c synchronous_commit=on".
  static boost::asio::awaitable<Result<Connection>> connect(executor_type ex, std::string conninfo,
                                                            Deadline deadline,
                                                            std::string session_options = {});

  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  /// Runs one statement with text-format parameters ($1, $2, ...) via the extended protocol, so
  /// `sql` holds exactly one statement. Completes with the statement's result, or:
  /// server_error (session still usable unless is_fatal), connection_lost, timeout, cancelled,
  /// busy, invalid_argument (more than 65535 parameters).
  boost::asio::awaitable<Result<QueryResult>> query(std::string_view sql,
                                                    std::span<const Param> params,
                                                    Deadline deadline);
  /// Creates the named prepared statement `name` on this session (parameter types inferred by the
  /// server). Prepared statements live as long as the session: a replacement connection has none,
  /// so callers prepare again after reconnecting. Same errors as query().
  boost::asio::awaitable<Result<void>> prepare(std::string_view name, std::string_view sql,
                                               Deadline deadline);

  /// Executes a statement created with prepare(). Same errors as query().
  /// Runs `sql`, which may hold several statements separated by ';', with the simple query
  /// protocol and no parameters: one round trip for a whole setup script (e.g. SQL PREPAREs, whose
  /// statements execute_prepared can then use). Results are discarded; the first error is returned.
  boost::asio::awaitable<Result<void>> execute_script(std::string_view sql, Deadline deadline);

  boost::asio::awaitable<Result<QueryResult>> execute_prepared(std::string_view name,
                                                               std::span<const Param> params,
                                                               Deadline deadline);
  /// Runs `calls` in libpq's pipeline mode: every statement is sent at once, followed by one Sync,
  /// so the whole batch costs one round trip and forms one implicit transaction that commits at
  /// the Sync. Completes only after that Sync's reply, i.e. after the commit.
  ///
  /// The outer Result fails when the session failed (connection_lost, timeout, cancelled, busy,
  /// protocol_error, or a fatal server error): then nothing is known about the commit. Otherwise
  /// it holds one Result per call, in order. When any statement fails with a server_error, the
  /// transaction is rolled back: that statement carries its error and every other one
  /// Errc::pipeline_aborted (skipped, or its effects rolled back), so callers may simply run those
  /// again. An empty `calls` completes at once with no results.
  boost::asio::awaitable<Result<std::vector<Result<QueryResult>>>> execute_pipeline(
      std::span<const PipelineCall> calls, Deadline deadline);

  /// Waits until at least one notification has arrived (after a LISTEN run with query()), or
  /// until `deadline`, and returns every notification received so far, oldest first: those that
  /// came with earlier replies and those that arrive now. At the deadline it completes with an
  /// empty vector: waiting for notifications is not a statement, so the session stays usable.
  /// Fails with connection_lost when the session ends, cancelled when the caller cancels (the
  /// session stays usable then too), busy while another operation runs. Notifications are
  /// delivered by the server in commit order of the transactions that sent them.
  boost::asio::awaitable<Result<std::vector<Notification>>> wait_notifications(Deadline deadline);

  /// The notifications that arrived with earlier replies, without waiting; oldest first.
  std::vector<Notification> take_notifications();

  /// Frees the notifications that arrived with earlier replies (a session that LISTENs to nothing
  /// can still get some behind a transaction-mode pooler).
  void discard_notifications() noexcept;

  /// True once a fatal error happened or close() was called.
  [[nodiscard]] bool is_broken() const noexcept;

  /// Forces the broken state, e.g. when the caller abandons a session mid-transaction.
  void mark_broken() noexcept;

  /// Whether an idle session is still alive, without a round trip: reads whatever the server sent
  /// unprompted (a FATAL before shutdown, EOF) and marks the connection broken if the session
  /// ended. Must not be called while an operation is outstanding.
  bool check_alive() noexcept;

  /// True while a transaction block is open or failed (BEGIN without COMMIT/ROLLBACK). ShardPool
  /// discards such a connection on release rather than hand a half-done transaction to the next
  /// user.
  [[nodiscard]] bool in_transaction() const noexcept;

  /// Closes the session now (a Terminate message if the socket takes it, then PQfinish).
  /// Idempotent. Must not be called while an operation is outstanding.
  void close() noexcept;

  [[nodiscard]] executor_type get_executor() const noexcept;

  /// libpq's handle, for read-only inspection (PQparameterStatus, PQbackendPID, ...). Do not run
  /// blocking libpq functions on it.
  [[nodiscard]] pg_conn* native_handle() const noexcept;

  struct Impl;

 private:
  explicit Connection(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardurl::pgasync
