// The Batcher against a real PostgreSQL server: concurrent statements share pipelines, one bad
// statement costs only itself, and a down shard is refused at once.
//
// Environment: SHARDURL_TEST_CONNINFO, as for pgasync_pgtest.cpp. The tests run in a database of
// their own on that server, made with initdb/ (SHARDURL_INITDB_DIR) and dropped at the end.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <libpq-fe.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "batcher.hpp"
#include "config.hpp"
#include "shards.hpp"

namespace asio = boost::asio;
using shardurl::Batcher;
using shardurl::Statement;

#define LOOKUP_SQL                                                                          \
  "SELECT CASE WHEN k.id LIKE 'x%' THEN NULL ELSE 'v' || k.id END, txid_current() FROM " \
  "unnest($1::text[]) WITH ORDINALITY AS k(id, n) ORDER BY k.n"
using shardurl::StoreError;
using shardurl::StoreResult;
using shardurl::pgasync::QueryResult;

namespace {

std::string server_conninfo() {
  const char* value = std::getenv("SHARDURL_TEST_CONNINFO");
  if (value == nullptr || *value == '\0') FAIL("SHARDURL_TEST_CONNINFO is not set");
  return value;
}

// Runs `sql` (any number of statements) on `info`; empty when it worked, else libpq's message.
std::string exec(const std::string& info, const std::string& sql) {
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdb(info.c_str()), &PQfinish);
  if (PQstatus(conn.get()) != CONNECTION_OK) return PQerrorMessage(conn.get());
  std::unique_ptr<PGresult, decltype(&PQclear)> res(PQexec(conn.get(), sql.c_str()), &PQclear);
  const auto status = PQresultStatus(res.get());
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return {};
  return PQresultErrorMessage(res.get());
}

// A database of this test's own, with the shard schema, for as long as the test runs.
struct Database {
  Database() : name("batcher_" + std::to_string(::getpid())) {
    exec(server_conninfo(), "DROP DATABASE IF EXISTS " + name);
    REQUIRE(exec(server_conninfo(), "CREATE DATABASE " + name).empty());
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(SHARDURL_INITDB_DIR)) {
      if (entry.path().extension() == ".sql") files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      std::ifstream in(file);
      std::stringstream text;
      text << in.rdbuf();
      const auto error = exec(info(), text.str());
      INFO(file << ": " << error);
      REQUIRE(error.empty());
    }
  }
  ~Database() { exec(server_conninfo(), "DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); }
  [[nodiscard]] std::string info() const { return server_conninfo() + " dbname=" + name; }
  std::string name;
};

std::string conninfo() {
  static const Database database;
  return database.info();
}

shardurl::Config one_shard(const std::string& info) {
  shardurl::Config config;
  shardurl::ShardConfig shard;
  shard.name = "s0";
  shard.conninfo = info;
  config.shards.push_back(shard);
  return config;
}

// Every session prepares these (the service's own statements are not needed here).
constexpr const char* script =
    "PREPARE batch_echo (text) AS SELECT $1, txid_current();"
    "PREPARE batch_divide (text) AS SELECT 100 / $1::int, txid_current();"
    // A lookup statement as Batcher::Limits::lookup describes it: keys starting with 'x' have no
    // value, every other key's value is 'v' || key.
    "PREPARE batch_lookup (text[]) AS " LOOKUP_SQL ";"
    "PREPARE batch_head (bigint) AS SELECT shardurl_batch($1)";

constexpr Statement echo{"batch_echo", "SELECT $1, txid_current()"};
constexpr Statement divide{"batch_divide", "SELECT 100 / $1::int, txid_current()"};
constexpr Statement lookup_statement{"batch_lookup", LOOKUP_SQL};
constexpr Statement head{"batch_head", "SELECT shardurl_batch($1::bigint)"};

Batcher::Limits limits(std::size_t max_batch, std::size_t max_queued, std::size_t max_running = 1) {
  return {max_batch, max_queued, max_running, lookup_statement, head};
}

struct Outcome {
  bool ok = false;
  std::string value;
  std::string txid;
  StoreError error;
  std::chrono::steady_clock::duration took{};
};

struct Run {
  std::vector<Outcome> out;
  shardurl::ShardStatus status;  // the shard's state once every statement was answered
};

// Submits every parameter at once (all concurrent), runs the loop until all are answered. A
// `statement` with an empty sql means lookups. `timeout` is each statement's deadline from now.
Run run_all(const shardurl::Config& config, const Statement& statement,
            const std::vector<std::string>& values, Batcher::Limits batch_limits,
            std::chrono::milliseconds timeout = std::chrono::seconds(10),
            std::uint64_t ring_version = 0) {
  asio::io_context io(1);
  shardurl::Shards shards({io.get_executor()}, config, script, "batcher_pgtest");
  Batcher batcher(shards, batch_limits);
  Run run;
  run.out.resize(values.size());
  std::size_t answered = 0;
  const auto start = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < values.size(); ++i) {
    asio::co_spawn(
        io,
        [&, i]() -> asio::awaitable<void> {
          // No co_await inside ?: : GCC 12 miscompiles it (see docs/notes.md).
          shardurl::StoreResult<shardurl::Rows> r = shardurl::StoreError{};
          const auto deadline = start + timeout;
          if (statement.sql.empty()) {
            r = co_await batcher.lookup(0, ring_version, values[i], deadline);
          } else {
            std::vector<std::string> params{values[i]};
            r = co_await batcher.run(0, ring_version, statement, std::move(params), deadline);
          }
          run.out[i].took = std::chrono::steady_clock::now() - start;
          if (r && r->rows() == 0) {
            run.out[i].ok = true;
            run.out[i].value = "(none)";
          } else if (r) {
            run.out[i].ok = true;
            run.out[i].value = std::string(r->get(0, 0));
            run.out[i].txid = std::string(r->get(0, 1));
          } else {
            run.out[i].error = r.error();
          }
          if (++answered == values.size()) {
            run.status = shards.status(0);
            shards.close();
          }
        },
        asio::detached);
  }
  io.run();
  REQUIRE(answered == values.size());
  return run;
}

std::vector<std::string> numbers(int n) {
  std::vector<std::string> v;
  for (int i = 1; i <= n; ++i) v.push_back(std::to_string(i));
  return v;
}

}  // namespace

TEST_CASE("concurrent statements share transactions, and each gets its own answer", "[batcher]") {
  const auto values = numbers(300);
  const auto out =
      run_all(one_shard(conninfo()), echo, values, limits(64, 1000)).out;
  std::set<std::string> txids;
  for (std::size_t i = 0; i < values.size(); ++i) {
    INFO("statement " << i << ": " << out[i].error.detail);
    REQUIRE(out[i].ok);
    CHECK(out[i].value == values[i]);
    txids.insert(out[i].txid);
  }
  // One session, at most 64 per pipeline: 300 statements need at least 5 transactions, and far
  // fewer than 300 prove that they were grouped.
  CHECK(txids.size() >= 5);
  CHECK(txids.size() <= 60);
}

TEST_CASE("max_batch 1 sends every statement alone", "[batcher]") {
  const auto values = numbers(40);
  const auto out =
      run_all(one_shard(conninfo()), echo, values, limits(1, 1000)).out;
  std::set<std::string> txids;
  for (const auto& o : out) {
    REQUIRE(o.ok);
    txids.insert(o.txid);
  }
  CHECK(txids.size() == values.size());
}

TEST_CASE("a failing statement is answered with its error and the rest of its batch still runs",
          "[batcher]") {
  auto values = numbers(100);
  values[10] = "0";  // division by zero
  values[70] = "0";
  const auto run = run_all(one_shard(conninfo()), divide, values, limits(64, 1000));
  const auto& out = run.out;
  // The statement's own error leaves the shard up.
  CHECK(run.status.state != shardurl::ShardState::down);
  for (std::size_t i = 0; i < values.size(); ++i) {
    INFO("statement " << i << ": " << out[i].error.detail);
    if (values[i] == "0") {
      REQUIRE_FALSE(out[i].ok);
      CHECK(out[i].error.kind == StoreError::Kind::internal);
      CHECK(out[i].error.detail.find("22012") != std::string::npos);
    } else {
      REQUIRE(out[i].ok);
      CHECK(out[i].value == std::to_string(100 / std::stoi(values[i])));
    }
  }
}

TEST_CASE("a full queue refuses at once with shard_overloaded", "[batcher]") {
  const auto values = numbers(50);
  const auto out =
      run_all(one_shard(conninfo()), echo, values, limits(64, 10)).out;
  int ok = 0;
  int overloaded = 0;
  for (const auto& o : out) {
    if (o.ok) {
      ++ok;
    } else {
      CHECK(o.error.kind == StoreError::Kind::shard_overloaded);
      ++overloaded;
    }
  }
  CHECK(ok == 10);  // the queue's ten; the drain loop starts only once they are all queued
  CHECK(overloaded == 40);
}

TEST_CASE("an unreachable shard fails every queued statement with shard_unavailable", "[batcher]") {
  // Port 1 on loopback: nothing listens there, so connecting is refused at once.
  const auto config = one_shard("host=127.0.0.1 port=1 user=postgres dbname=postgres");
  const auto out = run_all(config, echo, numbers(20), limits(64, 1000)).out;
  for (const auto& o : out) {
    REQUIRE_FALSE(o.ok);
    CHECK(o.error.kind == StoreError::Kind::shard_unavailable);
  }
}

TEST_CASE("concurrent lookups go out as one statement per batch and each gets its own row",
          "[batcher]") {
  // Keys that need quoting in an array literal, and keys without a value ('x...').
  std::vector<std::string> values;
  const std::vector<std::string> awkward{"a\"b", "c\\d", "e,f", "{g}", " sp ", "NULL", "", "h'i"};
  for (int i = 0; i < 300; ++i) {
    values.push_back(i % 3 == 0 ? "x" + std::to_string(i)
                                : awkward[static_cast<std::size_t>(i) % awkward.size()] +
                                      std::to_string(i));
  }
  // Exactly the words an array literal could mistake for syntax, and the same key twice in a batch.
  for (const char* exact : {"NULL", "", "{}", "\"", "\\", "dup", "dup"}) values.emplace_back(exact);
  const auto out = run_all(one_shard(conninfo()), Statement{}, values, limits(64, 1000)).out;
  std::set<std::string> txids;
  for (std::size_t i = 0; i < values.size(); ++i) {
    INFO("lookup " << i << " of '" << values[i] << "': " << out[i].error.detail);
    REQUIRE(out[i].ok);
    if (!values[i].empty() && values[i].front() == 'x') {
      CHECK(out[i].value == "(none)");
    } else {
      CHECK(out[i].value == "v" + values[i]);
      txids.insert(out[i].txid);
    }
  }
  CHECK(txids.size() >= 4);  // 200 answered lookups, at most 64 per batch
  CHECK(txids.size() <= 40);
}

TEST_CASE("a statement the session has not prepared is sent unnamed, and nothing fails",
          "[batcher]") {
  // As behind a transaction-mode pooler: the session that ran the PREPAREs is not the one that
  // runs the statement. 26000 is the statement's own problem; the shard stays up.
  const Statement unprepared{"batch_not_prepared", "SELECT $1, txid_current()"};
  const auto values = numbers(50);
  const auto run = run_all(one_shard(conninfo()), unprepared, values, limits(64, 1000));
  for (std::size_t i = 0; i < values.size(); ++i) {
    INFO("statement " << i << ": " << run.out[i].error.detail);
    REQUIRE(run.out[i].ok);
    CHECK(run.out[i].value == values[i]);
  }
  CHECK(run.status.state != shardurl::ShardState::down);
}

TEST_CASE("pool_mode transaction sends every statement unnamed from the start", "[batcher]") {
  auto config = one_shard(conninfo());
  config.shards[0].pool_mode = shardurl::PoolMode::transaction;
  const Statement unprepared{"batch_not_prepared", "SELECT $1, txid_current()"};
  const auto values = numbers(20);
  const auto run = run_all(config, unprepared, values, limits(64, 1000));
  for (const auto& o : run.out) REQUIRE(o.ok);
}

TEST_CASE("every batch commits durably whatever the session's setting", "[batcher]") {
  // The session starts with synchronous_commit off, as a role's or database's default could be.
  auto config = one_shard(conninfo() + " options='-c synchronous_commit=off'");
  const Statement setting{"", "SELECT current_setting('synchronous_commit') || $1, txid_current()"};
  const auto out = run_all(config, setting, {"!", "?"}, limits(64, 1000)).out;
  for (const auto& o : out) {
    REQUIRE(o.ok);
    CHECK(o.value.substr(0, 2) == "on");
  }
}

TEST_CASE("a shard that serves a newer ring refuses every statement routed by an older one",
          "[batcher]") {
  REQUIRE(exec(conninfo(), "UPDATE shardurl_meta SET value = '7' WHERE key = 'ring_version'").empty());
  const auto stale = run_all(one_shard(conninfo()), echo, numbers(20), limits(8, 1000),
                             std::chrono::seconds(10), 6);
  const auto lookups = run_all(one_shard(conninfo()), Statement{}, {"a", "b"}, limits(8, 1000),
                               std::chrono::seconds(10), 6);
  const auto current = run_all(one_shard(conninfo()), echo, numbers(20), limits(8, 1000),
                               std::chrono::seconds(10), 7);
  REQUIRE(exec(conninfo(), "UPDATE shardurl_meta SET value = '0' WHERE key = 'ring_version'").empty());
  for (const auto& o : stale.out) {
    REQUIRE_FALSE(o.ok);
    CHECK(o.error.kind == StoreError::Kind::stale);
  }
  for (const auto& o : lookups.out) {
    REQUIRE_FALSE(o.ok);
    CHECK(o.error.kind == StoreError::Kind::stale);
  }
  for (const auto& o : current.out) CHECK(o.ok);
  CHECK(stale.status.state != shardurl::ShardState::down);  // a newer ring is no outage
}

TEST_CASE("a statement whose deadline passes is answered shard_timeout then, not when the shard "
          "answers",
          "[batcher]") {
  // One session, busy for 1.5 s with the first statement; the others wait in the queue with a
  // 300 ms deadline.
  const Statement sleepy{"", "SELECT $1 || pg_sleep(CASE WHEN $1 = '1' THEN 1.5 ELSE 0 END), "
                             "txid_current()"};
  const auto run = run_all(one_shard(conninfo()), sleepy, numbers(5), limits(1, 1000),
                           std::chrono::milliseconds(300));
  for (const auto& o : run.out) {
    REQUIRE_FALSE(o.ok);
    CHECK(o.error.kind == StoreError::Kind::shard_timeout);
    CHECK(o.took >= std::chrono::milliseconds(300));
    CHECK(o.took < std::chrono::milliseconds(600));  // the sweep runs every 20 ms
  }
}

TEST_CASE("max_queued 0 takes a statement only when a session is free for it", "[batcher]") {
  const auto out = run_all(one_shard(conninfo()), echo, numbers(30), limits(64, 0, 2)).out;
  int ok = 0;
  for (const auto& o : out) {
    if (o.ok) {
      ++ok;
    } else {
      CHECK(o.error.kind == StoreError::Kind::shard_overloaded);
    }
  }
  CHECK(ok == 2);  // both drain loops' first statements; nothing waited
}
