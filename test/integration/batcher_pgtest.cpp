// The Batcher against a real PostgreSQL server: concurrent statements share pipelines, one bad
// statement costs only itself, and a down shard is refused at once.
//
// Environment: SHARDURL_TEST_CONNINFO, as for pgasync_pgtest.cpp.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <cstdlib>
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
using shardurl::StoreError;
using shardurl::StoreResult;
using shardurl::pgasync::QueryResult;

namespace {

std::string conninfo() {
  const char* value = std::getenv("SHARDURL_TEST_CONNINFO");
  if (value == nullptr || *value == '\0') FAIL("SHARDURL_TEST_CONNINFO is not set");
  return value;
}

shardurl::Config one_shard(const std::string& info) {
  shardurl::Config config;
  config.shards.push_back({"s0", info});
  return config;
}

// Every session prepares these (the service's own statements are not needed here).
constexpr const char* script =
    "PREPARE batch_echo (text) AS SELECT $1, txid_current();"
    "PREPARE batch_divide (text) AS SELECT 100 / $1::int, txid_current();"
    // A lookup statement as Batcher::Limits::lookup_statement describes it: keys starting with
    // 'x' have no value, every other key's value is 'v' || key.
    "PREPARE batch_lookup (text[]) AS SELECT CASE WHEN k.id LIKE 'x%' THEN NULL ELSE 'v' || k.id "
    "END, txid_current() FROM unnest($1::text[]) WITH ORDINALITY AS k(id, n) ORDER BY k.n";

struct Outcome {
  bool ok = false;
  std::string value;
  std::string txid;
  StoreError error;
};

// Submits every parameter at once (all concurrent), runs the loop until all are answered.
std::vector<Outcome> run_all(const shardurl::Config& config, const char* statement,
                             const std::vector<std::string>& values, Batcher::Limits limits) {
  asio::io_context io(1);
  const auto ring = shardurl::make_ring(config);
  shardurl::Shards shards(io.get_executor(), config, ring, script);
  Batcher batcher(io.get_executor(), shards, limits);
  std::vector<Outcome> out(values.size());
  std::size_t answered = 0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    asio::co_spawn(
        io,
        [&, i]() -> asio::awaitable<void> {
          // No co_await inside ?: : GCC 12 miscompiles it (see docs/notes.md).
          shardurl::StoreResult<shardurl::Rows> r = shardurl::StoreError{};
          if (statement == std::string_view("lookup")) {
            r = co_await batcher.lookup(0, values[i]);
          } else {
            std::vector<std::string> params{values[i]};
            r = co_await batcher.run(0, statement, std::move(params));
          }
          if (r && r->rows() == 0) {
            out[i] = {true, "(none)", "", {}};
          } else if (r) {
            out[i] = {true, std::string(r->get(0, 0)), std::string(r->get(0, 1)), {}};
          } else {
            out[i].error = r.error();
          }
          if (++answered == values.size()) shards.close();
        },
        asio::detached);
  }
  io.run();
  REQUIRE(answered == values.size());
  return out;
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
      run_all(one_shard(conninfo()), "batch_echo", values, {64, 1000, 1, "batch_lookup"});
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
      run_all(one_shard(conninfo()), "batch_echo", values, {1, 1000, 1, "batch_lookup"});
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
  const auto out =
      run_all(one_shard(conninfo()), "batch_divide", values, {64, 1000, 1, "batch_lookup"});
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
      run_all(one_shard(conninfo()), "batch_echo", values, {64, 10, 1, "batch_lookup"});
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
  const auto out = run_all(config, "batch_echo", numbers(20), {64, 1000, 1, "batch_lookup"});
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
  Batcher::Limits limits{64, 1000, 1, "batch_lookup"};
  const auto out = run_all(one_shard(conninfo()), "lookup", values, limits);
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
