#include "link_repository.hpp"

#include <array>

#include "short_id.hpp"
#include "validation.hpp"

namespace shardurl {
namespace asio = boost::asio;
namespace {

// One round trip per candidate id. The CTE inserts unless the id is taken; the second branch reads
// the row that holds the id when the insert did nothing. If the row's owner committed after this
// statement's snapshot, neither branch returns a row and the caller simply tries again.
constexpr std::string_view insert_sql = R"(
WITH inserted AS (
  INSERT INTO url_table (url, url_id) VALUES ($1, $2)
  ON CONFLICT (url_id) DO NOTHING
  RETURNING url)
SELECT url, true FROM inserted
UNION ALL
SELECT url, false FROM url_table WHERE url_id = $2 AND NOT EXISTS (SELECT 1 FROM inserted))";

// One row per key, in the array's order; NULL where the id has no link. The Batcher sends every
// read of a batch through this one statement (one index probe per id, one executor run for all).
constexpr std::string_view select_sql = R"(
SELECT t.url FROM unnest($1::text[]) WITH ORDINALITY AS k(id, n)
LEFT JOIN url_table t ON t.url_id = k.id
ORDER BY k.n)";
constexpr std::string_view delete_sql = "DELETE FROM url_table WHERE url_id = $1";

// Every pooled session prepares these when it opens, so each request skips parsing and planning.
constexpr std::string_view insert_statement = "shardurl_insert";
constexpr std::string_view select_statement = "shardurl_select";
constexpr std::string_view delete_statement = "shardurl_delete";

constexpr int snapshot_retries = 3;

}  // namespace

std::string_view LinkRepository::lookup_statement() {
  return select_statement;
}

std::string LinkRepository::session_script() {
  // SQL PREPARE names the statements that execute_prepared runs, all in one round trip.
  return "PREPARE " + std::string(insert_statement) + " (text, text) AS " +
         std::string(insert_sql) + ";\nPREPARE " + std::string(select_statement) + " (text[]) AS " +
         std::string(select_sql) + ";\nPREPARE " + std::string(delete_statement) + " (text) AS " +
         std::string(delete_sql);
}

asio::awaitable<StoreResult<std::optional<Link>>> LinkRepository::find(std::string id) {
  const std::size_t owner = ring_.owner_of(id);
  auto rows = co_await batcher_.lookup(owner, id);
  if (!rows) co_return rows.error();
  if (rows->rows() == 0) co_return std::optional<Link>{};
  co_return std::optional<Link>{Link{std::move(id), std::string(rows->get(0, 0))}};
}

asio::awaitable<StoreResult<Claim>> LinkRepository::insert(const std::string& url,
                                                           const std::string& id) {
  const std::size_t owner = ring_.owner_of(id);
  for (int attempt = 0; attempt < snapshot_retries; ++attempt) {
    std::vector<std::string> params{url, id};
    auto rows = co_await batcher_.run(owner, insert_statement, std::move(params), 1);
    if (!rows) co_return rows.error();
    if (rows->rows() == 0) continue;  // the id's owner committed after our snapshot: look again
    if (rows->get(0, 1) == "t") co_return Claim::created;
    co_return rows->get(0, 0) == url ? Claim::existing : Claim::taken;
  }
  co_return StoreError{StoreError::Kind::internal, batcher_.shard_name(owner),
                       "id " + id + " keeps changing"};
}

asio::awaitable<StoreResult<CreatedLink>> LinkRepository::create(std::string url) {
  const std::string digest = id_digest(url);
  for (std::size_t length = default_id_length; length <= digest.size(); ++length) {
    std::string id = digest.substr(0, length);
    if (is_reserved(id)) continue;  // e.g. "healthz": the route would shadow the link
    auto claimed = co_await insert(url, id);
    if (!claimed) co_return claimed.error();
    if (*claimed != Claim::taken) {
      co_return CreatedLink{Link{std::move(id), std::move(url)}, *claimed == Claim::created};
    }
    // The id belongs to a different URL: try the next longer prefix.
  }
  co_return StoreError{StoreError::Kind::internal, "", "no free id for the URL"};
}

asio::awaitable<StoreResult<Claim>> LinkRepository::claim(std::string url, std::string id) {
  co_return co_await insert(url, id);
}

asio::awaitable<StoreResult<bool>> LinkRepository::remove(std::string id) {
  const std::size_t owner = ring_.owner_of(id);
  std::vector<std::string> params{id};
  auto done = co_await batcher_.run(owner, delete_statement, std::move(params));
  if (!done) co_return done.error();
  co_return done->affected_rows() > 0;
}

}  // namespace shardurl
