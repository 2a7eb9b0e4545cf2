// Group statements: concurrent requests for one shard share a pooled session's round trip and its
// commit (libpq pipeline mode, see pgasync::Connection::execute_pipeline).
//
// Each shard has a queue on its home thread (shards.hpp) and up to pool.size drain loops. A
// statement submitted while a loop is free is sent at once, alone, so an idle service adds no
// delay. Under load every loop is busy and statements wait in the queue; the next loop to finish
// takes up to max_batch of them in one pipeline, which is one transaction: one round trip and one
// commit (one WAL flush) for the batch. Every statement is answered only after that commit. Every
// batch starts with Limits::head, so its commit is durable whatever the server's or the pooler's
// session settings are, and no statement runs on a shard that serves a newer ring than the one it
// was routed by.
//
// A pipeline is all-or-nothing. When one statement fails, the others are rolled back or skipped
// (pgasync::Errc::pipeline_aborted); they run again in the next pipeline, and only the failing one
// is answered with its error. Statements are sent in key order, so row locks are always taken in
// the same order and two pipelines cannot deadlock each other.
//
// Every statement carries its request's deadline. One that is still waiting (in the queue, or in
// a pipeline that has not answered) when it passes is answered shard_timeout at once, to within
// 20 ms; what the shard does with it later no longer reaches the request.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pgasync/query_result.hpp"
#include "shards.hpp"

namespace shardurl {

namespace pgasync {
class Connection;
}

using Deadline = std::chrono::steady_clock::time_point;

/// A statement of the repository: its name when prepared (SQL PREPARE in the session script) and
/// its text, sent unnamed when the shard keeps no session state. Both live for the whole program.
struct Statement {
  std::string_view name;
  std::string_view sql;
};

/// One statement's rows: its whole result, or its own row of a combined lookup (whose result it
/// shares with the other lookups of its batch). Valid on any thread, for as long as it lives.
class Rows {
 public:
  Rows(std::shared_ptr<const pgasync::QueryResult> result, int first, int count) noexcept
      : result_(std::move(result)), first_(first), count_(count) {}

  [[nodiscard]] int rows() const noexcept { return count_; }
  [[nodiscard]] std::string_view get(int row, int column) const noexcept {
    return result_->get(first_ + row, column);
  }
  /// The statement's command count (rows deleted, inserted, ...); a lookup's is its rows().
  [[nodiscard]] std::uint64_t affected_rows() const noexcept;

 private:
  std::shared_ptr<const pgasync::QueryResult> result_;
  int first_;
  int count_;
};

class Batcher {
 public:
  struct Limits {
    std::size_t max_batch = 64;    // most statements in one pipeline (1: every one alone)
    /// Most statements waiting per shard beyond what its free drain loops take at once; one more
    /// is refused (overloaded). 0: a statement is taken only when a session is free for it.
    std::size_t max_queued = 256;
    std::size_t max_running = 8;   // drain loops per shard, each on its own pooled session
    /// The statement lookup() uses: it takes a text[] of keys and returns one row per key, in the
    /// array's order, whose first column is NULL when the key has no value.
    Statement lookup;
    /// The statement that opens every batch, with one parameter: the ring version its statements
    /// were routed by (a batch holds statements of one version only). It makes the batch's commit durable (synchronous_commit on, local
    /// to its transaction, so it holds through a transaction-mode pooler) whatever the server's,
    /// the role's or a pooler's settings say, and fails the whole batch (SQLSTATE SU001: every
    /// statement is answered StoreError::Kind::stale) when the shard serves a newer ring than a
    /// statement was routed by, so no statement ever runs on a shard that no longer owns its key.
    Statement head;
  };

  /// `shards` must outlive the Batcher. Callable from any thread: each shard's work runs on its
  /// home thread.
  Batcher(Shards& shards, Limits limits);

  /// Makes a queue for slot `slot`, which Shards::add just made. Called on the thread that adds
  /// shards, before any statement for it can be submitted.
  void add(std::size_t slot);
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  /// Runs `statement` with text `params` on shard `shard`, which the ring of version
  /// `ring_version` names for its key, answering by `deadline` at the latest. `params[key]`
  /// orders the statement within its pipeline. Fails at once when the shard is down or its queue
  /// is full. Any thread; the caller resumes on its own executor.
  boost::asio::awaitable<StoreResult<Rows>> run(std::size_t shard, std::uint64_t ring_version,
                                                Statement statement,
                                                std::vector<std::string> params, Deadline deadline,
                                                std::size_t key = 0);

  /// The value stored under `key` on shard `shard` (Limits::lookup): no rows when there is none,
  /// else one row. All lookups in a batch go to the server as one statement with an array of their
  /// keys, so a read costs PostgreSQL one index probe, not a statement of its own.
  boost::asio::awaitable<StoreResult<Rows>> lookup(std::size_t shard, std::uint64_t ring_version,
                                                   std::string key, Deadline deadline);

  [[nodiscard]] const Shards& shards() const noexcept { return shards_; }

  /// Upper bounds of the batch size histogram's buckets (statements per pipeline, lookups
  /// counted one each); a last bucket takes the larger ones.
  static constexpr std::array<std::size_t, 9> batch_size_bounds = {1,  2,  4,   8,  16,
                                                                   32, 64, 128, 256};

  /// What one shard's queue holds now and did so far, for /metrics.
  struct QueueStats {
    std::size_t queued = 0;        // statements waiting for a session
    std::size_t in_flight = 0;     // statements in pipelines that have not answered yet
    std::uint64_t statements = 0;  // statements answered with their rows
    /// Statements answered with an error, by StoreError::Kind (refused at once included).
    std::array<std::uint64_t, store_error_kinds> errors{};
    /// Pipelines sent, by batch_size_bounds bucket (not cumulative), and their statements.
    std::array<std::uint64_t, batch_size_bounds.size() + 1> batches{};
    std::uint64_t batched = 0;
  };
  /// Shard `shard`'s queue. Only on the shard's home thread, for a slot add() made there or
  /// before (on the thread that adds shards).
  [[nodiscard]] QueueStats stats(std::size_t shard) const;

 private:
  struct Pending;
  struct Queue;
  using PendingPtr = std::unique_ptr<Pending>;
  boost::asio::awaitable<StoreResult<Rows>> on_home(std::size_t shard, PendingPtr pending);
  boost::asio::awaitable<StoreResult<Rows>> submit(std::size_t shard, PendingPtr pending);
  boost::asio::awaitable<void> drain(std::shared_ptr<Queue> queue);
  boost::asio::awaitable<void> sweep(std::shared_ptr<Queue> queue);
  boost::asio::awaitable<void> run_batch(Queue& queue, pgasync::Connection& conn,
                                         std::vector<PendingPtr> batch);

  Shards& shards_;
  Limits limits_;
  std::vector<std::shared_ptr<Queue>> queues_;
};

}  // namespace shardurl
