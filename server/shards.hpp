// The shards as the service sees them: one connection pool and one health record per shard, and a
// probe loop per shard that finds down, hung and recovered shards (like Boost.Redis's async_run:
// callers only ask for connections; the loop owns detect -> mark down -> recover).
//
// Isolation: each shard has its own pool, wait queue and deadlines, so a hung or crashed shard
// only ever costs its own keys. While a shard is down its requests fail at once.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"
#include "ring/ring.hpp"
#include "shard_health.hpp"

namespace shardurl {

namespace pgasync {
class Lease;
struct Error;
}  // namespace pgasync

/// A failure that is not the caller's fault: the owning shard could not answer.
struct StoreError {
  enum class Kind {
    shard_unavailable,  // down, refused, lost the connection: 503
    shard_overloaded,   // its wait queue is full: 503 at once (load shedding)
    shard_timeout,      // did not answer within the query deadline: 504
    internal,           // the shard answered with an error shardurl does not expect: 500
  } kind = Kind::internal;
  std::string shard;   // the shard's name, for the client and the log
  std::string detail;  // for the log only: it can hold server internals
};

template <class T>
using StoreResult = boost::system::result<T, StoreError>;

[[noreturn]] void throw_exception_from_error(const StoreError& e, const boost::source_location&);

class Shards {
 public:
  /// One pool per ring node, in ring order, on `executor` (which must run on one thread).
  /// Every pooled session runs `session_script` when it opens (see pgasync::PoolConfig).
  Shards(boost::asio::any_io_executor executor, const Config& config, const ring::Ring& ring,
         std::string session_script = {});
  ~Shards();
  Shards(const Shards&) = delete;
  Shards& operator=(const Shards&) = delete;

  /// Starts one probe loop per shard. Transitions are logged once each.
  void start();

  /// Stops the probes and closes every pool: later acquire() calls fail at once.
  void close() noexcept;

  /// A connection to shard `i`, waiting at most timeouts.pool_wait_ms. Fails at once when the shard
  /// is known to be down or its wait queue is full.
  boost::asio::awaitable<StoreResult<pgasync::Lease>> acquire(std::size_t i);

  /// Why shard `i` cannot take a statement now (it is known to be down), or std::nullopt.
  [[nodiscard]] std::optional<StoreError> refusal(std::size_t i) const;

  /// The deadline for a statement started now.
  [[nodiscard]] std::chrono::steady_clock::time_point query_deadline() const noexcept;

  /// Turns a statement's failure on shard `i` into a StoreError, and takes the shard down when the
  /// failure was at the connection level (see pgasync::is_fatal) or a timeout.
  StoreError failed(std::size_t i, const pgasync::Error& error);

  [[nodiscard]] std::size_t size() const noexcept;
  [[nodiscard]] const std::string& name(std::size_t i) const noexcept;
  [[nodiscard]] const ShardHealth& health(std::size_t i) const noexcept;

 private:
  struct Shard;
  boost::asio::awaitable<void> probe_loop(std::size_t i);
  void log_transition(std::size_t i);

  boost::asio::any_io_executor executor_;
  TimeoutConfig timeouts_;
  std::vector<std::unique_ptr<Shard>> shards_;
  bool closed_ = false;
};

}  // namespace shardurl
