#include "batcher.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <deque>
#include <optional>

#include "pgasync/connection.hpp"
#include "pgasync/shard_pool.hpp"

namespace shardurl {
namespace asio = boost::asio;
using pgasync::Errc;
using pgasync::QueryResult;

namespace {

using Outcome = StoreResult<QueryResult>;

// A pipeline that keeps failing (one bad statement per round) still ends: each round answers at
// least the statement that failed, so this only bounds pathological cases.
constexpr int max_rounds = 8;

// Failures worth running again: the statement itself was fine, the transaction was not.
bool retryable(const pgasync::Error& error) {
  return error.code == Errc::pipeline_aborted ||
         pgasync::has_sqlstate(error, "40P01") ||  // deadlock_detected
         pgasync::has_sqlstate(error, "40001");    // serialization_failure
}

}  // namespace

struct Batcher::Pending {
  std::string_view statement;
  std::vector<std::string> params;
  std::size_t key = 0;
  // Boxed: Boost 1.81's any_completion_handler has an unconstrained converting constructor, so
  // containers would "copy" it by wrapping it in itself, endlessly. A unique_ptr only moves.
  std::unique_ptr<asio::any_completion_handler<void(Outcome)>> handler;

  [[nodiscard]] const std::string& sort_key() const { return params[key]; }
};

struct Batcher::Queue {
  explicit Queue(std::size_t i) : shard(i) {}
  std::size_t shard;
  std::deque<Pending> pending;
  std::size_t running = 0;  // drain loops alive
};

Batcher::Batcher(asio::any_io_executor executor, Shards& shards, Limits limits)
    : executor_(std::move(executor)), shards_(shards), limits_(limits) {
  limits_.max_batch = std::max<std::size_t>(limits_.max_batch, 1);
  limits_.max_running = std::max<std::size_t>(limits_.max_running, 1);
  for (std::size_t i = 0; i < shards_.size(); ++i) queues_.push_back(std::make_shared<Queue>(i));
}

Batcher::~Batcher() = default;

asio::awaitable<Outcome> Batcher::run(std::size_t shard, std::string_view statement,
                                      std::vector<std::string> params, std::size_t key) {
  const std::shared_ptr<Queue>& queue = queues_[shard];
  if (auto refusal = shards_.refusal(shard)) co_return std::move(*refusal);
  if (queue->pending.size() >= limits_.max_queued) {
    co_return StoreError{StoreError::Kind::shard_overloaded, shards_.name(shard),
                         "statement queue full"};
  }
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(Outcome)>(
      [&](auto handler) {
        queue->pending.push_back(
            Pending{statement, std::move(params), key,
                    std::make_unique<asio::any_completion_handler<void(Outcome)>>(
                        std::move(handler))});
        if (queue->running < limits_.max_running) {
          ++queue->running;
          asio::co_spawn(executor_, drain(queue), asio::detached);
        }
      },
      asio::use_awaitable);
}

void Batcher::answer(Pending& pending, Outcome result) {
  // Posted, not called: the waiting request resumes on its own turn of the loop, not inside ours.
  asio::post(executor_, [handler = std::move(pending.handler), result = std::move(result)]() mutable {
    std::move (*handler)(std::move(result));
  });
}

asio::awaitable<void> Batcher::drain(std::shared_ptr<Queue> queue) {
  while (!queue->pending.empty()) {
    auto lease = co_await shards_.acquire(queue->shard);
    if (!lease) {
      // Down, refused or closed: everything waiting for this shard gets the same answer now.
      for (auto& pending : queue->pending) answer(pending, lease.error());
      queue->pending.clear();
      break;
    }
    while (!queue->pending.empty() && !(*lease)->is_broken()) {
      const std::size_t n = std::min(limits_.max_batch, queue->pending.size());
      std::vector<Pending> batch(std::make_move_iterator(queue->pending.begin()),
                                 std::make_move_iterator(queue->pending.begin() + n));
      queue->pending.erase(queue->pending.begin(), queue->pending.begin() + n);
      co_await run_batch(*queue, **lease, std::move(batch));
    }
  }
  --queue->running;
}

asio::awaitable<void> Batcher::run_batch(Queue& queue, pgasync::Connection& conn,
                                         std::vector<Pending> batch) {
  std::stable_sort(batch.begin(), batch.end(), [](const Pending& a, const Pending& b) {
    return a.sort_key() < b.sort_key();
  });
  std::vector<pgasync::Param> params;
  std::vector<pgasync::PreparedCall> calls;
  for (int round = 0; !batch.empty(); ++round) {
    params.clear();
    calls.clear();
    for (const auto& pending : batch) {
      for (const auto& p : pending.params) params.emplace_back(p);
    }
    std::size_t offset = 0;
    for (const auto& pending : batch) {
      calls.push_back({pending.statement,
                       std::span<const pgasync::Param>(params).subspan(offset, pending.params.size())});
      offset += pending.params.size();
    }
    auto results = co_await conn.execute_pipeline(calls, shards_.query_deadline());
    if (!results) {
      const StoreError error = shards_.failed(queue.shard, results.error());
      for (auto& pending : batch) answer(pending, error);
      co_return;
    }
    std::vector<Pending> again;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      auto& outcome = (*results)[i];
      if (outcome) {
        answer(batch[i], std::move(*outcome));
      } else if (retryable(outcome.error()) && round + 1 < max_rounds) {
        again.push_back(std::move(batch[i]));
      } else {
        answer(batch[i], shards_.failed(queue.shard, outcome.error()));
      }
    }
    batch = std::move(again);
  }
}

void BatcherGroup::add(asio::any_io_executor executor, Batcher& batcher) {
  members_.push_back(Member{std::move(executor), &batcher});
}

const std::string& BatcherGroup::shard_name(std::size_t shard) const noexcept {
  return members_.front().batcher->shard_name(shard);  // names never change after start
}

asio::awaitable<Outcome> BatcherGroup::run(std::size_t shard, std::string_view statement,
                                           std::vector<std::string> params,
                                           std::size_t key) const {
  const Member& owner = members_[shard % members_.size()];
  if (owner.executor == co_await asio::this_coro::executor) {
    co_return co_await owner.batcher->run(shard, statement, std::move(params), key);
  }
  // Written on the owner's thread; read here after co_spawn's completion was posted back to us.
  std::optional<Outcome> outcome;
  co_await asio::co_spawn(
      owner.executor,
      [&]() -> asio::awaitable<void> {
        outcome.emplace(co_await owner.batcher->run(shard, statement, std::move(params), key));
      },
      asio::use_awaitable);
  co_return std::move(*outcome);
}

}  // namespace shardurl
