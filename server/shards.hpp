// The shards as the service sees them: per shard one connection pool, one health record and one
// probe loop that finds down, hung and recovered shards (like Boost.Redis's async_run: callers only
// ask for connections; the loop owns detect -> mark down -> recover).
//
// Each shard lives on one worker thread, its home (shard i on worker i mod workers): its pool,
// health, probe and statement queue (batcher.hpp) are only touched there, so they need no lock,
// and a state change is seen, and logged, once. Other threads read a shard's status (for /readyz)
// through a small locked snapshot.
//
// Isolation: each shard has its own pool, queue and deadlines, so a hung or crashed shard only
// ever costs its own keys. While a shard is down its requests fail at once.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <chrono>
#include <memory>
#include <mutex>
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
    shard_timeout,      // the request's deadline passed, or the shard hung: 504
    internal,           // the shard refused this statement with an error shardurl does not expect: 500
    stale,              // the shard serves a newer ring than the statement was routed by (SU001)
    moving,             // the link is moving to another shard right now (SU002): ask again shortly
  } kind = Kind::internal;
  std::string shard;   // the shard's name, for the client and the log
  std::string detail;  // for the log only: it can hold server internals (SQLSTATE and message)
};
inline constexpr std::size_t store_error_kinds = 6;  // StoreError::Kind's values, 0 to 5

/// The kind as /metrics names it: unavailable, overloaded, timeout, statement, stale, moving.
std::string_view to_string(StoreError::Kind kind) noexcept;

template <class T>
using StoreResult = boost::system::result<T, StoreError>;

[[noreturn]] void throw_exception_from_error(const StoreError& e, const boost::source_location&);

/// True when `error` says a named prepared statement is missing from the session that runs it, or
/// already there in one that opens (26000, 42P05): the sessions that ran the PREPAREs are not the
/// ones running the statements, as behind a transaction-mode pooler.
bool prepared_statement_lost(const pgasync::Error& error) noexcept;

/// What a probe last found about the rows a shard holds.
enum class TutorialIds {
  unknown,  // not probed yet: a create must look for the URL's tutorial id on this shard
  absent,   // initdb found no row the tutorial stored under its derived 5-character id
  present,  // it found some
};

/// A shard's state as any thread may read it.
struct ShardStatus {
  ShardState state = ShardState::unknown;
  std::string error;  // why it is down
  std::chrono::steady_clock::time_point since{};
};

/// What a shard's probe last read of the cluster metadata it keeps (shardurl_meta).
struct ShardMeta {
  std::uint64_t ring_version = 0;
  std::string topology;  // the ring of ring_version (Topology::to_json), empty for version 0
  std::string move;      // a reshard in progress (docs/resharding.md), empty when none
};

class Shards {
 public:
  /// The most shards one server knows of over its life (those of every ring it has served).
  static constexpr std::size_t capacity = 256;

  /// Called on a shard's home thread after each probe that read its metadata.
  using MetaListener = std::function<void(std::size_t slot, const ShardMeta& meta)>;

  /// One shard per `config.shards` entry, in that order (slots 0, 1, ...); shard i's home is
  /// homes[i % homes.size()], whose io_context must run on one thread. Every pooled session runs
  /// `session_script` when it opens (the repository's PREPAREs), unless the shard sends unnamed
  /// statements (pool_mode transaction, or a pooler found on the way: see
  /// use_unnamed_statements). `instance` names this server in the shards' pg_stat_activity.
  Shards(std::vector<boost::asio::any_io_executor> homes, const Config& config,
         std::string session_script, std::string instance, MetaListener on_meta = {});
  ~Shards();
  Shards(const Shards&) = delete;
  Shards& operator=(const Shards&) = delete;

  /// Starts each shard's probe loop on its home. State changes are logged once each.
  void start();

  /// Adds a shard (one that a newer ring names) and, once started, starts its probe; returns its
  /// slot. Only ever called from one thread; the slot is valid on every thread once published to
  /// them (through a Topology posted to each worker).
  std::size_t add(const ShardConfig& shard);

  /// The slot of the shard named `name`, if this server knows it.
  [[nodiscard]] std::optional<std::size_t> slot_of(std::string_view name) const;

  /// Probes shard `i` now rather than at its next interval (a newer ring was announced). Any thread.
  void probe_now(std::size_t i);

  /// The ring version this server serves, shown in its sessions' application_name so that a
  /// reshard can see which instances follow (docs/resharding.md). Any thread.
  void set_ring_version(std::uint64_t version) noexcept;

  /// Stops the probes and closes every pool, each on its home thread; later acquire() calls fail.
  /// Callable from any thread.
  void close();

  [[nodiscard]] std::size_t size() const noexcept;
  [[nodiscard]] const std::string& name(std::size_t i) const noexcept;
  [[nodiscard]] const ShardConfig& config(std::size_t i) const noexcept;
  [[nodiscard]] const boost::asio::any_io_executor& home(std::size_t i) const noexcept;

  // --- Any thread.

  [[nodiscard]] ShardStatus status(std::size_t i) const;
  [[nodiscard]] TutorialIds tutorial_ids(std::size_t i) const noexcept;
  /// The ring changed: rows the tutorial left may sit on other shards now, so every shard counts
  /// as unknown again until its next probe.
  void forget_tutorial_ids() noexcept;

  // --- Only on shard i's home thread.

  /// A connection to shard `i`, waiting at most timeouts.pool_wait_ms. Fails at once when the shard
  /// is known to be down or its wait queue is full.
  boost::asio::awaitable<StoreResult<pgasync::Lease>> acquire(std::size_t i);

  /// Why shard `i` cannot take a statement now (it is known to be down), or std::nullopt.
  /// (pgasync errors with SQLSTATE SU001 and SU002 become StoreError::Kind::stale and moving.)
  [[nodiscard]] std::optional<StoreError> refusal(std::size_t i) const;

  /// The deadline for a pipeline started now (timeouts.query_ms): a shard that does not answer
  /// within it is taken down as hung.
  [[nodiscard]] std::chrono::steady_clock::time_point query_deadline() const noexcept;

  /// Turns a failure on shard `i` into a StoreError. The shard is taken down only when the failure
  /// concerns the whole server (pgasync::is_server_unavailable) or the pipeline's deadline passed:
  /// a statement's own error (a constraint, a missing prepared statement, ...) leaves it up.
  StoreError failed(std::size_t i, const pgasync::Error& error);

  /// Shard `i`'s pool now: sessions open (or opening), and of those, idle ones.
  struct PoolStats {
    std::size_t open = 0;
    std::size_t idle = 0;
  };
  [[nodiscard]] PoolStats pool_stats(std::size_t i) const noexcept;

  /// Whether shard `i`'s statements go out as named prepared statements (else unnamed).
  [[nodiscard]] bool prepared_statements(std::size_t i) const noexcept;

  /// Sends shard `i`'s statements unnamed from now on, and opens sessions without the PREPARE
  /// script: a transaction-mode pooler was found on the way (`why`), which hands each transaction
  /// whatever server session it likes, so named statements come and go. Logged once.
  void use_unnamed_statements(std::size_t i, const std::string& why);

  /// connect_ms, query_ms and pool_wait_ms for statements and sessions from now on (a reload).
  /// Callable from any thread.
  void set_timeouts(const TimeoutConfig& timeouts);

 private:
  struct Shard;
  boost::asio::awaitable<void> probe_loop(std::size_t i);
  void publish(std::size_t i);

  std::vector<boost::asio::any_io_executor> homes_;
  // Read on every shard's home thread, changed by set_timeouts() from the main one.
  std::atomic<std::uint32_t> connect_ms_;
  std::atomic<std::uint32_t> query_ms_;
  std::atomic<std::uint32_t> pool_wait_ms_;
  HealthPolicy policy_;
  std::string session_script_;
  std::size_t pool_size_;
  std::string instance_;
  MetaListener on_meta_;
  std::array<std::unique_ptr<Shard>, capacity> shards_;
  std::atomic<std::size_t> count_{0};
  std::atomic<std::uint64_t> ring_version_{0};
  std::atomic<bool> started_{false};
  std::atomic<bool> closed_{false};
};

}  // namespace shardurl
