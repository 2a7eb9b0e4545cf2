#include "pgasync/shard_pool.hpp"

#include <algorithm>
#include <deque>
#include <list>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace shardurl::pgasync {
namespace asio = boost::asio;

namespace detail {

// One acquire() waiting in line. It lives in that coroutine's frame; the pool only points at it.
// A releaser fills `conn` or `slot` and cancels the timer to wake it.
struct Waiter {
  Waiter(PoolState& pool_state, Deadline deadline);
  Waiter(const Waiter&) = delete;
  Waiter& operator=(const Waiter&) = delete;
  ~Waiter();

  PoolState& pool;
  asio::steady_timer timer;
  std::list<Waiter*>::iterator position;
  bool queued = false;
  bool slot = false;  // may connect a new session; already counted in PoolState::open
  bool closed = false;
  std::optional<Connection> conn;
};

struct PoolState : std::enable_shared_from_this<PoolState> {
  PoolState(asio::any_io_executor executor, std::string info, PoolConfig cfg)
      : ex(std::move(executor)), conninfo(std::move(info)), config(cfg) {}

  asio::any_io_executor ex;
  std::string conninfo;
  PoolConfig config;
  std::deque<Connection> idle;  // most recently returned at the back: reuse warm sessions first
  std::size_t open = 0;         // idle + leased + connecting, bounded by config.max_size
  std::list<Waiter*> waiters;   // FIFO
  bool closed = false;

  Waiter* pop_waiter() noexcept {
    if (waiters.empty()) return nullptr;
    Waiter* w = waiters.front();
    waiters.pop_front();
    w->queued = false;
    return w;
  }

  // A session ended: its slot goes to the first waiter, who connects a replacement.
  void free_slot() noexcept {
    --open;
    if (closed) return;
    if (Waiter* w = pop_waiter()) {
      ++open;
      w->slot = true;
      w->timer.cancel();
    }
  }

  void give_back(Connection conn) noexcept {
    // A pooled session LISTENs to nothing, but behind a transaction-mode pooler another client's
    // notifications can reach it: never let them pile up.
    conn.discard_notifications();
    if (closed || conn.is_broken() || conn.in_transaction()) {
      conn.close();
      free_slot();
      return;
    }
    if (Waiter* w = pop_waiter()) {
      w->conn.emplace(std::move(conn));
      w->timer.cancel();
      return;
    }
    idle.push_back(std::move(conn));
  }

  Lease lease(Connection conn) { return Lease(shared_from_this(), std::move(conn)); }

  // Opens a session for a slot already counted in `open`, within connect_timeout (its own bound:
  // see PoolConfig::connect_timeout).
  asio::awaitable<Result<Lease>> connect_new() {
    const Deadline connect_deadline = Clock::now() + config.connect_timeout;
    auto conn = co_await Connection::connect(ex, conninfo, connect_deadline, config.session_options);
    if (!conn) {
      free_slot();
      Error err = conn.error();
      if (err.code == Errc::timeout) {
        err.code = Errc::connection_failed;  // our connect_timeout, not a statement's deadline
        err.diag.client_message = "connect_timeout elapsed";
      }
      co_return err;
    }
    if (!config.session_script.empty() && !closed) {
      auto ran = co_await conn->execute_script(config.session_script, connect_deadline);
      if (!ran) {
        conn->close();
        free_slot();
        Error err = ran.error();
        if (err.code != Errc::server_error) err.code = Errc::connection_failed;
        co_return err;
      }
    }
    if (closed) {
      conn->close();
      free_slot();
      co_return Error{Errc::pool_closed, {}};
    }
    co_return lease(std::move(*conn));
  }

  void close() noexcept {
    if (closed) return;
    closed = true;
    for (auto& conn : idle) conn.close();
    open -= idle.size();
    idle.clear();
    while (Waiter* w = pop_waiter()) {
      w->closed = true;
      w->timer.cancel();
    }
  }
};

Waiter::Waiter(PoolState& pool_state, Deadline deadline)
    : pool(pool_state), timer(pool_state.ex, deadline) {
  position = pool.waiters.insert(pool.waiters.end(), this);
  queued = true;
}

// Runs also when the acquire() coroutine is destroyed without resuming: whatever was handed to
// it goes back, so a slot is never leaked.
Waiter::~Waiter() {
  if (queued) pool.waiters.erase(position);
  if (conn) pool.give_back(std::move(*conn));
  if (slot) pool.free_slot();
}

}  // namespace detail

Lease::Lease(std::shared_ptr<detail::PoolState> pool, Connection conn) noexcept
    : pool_(std::move(pool)), conn_(std::move(conn)) {}

Lease::Lease(Lease&& other) noexcept
    : pool_(std::move(other.pool_)), conn_(std::exchange(other.conn_, std::nullopt)) {}

Lease& Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    release();
    pool_ = std::move(other.pool_);
    conn_ = std::exchange(other.conn_, std::nullopt);
  }
  return *this;
}

void Lease::release() noexcept {
  if (conn_ && pool_) {
    pool_->give_back(std::move(*conn_));
  } else if (conn_) {
    conn_->close();
  }
  conn_.reset();
  pool_.reset();
}

ShardPool::ShardPool(asio::any_io_executor ex, std::string conninfo, PoolConfig config)
    : state_(std::make_shared<detail::PoolState>(std::move(ex), std::move(conninfo), config)) {}

ShardPool::~ShardPool() {
  close();
}

asio::awaitable<Result<Lease>> ShardPool::acquire(Deadline deadline) {
  const std::shared_ptr<detail::PoolState> pool = state_;  // leases and waiters may outlive us
  if (pool->closed) co_return Error{Errc::pool_closed, {}};

  while (!pool->idle.empty()) {
    Connection conn = std::move(pool->idle.back());
    pool->idle.pop_back();
    if (conn.check_alive()) co_return pool->lease(std::move(conn));
    --pool->open;  // the server ended it while idle (restart, idle timeout): replace below
  }

  if (pool->open < pool->config.max_size) {
    ++pool->open;
    co_return co_await pool->connect_new();
  }

  if (pool->waiters.size() >= pool->config.max_waiters) {
    co_return Error{Errc::pool_exhausted, {}};
  }

  detail::Waiter waiter(*pool, deadline);
  boost::system::error_code ec;
  try {
    std::tie(ec) = co_await waiter.timer.async_wait(asio::as_tuple(asio::use_awaitable));
  } catch (const boost::system::system_error&) {
    ec = asio::error::operation_aborted;  // cancellation was requested before we suspended
  }
  if (waiter.conn) {
    Connection conn = std::move(*waiter.conn);
    waiter.conn.reset();
    co_return pool->lease(std::move(conn));
  }
  if (waiter.slot) {
    waiter.slot = false;
    co_return co_await pool->connect_new();
  }
  if (waiter.closed) co_return Error{Errc::pool_closed, {}};
  co_return Error{ec ? Errc::cancelled : Errc::timeout, {}};
}

void ShardPool::set_session_script(std::string script) {
  state_->config.session_script = std::move(script);
}

void ShardPool::set_connect_timeout(std::chrono::milliseconds timeout) {
  state_->config.connect_timeout = timeout;
}

void ShardPool::close() noexcept {
  state_->close();
}

std::size_t ShardPool::size() const noexcept {
  return state_->open;
}
std::size_t ShardPool::idle() const noexcept {
  return state_->idle.size();
}
std::size_t ShardPool::waiting() const noexcept {
  return state_->waiters.size();
}
const PoolConfig& ShardPool::config() const noexcept {
  return state_->config;
}

}  // namespace shardurl::pgasync
