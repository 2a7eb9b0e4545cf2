// pgasync against a real PostgreSQL server.
//
// Environment:
//   SHARDURL_TEST_CONNINFO  libpq conninfo of a throwaway server, e.g.
//                           "host=127.0.0.1 port=56432 user=postgres dbname=postgres" (required)
//   SHARDURL_TEST_PGDATA    that server's data directory, for the restart test (required there)
//   SHARDURL_TEST_PGBIN     directory of pg_ctl (default /usr/lib/postgresql/15/bin)
// A missing variable fails the test: a test that cannot run must not pass.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <libpq-fe.h>

#include "pgasync/connection.hpp"
#include "pgasync/shard_pool.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using shardurl::pgasync::Clock;
using shardurl::pgasync::Connection;
using shardurl::pgasync::Errc;
using shardurl::pgasync::Param;
using shardurl::pgasync::params;
using shardurl::pgasync::PoolConfig;
using shardurl::pgasync::ShardPool;

namespace {

std::string required_env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    FAIL(name << " is not set: these tests need a PostgreSQL server they may restart "
                 "(see the comment at the top of test/integration/pgasync_pgtest.cpp)");
  }
  return value;
}

std::string conninfo() {
  return required_env("SHARDURL_TEST_CONNINFO");
}

Clock::time_point in(std::chrono::milliseconds ms) {
  return Clock::now() + ms;
}

// Runs `body` on `ioc` to completion; a failed REQUIRE inside it fails the test case.
void run(asio::io_context& ioc, const std::function<asio::awaitable<void>()>& body) {
  std::exception_ptr failure;
  asio::co_spawn(ioc, body(), [&](std::exception_ptr e) { failure = std::move(e); });
  ioc.restart();
  ioc.run();
  if (failure) std::rethrow_exception(failure);
}

std::string unique_table(const char* stem) {
  static std::atomic<int> counter{0};
  return std::string(stem) + "_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
}

// A TCP port on 127.0.0.1 that nothing listens on (bound, then released).
int unused_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string describe(const shardurl::pgasync::Error& err) {
  return err.describe();
}

template <class R>
void require_ok(const R& res) {
  INFO((res ? std::string() : describe(res.error())));
  REQUIRE(res.has_value());
}

}  // namespace

TEST_CASE("connect and query with parameters", "[pgasync]") {
  const auto info = conninfo();
  asio::io_context ioc;
  run(ioc, [&]() -> asio::awaitable<void> {
    auto conn = co_await Connection::connect(ioc.get_executor(), info, in(2s));
    REQUIRE(conn.has_value());
    auto res = co_await conn->query("SELECT $1::int + $2::int AS sum, $3::text",
                                    params("2", "3", "abc"), in(2s));
    INFO((res ? "" : describe(res.error())));
    REQUIRE(res.has_value());
    CHECK(res->rows() == 1);
    CHECK(res->columns() == 2);
    CHECK(res->get(0, 0) == "5");
    CHECK(res->get(0, 1) == "abc");
    CHECK(res->column_index("sum") == 0);
    CHECK(res->affected_rows() == 1);

    auto none = co_await conn->query("SELECT 1 WHERE false", {}, in(2s));
    REQUIRE(none.has_value());
    CHECK(none->rows() == 0);
  });
}

TEST_CASE("NULL parameters and NULL values", "[pgasync]") {
  const auto info = conninfo();
  asio::io_context ioc;
  run(ioc, [&]() -> asio::awaitable<void> {
    auto conn = co_await Connection::connect(ioc.get_executor(), info, in(2s));
    REQUIRE(conn.has_value());
    const Param params[] = {std::nullopt, Param{""}};
    auto res = co_await conn->query("SELECT $1::text IS NULL, $1::text, $2::text IS NULL, $2::text",
                                    params, in(2s));
    REQUIRE(res.has_value());
    CHECK(res->get(0, 0) == "t");
    CHECK(res->is_null(0, 1));
    CHECK_FALSE(res->get_optional(0, 1).has_value());
    CHECK(res->get(0, 2) == "f");  // the empty string is not NULL
    CHECK_FALSE(res->is_null(0, 3));
    CHECK(res->get_optional(0, 3) == std::optional<std::string_view>(""));
  });
}

TEST_CASE("Unicode text round-trips through a table", "[pgasync]") {
  const auto info = conninfo();
  const auto table = unique_table("pga_unicode");
  asio::io_context ioc;
  run(ioc, [&]() -> asio::awaitable<void> {
    auto conn = co_await Connection::connect(ioc.get_executor(), info, in(2s));
    REQUIRE(conn.has_value());
    require_ok(co_await conn->query("CREATE TEMP TABLE " + table + " (v text)", {}, in(2s)));
    const std::string text =
        "h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x9A\x80";  // héllo 世界 🚀
    auto ins = co_await conn->query("INSERT INTO " + table + " VALUES ($1)", params(text), in(2s));
    REQUIRE(ins.has_value());
    CHECK(ins->affected_rows() == 1);
    auto res = co_await conn->query("SELECT v, length(v) FROM " + table, {}, in(2s));
    REQUIRE(res.has_value());
    CHECK(res->get(0, 0) == text);
    CHECK(res->get(0, 1) == "10");  // characters, not bytes
  });
}

TEST_CASE("prepared statements", "[pgasync]") {
  const auto info = conninfo();
  asio::io_context ioc;
  run(ioc, [&]() -> asio::awaitable<void> {
    auto conn = co_await Connection::connect(ioc.get_executor(), info, in(2s));
    REQUIRE(conn.has_value());
    require_ok(co_await conn->prepare("add", "SELECT $1::int + $2::int", in(2s)));
    for (int i = 0; i < 3; ++i) {
      const std::string a = std::to_string(i);
      auto res = co_await conn->execute_prepared("add", params(a, "10"), in(2s));
      REQUIRE(res.has_value());
      CHECK(res->get(0, 0) == std::to_string(i + 10));
    }
    auto missing = co_await conn->execute_prepared("nope", {}, in(2s));
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().diag.sqlstate == "26000");  // invalid_sql_statement_name
    CHECK_FALSE(conn->is_broken());
  });
}

TEST_CASE("a unique violation is a non-fatal server error with SQLSTATE 23505", "[pgasync]") {
  const auto info = conninfo();
  const auto table = unique_table("pga_unique");
  asio::io_context ioc;
  run(ioc, [&]() -> asio::awaitable<void> {
    auto conn = co_await Connection::connect(ioc.get_executor(), info, in(2s));
    REQUIRE(conn.has_value());
    require_ok(
        co_await conn->query("CREATE TEMP TABLE " + table + " (id text PRIMARY KEY)", {}, in(2s)));
    const std::string insert = "INSERT INTO " + table + " VALUES ($1)";
    require_ok(co_await conn->query(insert, params("abc"), in(2s)));
    auto dup = co_await conn->query(insert, params("abc"), in(2s));
    REQUIRE_FALSE(dup.has_value());
    const auto& err = dup.error();
    CHECK(err.code == Errc::server_error);
    CHECK(err.diag.sqlstate == "23505");
    CHECK(shardurl::pgasync::has_sqlstate(err, shardurl::pgasync::sqlstate::unique_violation));
    CHECK_FALSE(err.diag.server_message.empty());
    CHECK_FALSE(err.diag.server_detail.empty());  // Key (id)=(abc) already exists.
    CHECK_FALSE(shardurl::pgasync::is_fatal(err));
    CHECK_FALSE(conn->is_broken());

    auto count = co_await conn->query("SELECT count(*) FROM " + table, {}, in(2s));
    REQUIRE(count.has_value());
    CHECK(count->get(0, 0) == "1");
  });
}

TEST_CASE("a syntax error is SQLSTATE 42601 and leaves the connection usable", "[pgasync]") {
  const auto info = conninfo();
  asio::io_context ioc;
  run(ioc, [&]() -> asio::awaitable<void> {
    auto conn = co_await Connection::connect(ioc.get_executor(), info, in(2s));
    REQUIRE(conn.has_value());
    auto bad = co_await conn->query("SELEC 1", {}, in(2s));
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().code == Errc::server_error);
    CHECK(bad.error().diag.sqlstate == "42601");
    CHECK_FALSE(shardurl::pgasync::is_fatal(bad.error()));
    auto good = co_await conn->query("SELECT 1", {}, in(2s));
    REQUIRE(good.has_value());
    CHECK(good->get(0, 0) == "1");
  });
}

TEST_CASE("a deadline mid-query is a timeout and the pool replaces the connection", "[pgasync]") {
  const auto info = conninfo();
  asio::io_context ioc;
  ShardPool pool(ioc.get_executor(), info, PoolConfig{.max_size = 1});
  run(ioc, [&]() -> asio::awaitable<void> {
    {
      auto lease = co_await pool.acquire(in(2s));
      REQUIRE(lease.has_value());
      const auto start = Clock::now();
      auto res = co_await (*lease)->query("SELECT pg_sleep(5)", {}, in(200ms));
      const auto elapsed = Clock::now() - start;
      REQUIRE_FALSE(res.has_value());
      CHECK(res.error().code == Errc::timeout);
      CHECK(shardurl::pgasync::is_fatal(res.error()));
      CHECK((*lease)->is_broken());
      CHECK(elapsed >= 150ms);
      CHECK(elapsed < 1s);
    }
    CHECK(pool.size() == 0);  // the broken one was discarded, not pooled
    auto lease = co_await pool.acquire(in(2s));
    REQUIRE(lease.has_value());
    auto res = co_await (*lease)->query("SELECT 42", {}, in(2s));
    REQUIRE(res.has_value());
    CHECK(res->get(0, 0) == "42");
  });
}

TEST_CASE("cancelling a query is reported as cancelled, not timeout", "[pgasync]") {
  const auto info = conninfo();
  asio::io_context ioc;
  run(ioc, [&]() -> asio::awaitable<void> {
    auto conn = co_await Connection::connect(ioc.get_executor(), info, in(2s));
    REQUIRE(conn.has_value());
    asio::cancellation_signal signal;
    std::optional<shardurl::pgasync::Result<shardurl::pgasync::QueryResult>> outcome;
    auto sleeper = [&]() -> asio::awaitable<void> {
      outcome.emplace(co_await conn->query("SELECT pg_sleep(5)", {}, in(10s)));
    };
    asio::co_spawn(ioc, sleeper(),
                   asio::bind_cancellation_slot(signal.slot(), [](std::exception_ptr) {}));
    asio::steady_timer timer(ioc, 100ms);
    co_await timer.async_wait(asio::use_awaitable);
    signal.emit(asio::cancellation_type::terminal);
    timer.expires_after(100ms);
    co_await timer.async_wait(asio::use_awaitable);
    REQUIRE(outcome.has_value());
    REQUIRE_FALSE(outcome->has_value());
    CHECK(outcome->error().code == Errc::cancelled);
    CHECK(conn->is_broken());
  });
}

TEST_CASE("pool: waiters beyond max_waiters get pool_exhausted at once", "[pgasync]") {
  const auto info = conninfo();
  asio::io_context ioc;
  ShardPool pool(ioc.get_executor(), info, PoolConfig{.max_size = 1, .max_waiters = 0});
  run(ioc, [&]() -> asio::awaitable<void> {
    auto first = co_await pool.acquire(in(2s));
    REQUIRE(first.has_value());
    const auto start = Clock::now();
    auto second = co_await pool.acquire(in(2s));
    REQUIRE_FALSE(second.has_value());
    CHECK(second.error().code == Errc::pool_exhausted);
    CHECK(Clock::now() - start < 100ms);
  });
}

TEST_CASE("pool: a waiter gets a released connection, or timeout at its deadline", "[pgasync]") {
  const auto info = conninfo();
  asio::io_context ioc;
  ShardPool pool(ioc.get_executor(), info, PoolConfig{.max_size = 1, .max_waiters = 1});
  run(ioc, [&]() -> asio::awaitable<void> {
    auto first = co_await pool.acquire(in(2s));
    REQUIRE(first.has_value());
    auto* held = (*first)->native_handle();

    const auto start = Clock::now();
    auto timed_out = co_await pool.acquire(in(200ms));
    REQUIRE_FALSE(timed_out.has_value());
    CHECK(timed_out.error().code == Errc::timeout);
    CHECK(Clock::now() - start >= 150ms);
    CHECK(pool.waiting() == 0);

    // Release the first lease 50 ms from now, while the next acquire waits.
    asio::steady_timer timer(ioc, 50ms);
    timer.async_wait([&](boost::system::error_code) { first->release(); });
    auto second = co_await pool.acquire(in(2s));
    REQUIRE(second.has_value());
    CHECK((*second)->native_handle() == held);  // the same session, handed over
    CHECK(pool.size() == 1);
  });
}

TEST_CASE("connection refused on an unused port is connection_failed, quickly", "[pgasync]") {
  const auto info = conninfo() + " host=127.0.0.1 hostaddr= port=" + std::to_string(unused_port());
  asio::io_context ioc;
  run(ioc, [&]() -> asio::awaitable<void> {
    const auto start = Clock::now();
    auto conn = co_await Connection::connect(ioc.get_executor(), info, in(5s));
    REQUIRE_FALSE(conn.has_value());
    CHECK(conn.error().code == Errc::connection_failed);
    CHECK(shardurl::pgasync::is_fatal(conn.error()));
    CHECK_FALSE(conn.error().diag.client_message.empty());
    CHECK(Clock::now() - start < 1s);

    ShardPool pool(ioc.get_executor(), info);
    auto lease = co_await pool.acquire(in(5s));
    REQUIRE_FALSE(lease.has_value());
    CHECK(lease.error().code == Errc::connection_failed);
    CHECK(pool.size() == 0);  // the slot was given back
  });
}

TEST_CASE("a host name is resolved asynchronously (localhost)", "[pgasync]") {
  const auto info = conninfo() + " host=localhost hostaddr=";
  asio::io_context ioc;
  run(ioc, [&]() -> asio::awaitable<void> {
    auto conn = co_await Connection::connect(ioc.get_executor(), info, in(5s));
    INFO((conn ? "" : describe(conn.error())));
    REQUIRE(conn.has_value());
    auto res = co_await conn->query("SELECT 1", {}, in(2s));
    REQUIRE(res.has_value());
  });
}

TEST_CASE("the pool replaces connections after the server restarts", "[pgasync][restart]") {
  const auto info = conninfo();
  const auto pgdata = required_env("SHARDURL_TEST_PGDATA");
  const char* bin_env = std::getenv("SHARDURL_TEST_PGBIN");
  const std::string pg_ctl =
      std::string(bin_env != nullptr ? bin_env : "/usr/lib/postgresql/15/bin") + "/pg_ctl";

  asio::io_context ioc;
  ShardPool pool(ioc.get_executor(), info, PoolConfig{.max_size = 2});
  std::optional<shardurl::pgasync::Lease> held;
  std::string old_pid;
  run(ioc, [&]() -> asio::awaitable<void> {
    auto a = co_await pool.acquire(in(2s));
    auto b = co_await pool.acquire(in(2s));
    REQUIRE(a.has_value());
    REQUIRE(b.has_value());
    auto pid = co_await (*b)->query("SELECT pg_backend_pid()", {}, in(2s));
    REQUIRE(pid.has_value());
    old_pid = std::string(pid->get(0, 0));
    held.emplace(std::move(*a));  // stays leased across the restart
  });                             // b went back to the pool: idle across the restart
  REQUIRE(pool.idle() == 1);

  // Blocking on purpose, with no io_context running: this is the test, not an I/O thread.
  const std::string as_postgres = ::geteuid() == 0 ? "runuser -u postgres -- " : "";
  const std::string restart = as_postgres + pg_ctl + " -D '" + pgdata +
                              "' -m fast -w -t 60 restart -l '" + pgdata +
                              "/pgasync_test_restart.log' >/dev/null";
  REQUIRE(std::system(restart.c_str()) == 0);  // NOLINT(cert-env33-c)

  run(ioc, [&]() -> asio::awaitable<void> {
    // The held session died under its owner: a fatal error, and the pool discards it.
    auto dead = co_await (*held)->query("SELECT 1", {}, in(2s));
    REQUIRE_FALSE(dead.has_value());
    INFO(describe(dead.error()));
    CHECK(shardurl::pgasync::is_fatal(dead.error()));
    CHECK((*held)->is_broken());
    held.reset();

    // The idle one is found dead on acquire and replaced without the caller seeing an error.
    auto lease = co_await pool.acquire(in(5s));
    INFO((lease ? "" : describe(lease.error())));
    REQUIRE(lease.has_value());
    auto pid = co_await (*lease)->query("SELECT pg_backend_pid()", {}, in(2s));
    INFO((pid ? "" : describe(pid.error())));
    REQUIRE(pid.has_value());
    CHECK(pid->get(0, 0) != old_pid);
    CHECK(pool.size() == 1);
  });
}

TEST_CASE("execute_script runs several statements in one call and returns the first error",
          "[pgasync]") {
  const auto info = conninfo();
  asio::io_context ioc;
  run(ioc, [&]() -> asio::awaitable<void> {
    auto conn = co_await Connection::connect(ioc.get_executor(), info, in(2s));
    require_ok(conn);
    require_ok(co_await conn->execute_script(
        "PREPARE twice (int) AS SELECT $1 * 2; PREPARE thrice (int) AS SELECT $1 * 3", in(2s)));
    auto six = co_await conn->execute_prepared("thrice", params("2"), in(2s));
    require_ok(six);
    CHECK(six->get(0, 0) == "6");
    auto failed =
        co_await conn->execute_script("SELECT 1; SELECT * FROM no_such_table; SELECT 2", in(2s));
    REQUIRE_FALSE(failed.has_value());
    CHECK(has_sqlstate(failed.error(), "42P01"));
    CHECK_FALSE(conn->is_broken());
  });
}

TEST_CASE("pool: every new session runs the session script before it is leased", "[pgasync]") {
  const auto info = conninfo();
  asio::io_context ioc;
  PoolConfig config{.max_size = 2};
  config.session_script = "PREPARE plus_one (int) AS SELECT $1 + 1";
  ShardPool pool(ioc.get_executor(), info, config);
  run(ioc, [&]() -> asio::awaitable<void> {
    auto a = co_await pool.acquire(in(2s));
    auto b = co_await pool.acquire(in(2s));
    require_ok(a);
    require_ok(b);
    for (auto* lease : {&*a, &*b}) {
      auto answer = co_await (*lease)->execute_prepared("plus_one", params("41"), in(2s));
      require_ok(answer);
      CHECK(answer->get(0, 0) == "42");
    }
  });
}

TEST_CASE("pool: a session script that fails fails the acquire and frees the slot", "[pgasync]") {
  const auto info = conninfo();
  asio::io_context ioc;
  PoolConfig config{.max_size = 1};
  config.session_script = "SELECT * FROM no_such_table";
  ShardPool pool(ioc.get_executor(), info, config);
  run(ioc, [&]() -> asio::awaitable<void> {
    for (int i = 0; i < 2; ++i) {  // the second try would wait for ever if the slot leaked
      auto lease = co_await pool.acquire(in(2s));
      REQUIRE_FALSE(lease.has_value());
      CHECK(has_sqlstate(lease.error(), "42P01"));
    }
    CHECK(pool.size() == 0);
  });
}

namespace {

using shardurl::pgasync::PipelineCall;

// Parameters for one row each: ("<prefix><i>", "<i>").
struct Rows {
  Rows(const std::string& prefix, int count, std::size_t pad = 0) {
    for (int i = 0; i < count; ++i) {
      values.push_back({prefix + std::to_string(i) + std::string(pad, 'x'), std::to_string(i)});
    }
    for (const auto& row : values) params.push_back({Param(row[0]), Param(row[1])});
  }
  [[nodiscard]] std::vector<PipelineCall> calls(std::string_view statement) const {
    std::vector<PipelineCall> out;
    for (const auto& p : params) out.push_back({statement, p});
    return out;
  }
  std::vector<std::array<std::string, 2>> values;
  std::vector<std::array<Param, 2>> params;
};

}  // namespace

TEST_CASE("a pipeline runs many statements in one transaction and answers each", "[pgasync]") {
  const auto info = conninfo();
  const auto table = unique_table("pga_pipeline");
  asio::io_context ioc;
  run(ioc, [&]() -> asio::awaitable<void> {
    auto conn = co_await Connection::connect(ioc.get_executor(), info, in(2s));
    REQUIRE(conn.has_value());
    require_ok(co_await conn->query(
        "CREATE TEMP TABLE " + table + " (id text PRIMARY KEY, n int NOT NULL)", {}, in(2s)));
    require_ok(co_await conn->prepare(
        "pipe_ins", "INSERT INTO " + table + " VALUES ($1, $2::int) RETURNING n", in(2s)));

    auto empty = co_await conn->execute_pipeline({}, in(2s));
    require_ok(empty);
    CHECK(empty->empty());

    // 2,000 rows of about 1 KB each: more than a socket buffer, so sending takes several waits.
    const Rows rows("k", 2000, 1000);
    const auto calls = rows.calls("pipe_ins");
    auto results = co_await conn->execute_pipeline(calls, in(10s));
    require_ok(results);
    REQUIRE(results->size() == calls.size());
    for (std::size_t i = 0; i < calls.size(); ++i) {
      require_ok((*results)[i]);
      REQUIRE((*results)[i]->rows() == 1);
      REQUIRE((*results)[i]->get(0, 0) == std::to_string(i));
    }
    // Pipeline mode is over: the ordinary protocol works again on the same session.
    auto count = co_await conn->query("SELECT count(*) FROM " + table, {}, in(2s));
    require_ok(count);
    CHECK(count->get(0, 0) == "2000");
    CHECK_FALSE(conn->in_transaction());
  });
}

TEST_CASE("one failing statement rolls its pipeline back and marks the others aborted",
          "[pgasync]") {
  const auto info = conninfo();
  const auto table = unique_table("pga_pipeline_err");
  asio::io_context ioc;
  run(ioc, [&]() -> asio::awaitable<void> {
    auto conn = co_await Connection::connect(ioc.get_executor(), info, in(2s));
    REQUIRE(conn.has_value());
    require_ok(co_await conn->query(
        "CREATE TEMP TABLE " + table + " (id text PRIMARY KEY, n int NOT NULL)", {}, in(2s)));
    require_ok(co_await conn->prepare(
        "pipe_ins2", "INSERT INTO " + table + " VALUES ($1, $2::int) RETURNING n", in(2s)));
    require_ok(co_await conn->query("INSERT INTO " + table + " VALUES ('k2', 0)", {}, in(2s)));

    const Rows rows("k", 5);  // k0..k4; k2 already exists
    const auto calls = rows.calls("pipe_ins2");
    auto results = co_await conn->execute_pipeline(calls, in(2s));
    require_ok(results);  // the session is fine: the failure is per statement
    REQUIRE(results->size() == 5);
    for (std::size_t i = 0; i < 5; ++i) {
      REQUIRE_FALSE((*results)[i].has_value());
      if (i == 2) {
        CHECK((*results)[i].error().code == Errc::server_error);
        CHECK((*results)[i].error().diag.sqlstate == "23505");
      } else {
        CHECK((*results)[i].error().code == Errc::pipeline_aborted);  // k0, k1 rolled back too
      }
    }
    CHECK_FALSE(conn->is_broken());
    auto count = co_await conn->query("SELECT count(*) FROM " + table, {}, in(2s));
    require_ok(count);
    CHECK(count->get(0, 0) == "1");

    // The aborted ones can simply run again.
    const std::vector<PipelineCall> again{calls[0], calls[1], calls[3], calls[4]};
    auto retried = co_await conn->execute_pipeline(again, in(2s));
    require_ok(retried);
    for (const auto& r : *retried) require_ok(r);
    count = co_await conn->query("SELECT count(*) FROM " + table, {}, in(2s));
    require_ok(count);
    CHECK(count->get(0, 0) == "5");
  });
}

TEST_CASE("a pipeline past its deadline is a timeout and breaks the session", "[pgasync]") {
  const auto info = conninfo();
  asio::io_context ioc;
  run(ioc, [&]() -> asio::awaitable<void> {
    auto conn = co_await Connection::connect(ioc.get_executor(), info, in(2s));
    REQUIRE(conn.has_value());
    require_ok(co_await conn->prepare("pipe_sleep", "SELECT pg_sleep($1::float8)", in(2s)));
    const auto quick = params("0");
    const auto slow = params("5");
    const std::vector<PipelineCall> calls{{"pipe_sleep", quick}, {"pipe_sleep", slow}};
    const auto start = Clock::now();
    auto results = co_await conn->execute_pipeline(calls, in(300ms));
    const auto elapsed = Clock::now() - start;
    REQUIRE_FALSE(results.has_value());
    CHECK(results.error().code == Errc::timeout);
    CHECK(conn->is_broken());
    CHECK(elapsed >= 250ms);
    CHECK(elapsed < 2s);
  });
}

TEST_CASE("notifications: another session's NOTIFY arrives in commit order; none is a timeout "
          "that leaves the session usable",
          "[pgasync][notify]") {
  const auto info = conninfo();
  const std::string channel = unique_table("chan");
  asio::io_context ioc;
  run(ioc, [&]() -> asio::awaitable<void> {
    auto listener = co_await Connection::connect(ioc.get_executor(), info, in(2s));
    auto sender = co_await Connection::connect(ioc.get_executor(), info, in(2s));
    require_ok(listener);
    require_ok(sender);
    require_ok(co_await listener->query("LISTEN " + channel, {}, in(2s)));

    // Nothing sent: the deadline passes, no error, and the session still answers.
    const auto before = Clock::now();
    auto quiet = co_await listener->wait_notifications(in(150ms));
    require_ok(quiet);
    CHECK(quiet->empty());
    CHECK(Clock::now() - before >= 150ms);
    require_ok(co_await listener->query("SELECT 1", {}, in(2s)));

    // Three transactions, the middle one rolled back: two notifications, in order.
    require_ok(co_await sender->query("SELECT pg_notify($1, 'one')", params(channel), in(2s)));
    require_ok(co_await sender->execute_script(
        "BEGIN; SELECT pg_notify('" + channel + "', 'never'); ROLLBACK", in(2s)));
    require_ok(co_await sender->query("SELECT pg_notify($1, 'two')", params(channel), in(2s)));
    std::vector<std::string> got;
    while (got.size() < 2) {
      auto notes = co_await listener->wait_notifications(in(2s));
      require_ok(notes);
      REQUIRE_FALSE(notes->empty());
      for (const auto& n : *notes) {
        CHECK(n.channel == channel);
        CHECK(n.sender_pid != 0);
        got.push_back(n.payload);
      }
    }
    CHECK(got == std::vector<std::string>{"one", "two"});
  });
}

TEST_CASE("notifications: a session's own NOTIFY comes back with its reply", "[pgasync][notify]") {
  const auto info = conninfo();
  const std::string channel = unique_table("echo");
  asio::io_context ioc;
  run(ioc, [&]() -> asio::awaitable<void> {
    auto conn = co_await Connection::connect(ioc.get_executor(), info, in(2s));
    require_ok(conn);
    require_ok(co_await conn->query("LISTEN " + channel, {}, in(2s)));
    require_ok(co_await conn->query("SELECT pg_notify($1, 'beat')", params(channel), in(2s)));
    // Already parsed with the reply: no waiting needed, and wait_notifications returns it at once.
    auto notes = co_await conn->wait_notifications(in(2s));
    require_ok(notes);
    REQUIRE(notes->size() == 1);
    CHECK(notes->front().payload == "beat");
    CHECK(conn->take_notifications().empty());
  });
}

TEST_CASE("notifications: the server ending the session is connection_lost", "[pgasync][notify]") {
  const auto info = conninfo();
  asio::io_context ioc;
  run(ioc, [&]() -> asio::awaitable<void> {
    auto listener = co_await Connection::connect(ioc.get_executor(), info, in(2s));
    auto killer = co_await Connection::connect(ioc.get_executor(), info, in(2s));
    require_ok(listener);
    require_ok(killer);
    require_ok(co_await listener->query("LISTEN whatever", {}, in(2s)));
    const std::string pid = std::to_string(PQbackendPID(listener->native_handle()));
    require_ok(co_await killer->query("SELECT pg_terminate_backend($1::int)", params(pid), in(2s)));
    auto notes = co_await listener->wait_notifications(in(3s));
    REQUIRE_FALSE(notes.has_value());
    CHECK(notes.error().code == Errc::connection_lost);
    CHECK(listener->is_broken());
  });
}

TEST_CASE("errors: what concerns the server, and what only its statement", "[pgasync]") {
  using shardurl::pgasync::Error;
  using shardurl::pgasync::is_server_unavailable;
  const auto server = [](const char* state) {
    Error e{Errc::server_error, {}};
    e.diag.sqlstate = state;
    return e;
  };
  for (const char* state : {"08006", "57P01", "57P02", "57P03", "25006", "53300", "53100", "58030",
                            "3D000", "28P01", "57P04"}) {
    INFO(state);
    CHECK(is_server_unavailable(server(state)));
  }
  for (const char* state : {"23505", "42601", "26000", "42P05", "22012", "57014", "40001", "42P01"}) {
    INFO(state);
    CHECK_FALSE(is_server_unavailable(server(state)));
  }
  CHECK(is_server_unavailable(Error{Errc::connection_lost, {}}));
  CHECK(is_server_unavailable(Error{Errc::connection_failed, {}}));
  CHECK(is_server_unavailable(Error{Errc::timeout, {}}));
  CHECK_FALSE(is_server_unavailable(Error{Errc::pipeline_aborted, {}}));
  CHECK_FALSE(is_server_unavailable(Error{Errc::cancelled, {}}));
  CHECK_FALSE(is_server_unavailable(Error{Errc::pool_exhausted, {}}));
  CHECK(shardurl::pgasync::is_fatal(server("25006")));  // a standby: find the primary anew
}

TEST_CASE("a connect the server refuses carries the server's SQLSTATE", "[pgasync]") {
  const auto info = conninfo() + " dbname=no_such_database_here";
  asio::io_context ioc;
  run(ioc, [&]() -> asio::awaitable<void> {
    auto conn = co_await Connection::connect(ioc.get_executor(), info, in(2s));
    REQUIRE_FALSE(conn.has_value());
    CHECK(conn.error().code == Errc::connection_failed);
    CHECK(conn.error().diag.sqlstate == "3D000");
    CHECK(conn.error().describe().find("no_such_database_here") != std::string::npos);
    CHECK(shardurl::pgasync::is_server_unavailable(conn.error()));
  });
}
