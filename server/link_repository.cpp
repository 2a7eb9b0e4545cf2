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
// Columns: the URL the id holds, whether this statement inserted it, whether it is a tombstone.
constexpr std::string_view insert_sql = R"(
WITH inserted AS (
  INSERT INTO url_table (url, url_id) VALUES ($1, $2)
  ON CONFLICT (url_id) DO NOTHING
  RETURNING url)
SELECT url, true, false FROM inserted
UNION ALL
SELECT url, false, deleted_at IS NOT NULL FROM url_table
 WHERE url_id = $2 AND NOT EXISTS (SELECT 1 FROM inserted))";

// One row per key, in the array's order; NULL where the id has no row. The Batcher sends every
// read of a batch through this one statement (one index probe per id, one executor run for all).
constexpr std::string_view select_sql = R"(
SELECT t.url, t.deleted_at IS NOT NULL FROM unnest($1::text[]) WITH ORDINALITY AS k(id, n)
LEFT JOIN url_table t ON t.url_id = k.id
ORDER BY k.n)";

// A delete keeps the row as a tombstone and announces it to every instance in the same transaction,
// on the channel every ChangeFeed listens to (change_feed.hpp's links_channel). 'deleted': it was live; 'gone': it was deleted already, or a concurrent
// delete committed first (the second branch reads the statement's snapshot); no row: no such id.
constexpr std::string_view delete_sql = R"(
WITH gone AS (
  UPDATE url_table SET deleted_at = now()
   WHERE url_id = $1 AND deleted_at IS NULL
  RETURNING url_id)
SELECT 'deleted' FROM gone CROSS JOIN LATERAL (SELECT pg_notify('shardurl_links', gone.url_id)) n
UNION ALL
SELECT 'gone' FROM url_table WHERE url_id = $1 AND NOT EXISTS (SELECT 1 FROM gone))";

// A keyed restore: a tombstone comes back to life pointing at $1, announced like a delete.
constexpr std::string_view restore_sql = R"(
WITH revived AS (
  UPDATE url_table SET url = $1, deleted_at = NULL
   WHERE url_id = $2 AND deleted_at IS NOT NULL
  RETURNING url_id)
SELECT 'restored' FROM revived
 CROSS JOIN LATERAL (SELECT pg_notify('shardurl_links', revived.url_id)) n)";

// initdb/003_topology.sql: durability for the batch, and SU001 when the shard serves a newer ring.
constexpr std::string_view head_sql = "SELECT shardurl_batch($1::bigint)";

// Named for the session script's PREPAREs; sent unnamed when a shard keeps no session state.
constexpr Statement insert_statement{"shardurl_insert", insert_sql};
constexpr Statement select_statement{"shardurl_select", select_sql};
constexpr Statement delete_statement{"shardurl_delete", delete_sql};
constexpr Statement restore_statement{"shardurl_restore", restore_sql};
constexpr Statement head_statement_{"shardurl_head", head_sql};

constexpr std::array<Statement, 5> all_statements = {
    insert_statement, select_statement, delete_statement, restore_statement, head_statement_};

// How long a write to a moving link waits before asking again, when no newer ring came meanwhile
// (a reshard whose cutover lapsed lets writes through again on the old ring).
constexpr std::chrono::milliseconds moving_retry{50};

constexpr int snapshot_retries = 3;

}  // namespace

Statement LinkRepository::lookup_statement() {
  return select_statement;
}

Statement LinkRepository::head_statement() {
  return head_statement_;
}

std::string LinkRepository::session_script() {
  // SQL PREPARE names the statements that pipelines execute, all in one round trip.
  std::string script;
  for (const auto& s : all_statements) {
    script += "PREPARE ";
    script += s.name;
    script += " AS ";
    script += s.sql;
    script += ";\n";
  }
  return script;
}

asio::awaitable<StoreResult<Rows>> LinkRepository::routed(const std::string& id,
                                                         Statement statement,
                                                         const std::vector<std::string>& params,
                                                         std::size_t key, Deadline deadline,
                                                         std::size_t* shard) {
  for (;;) {
    const std::shared_ptr<const Topology> ring = ring_.current();
    const std::size_t owner = ring->owner_of(id);
    if (shard != nullptr) *shard = owner;
    StoreResult<Rows> rows = StoreError{};
    if (statement.sql.empty()) {
      rows = co_await batcher_.lookup(owner, ring->version(), id, deadline);
    } else {
      rows = co_await batcher_.run(owner, ring->version(), statement, params, deadline, key);
    }
    if (rows) co_return rows;
    const auto kind = rows.error().kind;
    if (kind == StoreError::Kind::stale) {
      // The shard moved on to a newer ring: route again by it.
      if (co_await ring_.newer_than(ring->version(), owner, deadline)) continue;
    } else if (kind == StoreError::Kind::moving) {
      // A reshard's cutover: the newer ring comes within a second; ask again shortly either way.
      const auto now = std::chrono::steady_clock::now();
      if (now < deadline) {
        co_await ring_.newer_than(ring->version(), owner, std::min(deadline, now + moving_retry));
        continue;
      }
    }
    if (kind == StoreError::Kind::stale || kind == StoreError::Kind::moving) {
      co_return StoreError{StoreError::Kind::shard_timeout, rows.error().shard,
                           rows.error().detail + " (the request's deadline passed while waiting "
                                                 "for the newer ring)"};
    }
    co_return rows;
  }
}

asio::awaitable<StoreResult<std::optional<StoredLink>>> LinkRepository::find(std::string id,
                                                                            Deadline deadline) {
  std::size_t shard = 0;
  // Named first: GCC 12 destroys an aggregate temporary in a co_await expression twice.
  const Statement lookup{};
  const std::vector<std::string> no_params;
  auto rows = co_await routed(id, lookup, no_params, 0, deadline, &shard);
  if (!rows) co_return rows.error();
  if (rows->rows() == 0) co_return std::optional<StoredLink>{};
  co_return std::optional<StoredLink>{
      StoredLink{std::string(rows->get(0, 0)), rows->get(0, 1) == "t", shard}};
}

asio::awaitable<StoreResult<Claim>> LinkRepository::insert(const std::string& url,
                                                           const std::string& id,
                                                           Deadline deadline) {
  const std::vector<std::string> params{url, id};
  for (int attempt = 0; attempt < snapshot_retries; ++attempt) {
    auto rows = co_await routed(id, insert_statement, params, 1, deadline);
    if (!rows) co_return rows.error();
    if (rows->rows() == 0) continue;  // the id's owner committed after our snapshot: look again
    if (rows->get(0, 1) == "t") co_return Claim::created;
    if (rows->get(0, 2) == "t") co_return Claim::deleted;
    co_return rows->get(0, 0) == url ? Claim::existing : Claim::taken;
  }
  co_return StoreError{StoreError::Kind::internal, batcher_.shards().name(owner_of(id)),
                       "id " + id + " keeps changing"};
}

asio::awaitable<StoreResult<CreatedLink>> LinkRepository::create(std::string url,
                                                                  Deadline deadline) {
  // The tutorial stored this URL under its own 5-character id, if it stored it at all; that row
  // lives on the shard that owns the id. Asked only of shards where initdb found such rows; one
  // known to hold them must answer (its being down fails the create). One that has not told us
  // yet (just after start) is asked too, but its failing to answer does not fail the create, and
  // once it is known down it is not asked: a shard that never answered costs no other shard's keys.
  std::string legacy = tutorial_id(url);
  const std::size_t legacy_owner = owner_of(legacy);
  const Shards& shards = batcher_.shards();
  const TutorialIds legacy_rows = shards.tutorial_ids(legacy_owner);
  if (legacy_rows == TutorialIds::present ||
      (legacy_rows == TutorialIds::unknown &&
       shards.status(legacy_owner).state != ShardState::down)) {
    auto found = co_await find(legacy, deadline);
    if (!found && legacy_rows == TutorialIds::present) co_return found.error();
    if (found && *found && !(*found)->deleted && (*found)->url == url) {
      co_return CreatedLink{Link{std::move(legacy), std::move(url)}, false};
    }
  }
  const std::string digest = id_digest(url);
  for (std::size_t length = default_id_length; length <= digest.size(); ++length) {
    std::string id = digest.substr(0, length);
    if (is_reserved(id)) continue;  // e.g. "healthz": the route would shadow the link
    auto claimed = co_await insert(url, id, deadline);
    if (!claimed) co_return claimed.error();
    if (*claimed == Claim::created || *claimed == Claim::existing) {
      co_return CreatedLink{Link{std::move(id), std::move(url)}, *claimed == Claim::created};
    }
    // Another URL's link, or a deleted one (of any URL): it keeps its place; try the next prefix.
  }
  co_return StoreError{StoreError::Kind::internal, "", "no free id for the URL"};
}

asio::awaitable<StoreResult<Claim>> LinkRepository::claim(std::string url, std::string id,
                                                          Deadline deadline) {
  co_return co_await insert(url, id, deadline);
}

asio::awaitable<StoreResult<Claim>> LinkRepository::restore(std::string url, std::string id,
                                                            Deadline deadline) {
  const std::vector<std::string> params{url, id};
  auto rows = co_await routed(id, restore_statement, params, 1, deadline);
  if (!rows) co_return rows.error();
  if (rows->rows() == 1) co_return Claim::created;
  // Not a tombstone (any more): whatever the id holds now decides, as for any claim.
  auto claimed = co_await insert(url, id, deadline);
  if (claimed && *claimed == Claim::deleted) {
    co_return StoreError{StoreError::Kind::internal, batcher_.shards().name(owner_of(id)),
                         "id " + id + " keeps changing"};
  }
  co_return claimed;
}

asio::awaitable<StoreResult<Removal>> LinkRepository::remove(std::string id, Deadline deadline) {
  const std::vector<std::string> params{id};
  auto done = co_await routed(id, delete_statement, params, 0, deadline);
  if (!done) co_return done.error();
  if (done->rows() == 0) co_return Removal::not_found;
  co_return done->get(0, 0) == "deleted" ? Removal::deleted : Removal::already_deleted;
}

}  // namespace shardurl
