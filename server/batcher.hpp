// Group statements: concurrent requests for one shard share a pooled session's round trip and its
// commit (libpq pipeline mode, see pgasync::Connection::execute_pipeline).
//
// Each shard has a queue and up to pool.size drain loops. A statement submitted while a loop is
// free is sent at once, alone, so an idle service adds no delay. Under load every loop is busy
// and statements wait in the queue; the next loop to finish takes up to max_batch of them in one
// pipeline, which is one transaction: one round trip and one commit (one WAL flush) for the
// batch. Every statement is answered only after that commit.
//
// A pipeline is all-or-nothing. When one statement fails, the others are rolled back or skipped
// (pgasync::Errc::pipeline_aborted); they run again in a new pipeline, and only the failing one is
// answered with its error. Statements are sent in key order, so row locks are always taken in
// the same order and two pipelines cannot deadlock each other.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

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
    std::size_t max_batch = 64;     // most statements in one pipeline (1: every one alone)
    std::size_t max_queued = 256;   // most waiting per shard; one more is refused (overloaded)
    std::size_t max_running = 8;    // drain loops per shard, each on its own pooled session
    /// The prepared statement that lookup() uses: it takes a text[] of keys and returns one row
    /// per key, in the array's order, whose first column is NULL when the key has no value.
    std::string_view lookup_statement;
  };

  /// `shards` must outlive the Batcher and be used on `executor` (one thread).
  Batcher(boost::asio::any_io_executor executor, Shards& shards, Limits limits);
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  /// Runs the prepared statement `statement` (a name that lives for the whole program) with text
  /// `params` on shard `shard`. `params[key]` orders the statement within its pipeline.
  /// Fails at once when the shard is down or its queue is full.
  boost::asio::awaitable<StoreResult<Rows>> run(std::size_t shard, std::string_view statement,
                                                std::vector<std::string> params,
                                                std::size_t key = 0);

  /// The value stored under `key` on shard `shard` (Limits::lookup_statement): no rows when there
  /// is none, else one row. All lookups in a batch go to the server as one statement with an
  /// array of their keys, so a read costs PostgreSQL one index probe, not a statement of its own.
  boost::asio::awaitable<StoreResult<Rows>> lookup(std::size_t shard, std::string key);

  [[nodiscard]] const std::string& shard_name(std::size_t shard) const noexcept {
    return shards_.name(shard);
  }

 private:
  struct Pending;
  struct Queue;
  boost::asio::awaitable<StoreResult<Rows>> submit(std::size_t shard, Pending pending);
  boost::asio::awaitable<void> drain(std::shared_ptr<Queue> queue);
  boost::asio::awaitable<void> run_batch(Queue& queue, pgasync::Connection& conn,
                                         std::vector<Pending> batch);
  void answer(Pending& pending, StoreResult<Rows> result);

  boost::asio::any_io_executor executor_;
  Shards& shards_;
  Limits limits_;
  std::vector<std::shared_ptr<Queue>> queues_;
};

/// Every worker's Batcher, and which one carries each shard: shard i belongs to worker i % n.
/// One queue per shard keeps its batches as large as with a single worker; a request on another
/// worker hops to the owner's thread and back (two posts), which costs far less than the commits
/// that smaller batches would add. Built before the workers start, then read-only.
class BatcherGroup {
 public:
  /// `batcher` runs on `executor`'s thread and must outlive the group.
  void add(boost::asio::any_io_executor executor, Batcher& batcher);

  /// Batcher::run on the owning worker of `shard`, from any worker's thread.
  [[nodiscard]] boost::asio::awaitable<StoreResult<Rows>> run(std::size_t shard,
                                                              std::string_view statement,
                                                              std::vector<std::string> params,
                                                              std::size_t key = 0) const;

  /// Batcher::lookup on the owning worker of `shard`.
  [[nodiscard]] boost::asio::awaitable<StoreResult<Rows>> lookup(std::size_t shard,
                                                                 std::string key) const;

  [[nodiscard]] const std::string& shard_name(std::size_t shard) const noexcept;

 private:
  struct Member {
    boost::asio::any_io_executor executor;
    Batcher* batcher;
  };
  template <class Call>
  boost::asio::awaitable<StoreResult<Rows>> on_owner(std::size_t shard, Call call) const;
  std::vector<Member> members_;
};

}  // namespace shardurl
