// The ring's placement as SQL (server/placement_sql.hpp) against the ring itself, on a real
// PostgreSQL: for random rings in both hashes and thousands of ids, the rows each node's
// expression selects are exactly the ids ring::Ring places on it, and the expression is accepted
// as a PostgreSQL 15 publication row filter.
//
// Environment: SHARDURL_TEST_CONNINFO, as for pgasync_pgtest.cpp. The test is a client, not the
// server: it uses libpq's blocking calls.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <libpq-fe.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "placement_sql.hpp"
#include "ring/ring.hpp"

namespace {

using shardurl::ring::Hash;
using shardurl::ring::NodeSpec;
using shardurl::ring::Ring;

struct Db {
  Db() {
    const char* info = std::getenv("SHARDURL_TEST_CONNINFO");
    if (info == nullptr || *info == '\0') FAIL("SHARDURL_TEST_CONNINFO is not set");
    conn.reset(PQconnectdb(info));
    REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  }
  // Runs `sql` and returns its first column, one string per row.
  std::vector<std::string> column(const std::string& sql) {
    std::unique_ptr<PGresult, decltype(&PQclear)> res(PQexec(conn.get(), sql.c_str()), &PQclear);
    const auto status = PQresultStatus(res.get());
    INFO(sql.substr(0, 300) << "\n" << PQresultErrorMessage(res.get()));
    REQUIRE((status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK));
    std::vector<std::string> out;
    for (int r = 0; r < PQntuples(res.get()); ++r) out.emplace_back(PQgetvalue(res.get(), r, 0));
    return out;
  }
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn{nullptr, &PQfinish};
};

std::string quoted(const std::string& s) {
  std::string out = "'";
  for (const char c : s) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

// Ids of every kind the service stores: derived (base64url), the tutorial's (with + and /),
// aliases, non-ASCII text, up to 64 bytes.
std::vector<std::string> random_ids(std::mt19937_64& rng, std::size_t count) {
  const std::string alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=.~";
  const std::vector<std::string> extras{"é", "ß", "日本", "🙂", " ", "'", "\""};
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < count; ++i) {
    std::string id;
    const auto length = 1 + rng() % 40;
    while (id.size() < length) {
      if (rng() % 10 == 0) {
        id += extras[rng() % extras.size()];
      } else {
        id += alphabet[rng() % alphabet.size()];
      }
    }
    ids.push_back(id.substr(0, 64));
  }
  // Distinct, as url_id is.
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

Ring random_ring(std::mt19937_64& rng, Hash hash) {
  std::vector<NodeSpec> nodes;
  const auto count = 1 + rng() % 6;
  for (std::size_t i = 0; i < count; ++i) {
    nodes.push_back({"node-" + std::to_string(rng() % 100000) + "-" + std::to_string(i),
                     static_cast<int>(1 + rng() % 4),
                     rng() % 3 == 0 ? 0 : static_cast<int>(1 + rng() % 200)});
  }
  return Ring(std::move(nodes), hash, rng() % 2 == 0 ? 0 : static_cast<int>(1 + rng() % 100));
}

}  // namespace

TEST_CASE("the SQL position of an id is the ring's position of it", "[placement]") {
  Db db;
  std::mt19937_64 rng(20261202);
  const auto ids = random_ids(rng, 300);
  for (const Hash hash : {Hash::md5, Hash::ketama}) {
    const Ring ring({{"a", 1, 0}}, hash);
    for (const auto& id : ids) {
      const auto got = db.column("SELECT encode(" + shardurl::position_sql(hash, quoted(id)) +
                                 ", 'hex')")[0];
      const std::string bytes = shardurl::ring::position_bytes(ring.position_of(id), hash);
      std::string want;
      for (const char c : bytes) {
        char hex[3];
        std::snprintf(hex, sizeof hex, "%02x", static_cast<unsigned char>(c));
        want += hex;
      }
      INFO(shardurl::ring::to_string(hash) << " id '" << id << "'");
      CHECK(got == want);
    }
  }
}

TEST_CASE("each node's SQL selects exactly the ids the ring places on it, on random rings",
          "[placement]") {
  Db db;
  std::mt19937_64 rng(1202);
  const auto ids = random_ids(rng, 4000);
  db.column("CREATE TEMP TABLE placement_ids (url_id text)");
  std::string insert = "INSERT INTO placement_ids VALUES ";
  for (std::size_t i = 0; i < ids.size(); ++i) insert += (i ? ",(" : "(") + quoted(ids[i]) + ")";
  db.column(insert);
  for (int round = 0; round < 16; ++round) {
    const Hash hash = round % 2 == 0 ? Hash::md5 : Hash::ketama;
    const Ring ring = random_ring(rng, hash);
    std::set<std::string> seen;
    for (std::size_t node = 0; node < ring.nodes().size(); ++node) {
      std::set<std::string> want;
      for (const auto& id : ids) {
        if (ring.owner_of(id) == node) want.insert(id);
      }
      const auto rows = db.column("SELECT url_id FROM placement_ids WHERE " +
                                  shardurl::owned_by_sql(ring, node));
      const std::set<std::string> got(rows.begin(), rows.end());
      INFO("round " << round << " (" << shardurl::ring::to_string(hash) << ", "
                    << ring.nodes().size() << " nodes, " << ring.points().size()
                    << " points), node " << ring.nodes()[node].name);
      CHECK(got == want);
      CHECK(rows.size() == want.size());
      seen.insert(got.begin(), got.end());
    }
    CHECK(seen.size() == ids.size());
  }
}

TEST_CASE("the SQL is a valid PostgreSQL 15 publication row filter", "[placement]") {
  Db db;
  const Ring ring({{"5432", 1, 0}, {"5433", 2, 0}, {"5434", 1, 50}}, Hash::ketama);
  const std::string table = "placement_pub_" + std::to_string(::getpid());
  db.column("CREATE TABLE " + table + " (id bigserial PRIMARY KEY, url text, url_id text NOT NULL)");
  db.column("CREATE PUBLICATION " + table + " FOR TABLE " + table + " (url, url_id) WHERE (" +
            shardurl::owned_by_sql(ring, 1) + ")");
  const auto stored = db.column("SELECT count(*) FROM pg_publication_rel WHERE prqual IS NOT NULL "
                                "AND prpubid = (SELECT oid FROM pg_publication WHERE pubname = '" +
                                table + "')");
  CHECK(stored == std::vector<std::string>{"1"});
  db.column("DROP PUBLICATION " + table);
  db.column("DROP TABLE " + table);
}
