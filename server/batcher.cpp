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

using Outcome = StoreResult<Rows>;

// A text[] literal holding `keys`, each quoted: {"a","b\\"c"}.
std::string array_literal(const std::vector<const std::string*>& keys) {
  std::string out = "{";
  for (const std::string* key : keys) {
    if (out.size() > 1) out += ',';
    out += '"';
    for (const char c : *key) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

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

std::uint64_t Rows::affected_rows() const noexcept {
  // A whole result (first_ 0, every row): the statement's own count. A lookup's share: its rows.
  if (first_ == 0 && count_ == result_->rows()) return result_->affected_rows();
  return static_cast<std::uint64_t>(count_);
}

struct Batcher::Pending {
  std::string_view statement;  // empty: a lookup (Limits::lookup_statement, combined)
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
  // A named Pending, not a temporary in the co_await expression: GCC 12 destroys an aggregate
  // temporary there twice (a double free of `params`).
  Pending pending{statement, std::move(params), key, nullptr};
  co_return co_await submit(shard, std::move(pending));
}

asio::awaitable<Outcome> Batcher::lookup(std::size_t shard, std::string key) {
  std::vector<std::string> params;
  params.push_back(std::move(key));
  Pending pending{{}, std::move(params), 0, nullptr};  // named: see run()
  co_return co_await submit(shard, std::move(pending));
}

asio::awaitable<Outcome> Batcher::submit(std::size_t shard, Pending pending) {
  const std::shared_ptr<Queue>& queue = queues_[shard];
  if (auto refusal = shards_.refusal(shard)) co_return std::move(*refusal);
  if (queue->pending.size() >= limits_.max_queued) {
    co_return StoreError{StoreError::Kind::shard_overloaded, shards_.name(shard),
                         "statement queue full"};
  }
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(Outcome)>(
      [&](auto handler) {
        pending.handler =
            std::make_unique<asio::any_completion_handler<void(Outcome)>>(std::move(handler));
        queue->pending.push_back(std::move(pending));
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
  std::vector<Pending*> statements;  // in call order
  std::vector<Pending*> lookups;     // all in the last call, in array order
  std::vector<const std::string*> keys;
  std::string array;
  for (int round = 0; !batch.empty(); ++round) {
    statements.clear();
    lookups.clear();
    for (auto& pending : batch) (pending.statement.empty() ? lookups : statements).push_back(&pending);
    // Every parameter first, then the views into them: `params` must not move any more.
    params.clear();
    for (const Pending* pending : statements) {
      for (const auto& p : pending->params) params.emplace_back(p);
    }
    if (!lookups.empty()) {
      keys.clear();
      for (const Pending* pending : lookups) keys.push_back(&pending->params.front());
      array = array_literal(keys);
      params.emplace_back(array);
    }
    calls.clear();
    const std::span<const pgasync::Param> all(params);
    std::size_t offset = 0;
    for (const Pending* pending : statements) {
      calls.push_back({pending->statement, all.subspan(offset, pending->params.size())});
      offset += pending->params.size();
    }
    if (!lookups.empty()) calls.push_back({limits_.lookup_statement, all.subspan(offset, 1)});

    auto results = co_await conn.execute_pipeline(calls, shards_.query_deadline());
    if (!results) {
      const StoreError error = shards_.failed(queue.shard, results.error());
      for (auto& pending : batch) answer(pending, error);
      co_return;
    }
    std::vector<Pending> again;
    const auto settle = [&](Pending& pending, pgasync::Result<QueryResult>& outcome,
                            auto&& deliver) {
      if (outcome) {
        deliver();
      } else if (retryable(outcome.error()) && round + 1 < max_rounds) {
        again.push_back(std::move(pending));
      } else {
        answer(pending, shards_.failed(queue.shard, outcome.error()));
      }
    };
    for (std::size_t i = 0; i < statements.size(); ++i) {
      auto& outcome = (*results)[i];
      settle(*statements[i], outcome, [&] {
        auto whole = std::make_shared<const QueryResult>(std::move(*outcome));
        const int rows = whole->rows();
        answer(*statements[i], Rows(std::move(whole), 0, rows));
      });
    }
    if (!lookups.empty()) {
      auto& outcome = results->back();
      if (outcome) {
        auto shared = std::make_shared<const QueryResult>(std::move(*outcome));
        for (std::size_t j = 0; j < lookups.size(); ++j) {
          const int row = static_cast<int>(j);
          answer(*lookups[j], Rows(shared, row, shared->is_null(row, 0) ? 0 : 1));
        }
      } else {
        for (Pending* pending : lookups) settle(*pending, outcome, [] {});
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

template <class Call>
asio::awaitable<Outcome> BatcherGroup::on_owner(std::size_t shard, Call call) const {
  const Member& owner = members_[shard % members_.size()];
  if (owner.executor == co_await asio::this_coro::executor) co_return co_await call(*owner.batcher);
  // Written on the owner's thread; read here after co_spawn's completion was posted back to us.
  std::optional<Outcome> outcome;
  co_await asio::co_spawn(
      owner.executor,
      [&]() -> asio::awaitable<void> { outcome.emplace(co_await call(*owner.batcher)); },
      asio::use_awaitable);
  co_return std::move(*outcome);
}

asio::awaitable<Outcome> BatcherGroup::run(std::size_t shard, std::string_view statement,
                                           std::vector<std::string> params,
                                           std::size_t key) const {
  co_return co_await on_owner(shard, [&](Batcher& batcher) {
    return batcher.run(shard, statement, std::move(params), key);
  });
}

asio::awaitable<Outcome> BatcherGroup::lookup(std::size_t shard, std::string key) const {
  co_return co_await on_owner(shard,
                              [&](Batcher& batcher) { return batcher.lookup(shard, std::move(key)); });
}

}  // namespace shardurl
