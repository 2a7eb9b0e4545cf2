#include "batcher.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <bit>
#include <deque>
#include <list>
#include <optional>

#include "pgasync/connection.hpp"
#include "pgasync/shard_pool.hpp"

namespace shardurl {
namespace asio = boost::asio;
using pgasync::Errc;
using pgasync::QueryResult;
using Clock = std::chrono::steady_clock;

namespace {

using Outcome = StoreResult<Rows>;

// How often a queue looks for statements whose request ran out of time.
constexpr std::chrono::milliseconds sweep_every{20};

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
  Statement statement;  // empty name and sql: a lookup (Limits::lookup, combined)
  std::vector<std::string> params;
  std::size_t key = 0;
  Deadline deadline;
  std::uint64_t ring_version = 0;  // of the ring that routed it here
  // Null once answered. Boxed: Boost 1.81's any_completion_handler has an unconstrained
  // converting constructor, so containers would "copy" it by wrapping it in itself, endlessly.
  std::unique_ptr<asio::any_completion_handler<void(Outcome)>> handler;

  [[nodiscard]] bool is_lookup() const noexcept { return statement.sql.empty(); }
  [[nodiscard]] const std::string& sort_key() const { return params[key]; }
};

struct Batcher::Queue {
  Queue(std::size_t i, asio::any_io_executor ex) : shard(i), home(std::move(ex)) {}
  std::size_t shard;
  asio::any_io_executor home;
  std::deque<PendingPtr> pending;
  std::list<std::vector<PendingPtr>*> in_flight;  // batches sent and not answered yet
  std::size_t running = 0;                         // drain loops alive
  bool sweeping = false;
  QueueStats counters;  // queued and in_flight are counted when asked for (Batcher::stats)

  void count(const StoreError& error) noexcept {
    ++counters.errors[static_cast<std::size_t>(error.kind)];
  }

  void count_batch(std::size_t size) noexcept {
    // Bucket i holds sizes up to 2^i: bit_width(size - 1) is that i.
    const auto i = static_cast<std::size_t>(std::bit_width(size - 1));
    ++counters.batches[std::min(i, batch_size_bounds.size())];
    counters.batched += size;
  }

  // Answers `p` unless it was answered already (its deadline passed first). Posted, not called:
  // the waiting request resumes on its own turn of the loop, not inside ours.
  void answer(Pending& p, Outcome result) {
    if (!p.handler) return;
    if (result) {
      ++counters.statements;
    } else {
      count(result.error());
    }
    asio::post(home, [handler = std::move(p.handler), result = std::move(result)]() mutable {
      std::move (*handler)(std::move(result));
    });
  }
};

Batcher::Batcher(Shards& shards, Limits limits)
    : shards_(shards), limits_(limits), queues_(Shards::capacity) {
  limits_.max_batch = std::max<std::size_t>(limits_.max_batch, 1);
  limits_.max_running = std::max<std::size_t>(limits_.max_running, 1);
  for (std::size_t i = 0; i < shards_.size(); ++i) add(i);
}

void Batcher::add(std::size_t slot) {
  queues_[slot] = std::make_shared<Queue>(slot, shards_.home(slot));
}

Batcher::QueueStats Batcher::stats(std::size_t shard) const {
  const Queue& queue = *queues_[shard];
  QueueStats out = queue.counters;
  out.queued = queue.pending.size();
  out.in_flight = 0;
  for (const auto* batch : queue.in_flight) out.in_flight += batch->size();
  return out;
}

Batcher::~Batcher() = default;

asio::awaitable<Outcome> Batcher::run(std::size_t shard, std::uint64_t ring_version,
                                      Statement statement, std::vector<std::string> params,
                                      Deadline deadline, std::size_t key) {
  // Built here, not as a temporary in the co_await expression: GCC 12 destroys an aggregate
  // temporary there twice (a double free of `params`).
  auto pending = std::make_unique<Pending>(
      Pending{statement, std::move(params), key, deadline, ring_version, nullptr});
  co_return co_await on_home(shard, std::move(pending));
}

asio::awaitable<Outcome> Batcher::lookup(std::size_t shard, std::uint64_t ring_version,
                                         std::string key, Deadline deadline) {
  std::vector<std::string> params;
  params.push_back(std::move(key));
  auto pending = std::make_unique<Pending>(
      Pending{{}, std::move(params), 0, deadline, ring_version, nullptr});
  co_return co_await on_home(shard, std::move(pending));
}

// The shard's queue lives on its home thread: a request served by another worker hops there and
// back (two posts), which costs far less than the commits that a queue per worker would add.
asio::awaitable<Outcome> Batcher::on_home(std::size_t shard, PendingPtr pending) {
  const auto& home = queues_[shard]->home;
  if (home == co_await asio::this_coro::executor) co_return co_await submit(shard, std::move(pending));
  // Written on the home thread; read here after co_spawn's completion was posted back to us.
  std::optional<Outcome> outcome;
  co_await asio::co_spawn(
      home,
      [&]() -> asio::awaitable<void> { outcome.emplace(co_await submit(shard, std::move(pending))); },
      asio::use_awaitable);
  co_return std::move(*outcome);
}

asio::awaitable<Outcome> Batcher::submit(std::size_t shard, PendingPtr pending) {
  const std::shared_ptr<Queue>& queue = queues_[shard];
  if (auto refusal = shards_.refusal(shard)) {
    queue->count(*refusal);
    co_return std::move(*refusal);
  }
  if (queue->pending.size() >= limits_.max_queued && queue->running >= limits_.max_running) {
    StoreError full{StoreError::Kind::shard_overloaded, shards_.name(shard),
                    "statement queue full"};
    queue->count(full);
    co_return full;
  }
  if (pending->deadline <= Clock::now()) {
    StoreError late{StoreError::Kind::shard_timeout, shards_.name(shard),
                    "the request's deadline passed before its statement was queued"};
    queue->count(late);
    co_return late;
  }
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(Outcome)>(
      [&](auto handler) {
        pending->handler =
            std::make_unique<asio::any_completion_handler<void(Outcome)>>(std::move(handler));
        queue->pending.push_back(std::move(pending));
        if (queue->running < limits_.max_running) {
          ++queue->running;
          asio::co_spawn(queue->home, drain(queue), asio::detached);
        }
        if (!queue->sweeping) {
          queue->sweeping = true;
          asio::co_spawn(queue->home, sweep(queue), asio::detached);
        }
      },
      asio::use_awaitable);
}

// Answers every statement whose deadline passed, queued or in a pipeline, until the queue has had
// nothing waiting for a second (so a busy queue keeps one sweeper, not one per burst).
asio::awaitable<void> Batcher::sweep(std::shared_ptr<Queue> queue) {
  asio::steady_timer tick(queue->home);
  constexpr int idle_ticks = 1000 / static_cast<int>(sweep_every.count());
  for (int idle = 0;;) {
    tick.expires_after(sweep_every);
    auto [ec] = co_await tick.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec) break;
    // Judged after the wait: a statement queued during it finds this sweeper still running.
    idle = queue->pending.empty() && queue->in_flight.empty() ? idle + 1 : 0;
    if (idle >= idle_ticks) break;
    const auto now = Clock::now();
    const auto expire = [&](Pending& p) {
      if (p.handler && p.deadline <= now) {
        queue->answer(p, StoreError{StoreError::Kind::shard_timeout, shards_.name(queue->shard),
                                    "the request's deadline passed while its statement waited"});
      }
    };
    for (auto& p : queue->pending) expire(*p);
    std::erase_if(queue->pending, [](const PendingPtr& p) { return !p->handler; });
    for (auto* batch : queue->in_flight) {
      for (auto& p : *batch) expire(*p);
    }
  }
  queue->sweeping = false;
}

asio::awaitable<void> Batcher::drain(std::shared_ptr<Queue> queue) {
  while (!queue->pending.empty()) {
    auto lease = co_await shards_.acquire(queue->shard);
    if (!lease) {
      // Down, refused or closed: everything waiting for this shard gets the same answer now.
      for (auto& pending : queue->pending) queue->answer(*pending, lease.error());
      queue->pending.clear();
      break;
    }
    while (!queue->pending.empty() && !(*lease)->is_broken()) {
      // One ring version per batch: a shard that serves a newer ring refuses the whole batch
      // (SU001), which must then hold only statements routed by that older ring.
      std::vector<PendingPtr> batch;
      const std::uint64_t version = queue->pending.front()->ring_version;
      for (auto it = queue->pending.begin();
           it != queue->pending.end() && batch.size() < limits_.max_batch;) {
        if (!(*it)->handler) {
          it = queue->pending.erase(it);
        } else if ((*it)->ring_version == version) {
          batch.push_back(std::move(*it));
          it = queue->pending.erase(it);
        } else {
          ++it;
        }
      }
      if (!batch.empty()) co_await run_batch(*queue, **lease, std::move(batch));
    }
  }
  --queue->running;
}

asio::awaitable<void> Batcher::run_batch(Queue& queue, pgasync::Connection& conn,
                                         std::vector<PendingPtr> batch) {
  // Visible to sweep() while it runs, so a request whose deadline passes is answered on time.
  queue.in_flight.push_back(&batch);
  const auto in_flight_entry = std::prev(queue.in_flight.end());
  struct Registration {
    std::list<std::vector<PendingPtr>*>& list;
    std::list<std::vector<PendingPtr>*>::iterator it;
    ~Registration() { list.erase(it); }
  } registration{queue.in_flight, in_flight_entry};

  const std::size_t shard = queue.shard;
  std::stable_sort(batch.begin(), batch.end(), [](const PendingPtr& a, const PendingPtr& b) {
    return a->sort_key() < b->sort_key();
  });
  std::vector<pgasync::Param> params;
  std::vector<pgasync::PipelineCall> calls;
  std::vector<Pending*> statements;  // in call order
  std::vector<Pending*> lookups;     // all in the last call, in array order
  std::vector<const std::string*> keys;
  std::string array;
  const auto call_for = [&](const Statement& s, std::span<const pgasync::Param> p) {
    return shards_.prepared_statements(shard) ? pgasync::PipelineCall{s.name, p, s.sql}
                                              : pgasync::PipelineCall{{}, p, s.sql};
  };
  for (;;) {
    std::erase_if(batch, [](const PendingPtr& p) { return !p->handler; });
    if (batch.empty()) break;
    statements.clear();
    lookups.clear();
    for (auto& pending : batch) {
      (pending->is_lookup() ? lookups : statements).push_back(pending.get());
    }
    const std::string version = std::to_string(batch.front()->ring_version);
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
    const pgasync::Param head_param(version);
    calls.push_back(call_for(limits_.head, std::span(&head_param, 1)));
    const std::span<const pgasync::Param> all(params);
    const std::size_t first_statement = calls.size();
    std::size_t offset = 0;
    for (const Pending* pending : statements) {
      calls.push_back(call_for(pending->statement, all.subspan(offset, pending->params.size())));
      offset += pending->params.size();
    }
    if (!lookups.empty()) calls.push_back(call_for(limits_.lookup, all.subspan(offset, 1)));

    queue.count_batch(statements.size() + lookups.size());
    auto results = co_await conn.execute_pipeline(calls, shards_.query_deadline());
    if (!results) {
      const StoreError error = shards_.failed(shard, results.error());
      for (auto& pending : batch) queue.answer(*pending, error);
      break;
    }
    // What each statement's outcome leads to: its answer, or (left unanswered) another round.
    const auto settle = [&](Pending& pending, pgasync::Result<QueryResult>& outcome,
                            auto&& deliver) {
      if (outcome) {
        deliver();
      } else if (prepared_statement_lost(outcome.error())) {
        shards_.use_unnamed_statements(shard, outcome.error().describe());
      } else if (!retryable(outcome.error())) {
        queue.answer(pending, shards_.failed(shard, outcome.error()));
      }
    };
    if (!(*results)[0] && (*results)[0].error().code != Errc::pipeline_aborted) {
      // The head failed on its own (a newer ring, ...): nothing in the batch ran. (Rolled back
      // because a later statement failed is no failure of its own: the statements say why.)
      auto& outcome = (*results)[0];
      if (prepared_statement_lost(outcome.error())) {
        shards_.use_unnamed_statements(shard, outcome.error().describe());
        continue;  // every statement again
      }
      if (retryable(outcome.error())) continue;
      const StoreError error = shards_.failed(shard, outcome.error());
      for (auto& pending : batch) queue.answer(*pending, error);
      break;
    }
    for (std::size_t i = 0; i < statements.size(); ++i) {
      auto& outcome = (*results)[first_statement + i];
      Pending& pending = *statements[i];
      settle(pending, outcome, [&] {
        auto whole = std::make_shared<const QueryResult>(std::move(*outcome));
        const int rows = whole->rows();
        queue.answer(pending, Rows(std::move(whole), 0, rows));
      });
    }
    if (!lookups.empty()) {
      auto& outcome = results->back();
      if (outcome) {
        auto shared = std::make_shared<const QueryResult>(std::move(*outcome));
        for (std::size_t j = 0; j < lookups.size(); ++j) {
          const int row = static_cast<int>(j);
          queue.answer(*lookups[j], Rows(shared, row, shared->is_null(row, 0) ? 0 : 1));
        }
      } else {
        for (Pending* pending : lookups) settle(*pending, outcome, [] {});
      }
    }
  }
}

}  // namespace shardurl
