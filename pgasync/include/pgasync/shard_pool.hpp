// A bounded pool of connections to one shard.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "pgasync/connection.hpp"
#include "pgasync/error.hpp"

namespace shardurl::pgasync {

/// How a ShardPool sizes itself. The defaults suit one shard behind one HTTP worker thread.
struct PoolConfig {
  /// Most sessions open at once (leased, idle, or being connected). PostgreSQL's max_connections
  /// is shared by every worker and shard client, so keep workers * max_size below it.
  std::size_t max_size = 8;

  /// Most acquire() calls allowed to wait for a connection; one more fails with pool_exhausted at
  /// once, so overload turns into fast errors instead of an unbounded queue. 0: never wait.
  std::size_t max_waiters = 1024;

  /// Longest a new session may take to open, its session_script included. It is its own bound,
  /// not capped by acquire()'s deadline: a slow connect (TLS, a remote shard) still completes and
  /// the session serves the next caller even when the one that started it stopped waiting.
  std::chrono::milliseconds connect_timeout{1000};

  /// Added to libpq's `options` for every session (see Connection::connect), e.g.
  /// "-c synchronous_commit=on".
  std::string session_options{};

  /// Run on every new session before it is leased (Connection::execute_script: one round trip,
  /// within connect_timeout), e.g. SQL PREPAREs. A session whose script fails is closed and the
  /// acquire fails with the script's error. ShardPool::set_session_script changes it for sessions
  /// opened later.
  std::string session_script{};
};

class ShardPool;
namespace detail {
struct PoolState;
}

/// A connection on loan from a ShardPool. Move-only; destroying it (or release()) gives the
/// connection back, or discards it when it is broken (see is_fatal), so the pool replaces it on a
/// later acquire. Must be destroyed on the pool's executor. It may outlive the ShardPool: the
/// connection is then simply closed.
class Lease {
 public:
  Lease(Lease&& other) noexcept;
  Lease& operator=(Lease&& other) noexcept;
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease() { release(); }

  Connection& operator*() noexcept { return *conn_; }
  Connection* operator->() noexcept { return &*conn_; }

  /// Returns the connection now; the Lease is empty afterwards. Idempotent.
  void release() noexcept;

 private:
  friend struct detail::PoolState;
  Lease(std::shared_ptr<detail::PoolState> pool, Connection conn) noexcept;
  std::shared_ptr<detail::PoolState> pool_;
  std::optional<Connection> conn_;
};

/// Up to PoolConfig::max_size sessions to the database `conninfo` names, opened lazily.
///
/// Threading: a ShardPool, its Leases and their Connections belong to the executor given at
/// construction (one pool per executor; that executor's io_context should run on one thread, see
/// Connection). Any number of acquire() calls may be outstanding, up to max_waiters waiting.
///
/// Replacement: a connection that became broken is discarded when its Lease ends; an idle one that
/// the server closed meanwhile (restart, idle timeout) is found by a non-blocking check in
/// acquire() and discarded there. Either way the freed slot goes to the next acquire, which
/// connects a new session, so no background task is needed.
///
/// Destruction closes the pool (see close()).
class ShardPool {
 public:
  ShardPool(boost::asio::any_io_executor ex, std::string conninfo, PoolConfig config = {});
  ShardPool(const ShardPool&) = delete;
  ShardPool& operator=(const ShardPool&) = delete;
  ~ShardPool();

  /// Leases a connection: an idle one if any, else a new one while below max_size, else waits in
  /// FIFO order for one to come back. Completes with:
  ///   pool_exhausted at once when max_waiters callers already wait;
  ///   timeout when `deadline` passes while waiting in line, or connect_timeout while connecting
  ///   (a connect under way is not cut short by `deadline`: see PoolConfig::connect_timeout);
  ///   connection_failed when a new session cannot be opened (the slot is freed for others);
  ///   cancelled when the caller cancels it (a waiting caller just leaves the queue);
  ///   pool_closed when the pool is or gets closed.
  boost::asio::awaitable<Result<Lease>> acquire(Deadline deadline);

  /// What sessions opened from now on run before they are leased (PoolConfig::session_script);
  /// sessions already open keep what they ran.
  void set_session_script(std::string script);

  /// How long sessions opened from now on may take to connect (PoolConfig::connect_timeout).
  void set_connect_timeout(std::chrono::milliseconds timeout);

  /// Closes idle connections and fails every waiter with pool_closed; later acquire() calls fail
  /// the same way. Leased connections are closed when their Leases end. Idempotent.
  void close() noexcept;

  /// Counters for metrics and tests.
  [[nodiscard]] std::size_t size() const noexcept;     // open or connecting sessions
  [[nodiscard]] std::size_t idle() const noexcept;     // sessions waiting in the pool
  [[nodiscard]] std::size_t waiting() const noexcept;  // acquire() calls queued
  [[nodiscard]] const PoolConfig& config() const noexcept;

 private:
  std::shared_ptr<detail::PoolState> state_;
};

}  // namespace shardurl::pgasync
