#include "shards.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <charconv>
#include <optional>
#include <stdexcept>
#include <utility>

#include "log.hpp"
#include "pgasync/connection.hpp"
#include "pgasync/shard_pool.hpp"

namespace shardurl {
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

// The schema this shardurl needs (initdb/ keeps it in shardurl_meta): 3 is the ring version and
// the batch and fence functions of initdb/003_topology.sql.
constexpr int required_schema_version = 3;

// The probe: is the server up, does it hold the schema this build needs, did the tutorial leave
// rows under its derived ids, and which ring does it serve (and is a reshard moving links)? One
// round trip; its first statement names this instance and its ring for pg_stat_activity.
constexpr std::string_view probe_sql =
    "SELECT (SELECT value FROM shardurl_meta WHERE key = 'schema_version'), "
    "(SELECT value FROM shardurl_meta WHERE key = 'tutorial_ids'), "
    "(SELECT value FROM shardurl_meta WHERE key = 'ring_version'), "
    "(SELECT value FROM shardurl_meta WHERE key = 'topology'), "
    "(SELECT value FROM shardurl_meta WHERE key = 'move')";

std::uint64_t to_version(std::string_view text) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc{} && end == text.data() + text.size() ? value : 0;
}

int to_int(std::string_view text) {
  int value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc{} && end == text.data() + text.size() ? value : -1;
}

}  // namespace

struct Shards::Shard {
  Shard(asio::any_io_executor ex, ShardConfig c, pgasync::PoolConfig pool_config,
        HealthPolicy policy)
      : home(ex),
        config(std::move(c)),
        pool(ex, config.conninfo, std::move(pool_config)),
        health(policy),
        wake(ex),
        prepared(config.pool_mode == PoolMode::session) {}

  asio::any_io_executor home;
  ShardConfig config;
  // Home thread only.
  pgasync::ShardPool pool;
  ShardHealth health;
  asio::steady_timer wake;
  bool probe_again = false;  // a probe was asked for while one ran: no sleep before the next
  bool prepared;
  // Any thread.
  mutable std::mutex status_mutex;
  ShardStatus status;
  std::atomic<TutorialIds> tutorial_ids{TutorialIds::unknown};
};

bool prepared_statement_lost(const pgasync::Error& error) noexcept {
  return pgasync::has_sqlstate(error, pgasync::sqlstate::invalid_sql_statement_name) ||
         pgasync::has_sqlstate(error, pgasync::sqlstate::duplicate_prepared_statement);
}

std::string_view to_string(StoreError::Kind kind) noexcept {
  using Kind = StoreError::Kind;
  switch (kind) {
    case Kind::shard_unavailable: return "unavailable";
    case Kind::shard_overloaded: return "overloaded";
    case Kind::shard_timeout: return "timeout";
    case Kind::internal: return "statement";
    case Kind::stale: return "stale";
    case Kind::moving: return "moving";
  }
  return "statement";
}
static_assert(static_cast<std::size_t>(StoreError::Kind::moving) + 1 == store_error_kinds);

void throw_exception_from_error(const StoreError& e, const boost::source_location&) {
  throw std::runtime_error("shard " + e.shard + ": " + e.detail);
}

Shards::Shards(std::vector<asio::any_io_executor> homes, const Config& config,
               std::string session_script, std::string instance, MetaListener on_meta)
    : homes_(std::move(homes)),
      connect_ms_(config.timeouts.connect_ms),
      query_ms_(config.timeouts.query_ms),
      pool_wait_ms_(config.timeouts.pool_wait_ms),
      policy_{milliseconds(config.health.interval_up_ms),
              milliseconds(config.health.interval_down_ms)},
      session_script_(std::move(session_script)),
      pool_size_(config.pool.size),
      instance_(std::move(instance)),
      on_meta_(std::move(on_meta)) {
  for (const auto& shard : config.shards) add(shard);
}

Shards::~Shards() = default;

std::size_t Shards::add(const ShardConfig& config) {
  const std::size_t slot = count_.load(std::memory_order_relaxed);
  if (slot == capacity) {
    throw std::length_error("more than " + std::to_string(capacity) + " shards");
  }
  pgasync::PoolConfig pool;
  pool.max_size = pool_size_;
  // Only the shard's drain loops acquire, never more of them than sessions: nobody waits here.
  pool.max_waiters = pool_size_;
  pool.connect_timeout = milliseconds(connect_ms_.load(std::memory_order_relaxed));
  if (config.pool_mode == PoolMode::session) pool.session_script = session_script_;
  shards_[slot] =
      std::make_unique<Shard>(homes_[slot % homes_.size()], config, std::move(pool), policy_);
  count_.store(slot + 1, std::memory_order_release);
  if (started_) asio::co_spawn(shards_[slot]->home, probe_loop(slot), asio::detached);
  return slot;
}

void Shards::set_timeouts(const TimeoutConfig& timeouts) {
  connect_ms_.store(timeouts.connect_ms, std::memory_order_relaxed);
  query_ms_.store(timeouts.query_ms, std::memory_order_relaxed);
  pool_wait_ms_.store(timeouts.pool_wait_ms, std::memory_order_relaxed);
  for (std::size_t i = 0; i < size(); ++i) {
    asio::post(shards_[i]->home, [shard = shards_[i].get(), ms = timeouts.connect_ms] {
      shard->pool.set_connect_timeout(milliseconds(ms));
    });
  }
}

std::optional<std::size_t> Shards::slot_of(std::string_view name) const {
  for (std::size_t i = 0; i < size(); ++i) {
    if (shards_[i]->config.name == name) return i;
  }
  return std::nullopt;
}

void Shards::start() {
  started_ = true;
  for (std::size_t i = 0; i < size(); ++i) {
    asio::co_spawn(shards_[i]->home, probe_loop(i), asio::detached);
  }
}

void Shards::close() {
  closed_ = true;
  for (std::size_t i = 0; i < size(); ++i) {
    asio::post(shards_[i]->home, [s = shards_[i].get()] {
      s->pool.close();
      s->wake.cancel();
    });
  }
}

void Shards::probe_now(std::size_t i) {
  asio::post(shards_[i]->home, [s = shards_[i].get()] {
    s->probe_again = true;
    s->wake.cancel();
  });
}

void Shards::set_ring_version(std::uint64_t version) noexcept {
  ring_version_.store(version, std::memory_order_relaxed);
}

std::size_t Shards::size() const noexcept {
  return count_.load(std::memory_order_acquire);
}
const std::string& Shards::name(std::size_t i) const noexcept {
  return shards_[i]->config.name;
}
const ShardConfig& Shards::config(std::size_t i) const noexcept {
  return shards_[i]->config;
}
const asio::any_io_executor& Shards::home(std::size_t i) const noexcept {
  return shards_[i]->home;
}

ShardStatus Shards::status(std::size_t i) const {
  const std::lock_guard lock(shards_[i]->status_mutex);
  return shards_[i]->status;
}

TutorialIds Shards::tutorial_ids(std::size_t i) const noexcept {
  return shards_[i]->tutorial_ids.load(std::memory_order_relaxed);
}

void Shards::forget_tutorial_ids() noexcept {
  for (std::size_t i = 0; i < size(); ++i) {
    shards_[i]->tutorial_ids.store(TutorialIds::unknown, std::memory_order_relaxed);
  }
}

Clock::time_point Shards::query_deadline() const noexcept {
  return Clock::now() + milliseconds(query_ms_.load(std::memory_order_relaxed));
}

Shards::PoolStats Shards::pool_stats(std::size_t i) const noexcept {
  const Shard& shard = *shards_[i];
  return PoolStats{shard.pool.size(), shard.pool.idle()};
}

bool Shards::prepared_statements(std::size_t i) const noexcept {
  return shards_[i]->prepared;
}

void Shards::use_unnamed_statements(std::size_t i, const std::string& why) {
  Shard& shard = *shards_[i];
  if (!shard.prepared) return;
  shard.prepared = false;
  shard.pool.set_session_script({});
  log::warning("shard " + shard.config.name +
                   ": prepared statements vanish between transactions (" + why +
                   "): a transaction-mode pooler is on the way; sending unnamed statements from "
                   "now on (set its \"pool_mode\" to \"transaction\" to start that way)",
               {{"shard", shard.config.name}, {"event", "pool_mode_transaction"}});
}

std::optional<StoreError> Shards::refusal(std::size_t i) const {
  const Shard& shard = *shards_[i];
  if (!shard.health.fail_fast()) return std::nullopt;
  return StoreError{StoreError::Kind::shard_unavailable, shard.config.name,
                    "down: " + shard.health.last_error()};
}

asio::awaitable<StoreResult<pgasync::Lease>> Shards::acquire(std::size_t i) {
  Shard& shard = *shards_[i];
  if (auto refused = refusal(i)) co_return std::move(*refused);
  auto lease = co_await shard.pool.acquire(Clock::now() + milliseconds(pool_wait_ms_.load(std::memory_order_relaxed)));
  if (!lease && prepared_statement_lost(lease.error())) {
    // The new session's PREPAREs met a server session that has them already.
    use_unnamed_statements(i, lease.error().describe());
    lease = co_await shard.pool.acquire(Clock::now() + milliseconds(pool_wait_ms_.load(std::memory_order_relaxed)));
  }
  if (lease) co_return std::move(*lease);
  using pgasync::Errc;
  const auto& e = lease.error();
  if (e.code == Errc::pool_exhausted) {
    co_return StoreError{StoreError::Kind::shard_overloaded, shard.config.name, e.describe()};
  }
  if (e.code == Errc::timeout) {
    // Every connection is busy for longer than the wait allows: saturated or hung. Requests that
    // hold them will time out and take the shard down if it is hung.
    co_return StoreError{StoreError::Kind::shard_unavailable, shard.config.name, e.describe()};
  }
  co_return failed(i, e);
}

StoreError Shards::failed(std::size_t i, const pgasync::Error& error) {
  using pgasync::Errc;
  Shard& shard = *shards_[i];
  StoreError out{StoreError::Kind::internal, shard.config.name, error.describe()};
  if (pgasync::has_sqlstate(error, "SU001")) {
    out.kind = StoreError::Kind::stale;  // a newer ring: the caller routes again
    return out;
  }
  if (pgasync::has_sqlstate(error, "SU002")) {
    out.kind = StoreError::Kind::moving;  // a reshard's cutover: the caller asks again shortly
    return out;
  }
  if (error.code == Errc::timeout) {
    out.kind = StoreError::Kind::shard_timeout;  // the pipeline's own deadline: hung
  } else if (pgasync::is_server_unavailable(error)) {
    out.kind = StoreError::Kind::shard_unavailable;
  } else {
    if (error.code == Errc::pool_closed || error.code == Errc::cancelled) {
      out.kind = StoreError::Kind::shard_unavailable;
    }
    return out;  // the shard is fine; the statement is not (or we are shutting down)
  }
  if (!closed_) {
    shard.health.request_failed(Clock::now(), error.describe());
    publish(i);
    shard.probe_again = true;  // probe now rather than after the "up" interval
    shard.wake.cancel();
  }
  return out;
}

// Copies the state for other threads, and logs a change (once: only the home thread gets here).
void Shards::publish(std::size_t i) {
  Shard& shard = *shards_[i];
  {
    const std::lock_guard lock(shard.status_mutex);
    shard.status = ShardStatus{shard.health.state(), shard.health.last_error(), shard.health.since()};
  }
  if (!shard.health.take_change()) return;
  const std::string& name = shard.config.name;
  if (shard.health.state() == ShardState::down) {
    log::warning("shard " + name + ": down (" + shard.health.last_error() +
                     "); its keys answer 503 until it is back",
                 {{"shard", name}, {"event", "shard_down"}, {"error", shard.health.last_error()}});
  } else {
    log::info("shard " + name + ": up", {{"shard", name}, {"event", "shard_up"}});
  }
}

// Probes on a connection of its own, not one from the pool, so that a busy pool cannot make a
// healthy shard look down, and a hung shard is found even when no request is waiting on it.
asio::awaitable<void> Shards::probe_loop(std::size_t i) {
  Shard& shard = *shards_[i];
  std::optional<pgasync::Connection> conn;
  std::string labelled;  // the application_name the connection carries
  while (!closed_) {
    if (!conn || conn->is_broken()) {
      conn.reset();
      labelled.clear();
      auto opened = co_await pgasync::Connection::connect(
          shard.home, shard.config.conninfo, Clock::now() + milliseconds(connect_ms_.load(std::memory_order_relaxed)));
      if (opened) {
        conn.emplace(std::move(*opened));
      } else if (!closed_) {
        shard.health.probe_failed(Clock::now(), opened.error().describe());
      }
    }
    if (conn) {
      const std::string label =
          "shardurl " + instance_ + " ring " + std::to_string(ring_version_.load());
      if (label != labelled) {
        if (auto set = co_await conn->query("SELECT set_config('application_name', $1, false)",
                                            pgasync::params(label), query_deadline())) {
          labelled = label;
        }
      }
    }
    if (conn && !conn->is_broken()) {
      auto answer = co_await conn->query(probe_sql, {}, query_deadline());
      if (closed_) break;
      if (!answer) {
        const auto& err = answer.error();
        std::string why = err.describe();
        if (pgasync::has_sqlstate(err, "42P01")) {
          why = "no shardurl_meta table: the shard's schema is older than this shardurl; apply "
                "initdb/*.sql to it";
        }
        shard.health.probe_failed(Clock::now(), std::move(why));
        if (conn->is_broken()) conn.reset();
      } else if (const int version = to_int(answer->get(0, 0));
                 version < required_schema_version) {
        shard.health.probe_failed(
            Clock::now(), "schema version " + std::string(answer->get(0, 0)) + ", this shardurl needs " +
                              std::to_string(required_schema_version) + ": apply initdb/*.sql to it");
      } else {
        shard.tutorial_ids.store(
            to_int(answer->get(0, 1)) == 0 ? TutorialIds::absent : TutorialIds::present,
            std::memory_order_relaxed);
        shard.health.probe_succeeded(Clock::now());
        if (on_meta_) {
          on_meta_(i, ShardMeta{to_version(answer->get(0, 2)), std::string(answer->get(0, 3)),
                                std::string(answer->get(0, 4))});
        }
      }
    }
    publish(i);
    if (std::exchange(shard.probe_again, false)) continue;
    shard.wake.expires_after(shard.health.next_probe_in());
    co_await shard.wake.async_wait(asio::as_tuple(asio::use_awaitable));
    shard.probe_again = false;
  }
}

}  // namespace shardurl
