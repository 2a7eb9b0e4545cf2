#include "shards.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <iostream>
#include <optional>

#include "pgasync/connection.hpp"
#include "pgasync/shard_pool.hpp"

namespace shardurl {
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {
// Every session commits durably, whatever the server's own setting: a create is acknowledged only
// after its commit reached disk.
constexpr std::string_view session_options = "-c synchronous_commit=on";
}  // namespace

struct Shards::Shard {
  std::string name;
  std::string conninfo;
  pgasync::ShardPool pool;
  ShardHealth health;
  asio::steady_timer wake;

  Shard(asio::any_io_executor ex, std::string n, std::string info, pgasync::PoolConfig pool_config,
        HealthPolicy policy)
      : name(std::move(n)),
        conninfo(info),
        pool(ex, std::move(info), std::move(pool_config)),
        health(policy),
        wake(ex) {}
};

void throw_exception_from_error(const StoreError& e, const boost::source_location&) {
  throw std::runtime_error("shard " + e.shard + ": " + e.detail);
}

Shards::Shards(asio::any_io_executor executor, const Config& config, const ring::Ring& ring,
               std::string session_script)
    : executor_(std::move(executor)), timeouts_(config.timeouts) {
  pgasync::PoolConfig pool;
  pool.max_size = config.pool.size;
  pool.max_waiters = config.pool.max_waiters;
  pool.connect_timeout = milliseconds(timeouts_.connect_ms);
  pool.session_options = session_options;
  pool.session_script = std::move(session_script);
  const HealthPolicy policy{milliseconds(config.health.interval_up_ms),
                            milliseconds(config.health.interval_down_ms)};
  for (const auto& node : ring.nodes()) {
    const auto it = std::find_if(config.shards.begin(), config.shards.end(),
                                 [&](const ShardConfig& s) { return s.name == node.name; });
    shards_.push_back(std::make_unique<Shard>(executor_, node.name, it->conninfo, pool, policy));
  }
}

Shards::~Shards() {
  close();
}

void Shards::start() {
  for (std::size_t i = 0; i < shards_.size(); ++i) {
    asio::co_spawn(executor_, probe_loop(i), asio::detached);
  }
}

void Shards::close() noexcept {
  closed_ = true;
  for (auto& shard : shards_) {
    shard->pool.close();
    shard->wake.cancel();
  }
}

std::size_t Shards::size() const noexcept {
  return shards_.size();
}
const std::string& Shards::name(std::size_t i) const noexcept {
  return shards_[i]->name;
}
const ShardHealth& Shards::health(std::size_t i) const noexcept {
  return shards_[i]->health;
}

Clock::time_point Shards::query_deadline() const noexcept {
  return Clock::now() + milliseconds(timeouts_.query_ms);
}

std::optional<StoreError> Shards::refusal(std::size_t i) const {
  const Shard& shard = *shards_[i];
  if (!shard.health.fail_fast()) return std::nullopt;
  return StoreError{StoreError::Kind::shard_unavailable, shard.name,
                    "down: " + shard.health.last_error()};
}

asio::awaitable<StoreResult<pgasync::Lease>> Shards::acquire(std::size_t i) {
  Shard& shard = *shards_[i];
  if (auto refused = refusal(i)) co_return std::move(*refused);
  auto lease = co_await shard.pool.acquire(Clock::now() + milliseconds(timeouts_.pool_wait_ms));
  if (lease) co_return std::move(*lease);
  using pgasync::Errc;
  const auto& e = lease.error();
  if (e.code == Errc::pool_exhausted) {
    co_return StoreError{StoreError::Kind::shard_overloaded, shard.name, e.describe()};
  }
  if (e.code == Errc::timeout) {
    // Every connection is busy for longer than the wait allows: saturated or hung. Requests that
    // hold them will time out and take the shard down if it is hung.
    co_return StoreError{StoreError::Kind::shard_unavailable, shard.name, e.describe()};
  }
  co_return failed(i, e);
}

StoreError Shards::failed(std::size_t i, const pgasync::Error& error) {
  using pgasync::Errc;
  Shard& shard = *shards_[i];
  StoreError out{StoreError::Kind::internal, shard.name, error.describe()};
  if (error.code == Errc::timeout) {
    out.kind = StoreError::Kind::shard_timeout;
  } else if (error.code == Errc::server_error && !pgasync::is_fatal(error)) {
    return out;  // the shard is fine; the statement is not
  } else {
    out.kind = StoreError::Kind::shard_unavailable;
  }
  if (error.code != Errc::cancelled && error.code != Errc::pool_closed && !closed_) {
    shard.health.request_failed(Clock::now(), error.describe());
    log_transition(i);
    shard.wake.cancel();  // probe now rather than after the "up" interval
  }
  return out;
}

void Shards::log_transition(std::size_t i) {
  Shard& shard = *shards_[i];
  if (!shard.health.take_change()) return;
  if (shard.health.state() == ShardState::down) {
    std::clog << "shardurl: shard " << shard.name << ": down (" << shard.health.last_error()
              << "); its keys answer 503 until it is back\n";
  } else {
    std::clog << "shardurl: shard " << shard.name << ": up\n";
  }
}

// Probes on a connection of its own, not one from the pool, so that a busy pool cannot make a
// healthy shard look down, and a hung shard is found even when no request is waiting on it.
asio::awaitable<void> Shards::probe_loop(std::size_t i) {
  Shard& shard = *shards_[i];
  std::optional<pgasync::Connection> conn;
  while (!closed_) {
    if (!conn || conn->is_broken()) {
      conn.reset();
      auto opened = co_await pgasync::Connection::connect(
          executor_, shard.conninfo, Clock::now() + milliseconds(timeouts_.connect_ms),
          std::string(session_options));
      if (opened) {
        conn.emplace(std::move(*opened));
      } else if (!closed_) {
        shard.health.probe_failed(Clock::now(), opened.error().describe());
      }
    }
    if (conn) {
      auto answer =
          co_await conn->query("SELECT 1", {}, Clock::now() + milliseconds(timeouts_.query_ms));
      if (closed_) break;
      if (answer) {
        shard.health.probe_succeeded(Clock::now());
      } else {
        shard.health.probe_failed(Clock::now(), answer.error().describe());
        conn.reset();
      }
    }
    log_transition(i);
    shard.wake.expires_after(shard.health.next_probe_in());
    co_await shard.wake.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

}  // namespace shardurl
