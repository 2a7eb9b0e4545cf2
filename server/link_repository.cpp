#include "link_repository.hpp"

#include <array>
#include <iostream>

#include "pgasync/shard_pool.hpp"
#include "short_id.hpp"

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

constexpr std::string_view select_sql = "SELECT url FROM url_table WHERE url_id = $1";

constexpr int snapshot_retries = 3;

StoreError to_store_error(const pgasync::Error& e, const std::string& shard) {
  using pgasync::Errc;
  StoreError out;
  out.shard = shard;
  out.detail = e.describe();
  if (e.code == Errc::timeout) {
    out.kind = StoreError::Kind::shard_timeout;
  } else if (e.code == Errc::server_error && !pgasync::is_fatal(e)) {
    out.kind = StoreError::Kind::internal;
  } else {
    out.kind = StoreError::Kind::shard_unavailable;
  }
  return out;
}

}  // namespace

void throw_exception_from_error(const StoreError& e, const boost::source_location&) {
  throw std::runtime_error("shard " + e.shard + ": " + e.detail);
}

LinkRepository::LinkRepository(asio::any_io_executor executor, const Config& config,
                               const ring::Ring& ring)
    : ring_(ring), timeout_(std::chrono::milliseconds(5000)) {
  for (const auto& node : ring.nodes()) {
    const auto it = std::find_if(config.shards.begin(), config.shards.end(),
                                 [&](const ShardConfig& s) { return s.name == node.name; });
    pools_.push_back(std::make_unique<pgasync::ShardPool>(executor, it->conninfo));
  }
}

LinkRepository::~LinkRepository() = default;

void LinkRepository::close() noexcept {
  for (auto& pool : pools_) pool->close();
}

asio::awaitable<StoreResult<std::optional<Link>>> LinkRepository::find(std::string id) {
  const std::size_t owner = ring_.owner_of(id);
  const std::string& shard = ring_.nodes()[owner].name;
  const auto deadline = pgasync::Clock::now() + timeout_;
  auto lease = co_await pools_[owner]->acquire(deadline);
  if (!lease) co_return to_store_error(lease.error(), shard);
  const std::array<pgasync::Param, 1> params{id};
  auto rows = co_await (*lease)->query(select_sql, params, deadline);
  if (!rows) co_return to_store_error(rows.error(), shard);
  if (rows->rows() == 0) co_return std::optional<Link>{};
  co_return std::optional<Link>{Link{std::move(id), std::string(rows->get(0, 0))}};
}

asio::awaitable<StoreResult<CreatedLink>> LinkRepository::create(std::string url) {
  const std::string digest = id_digest(url);
  const auto deadline = pgasync::Clock::now() + timeout_;
  for (std::size_t length = default_id_length; length <= digest.size(); ++length) {
    std::string id = digest.substr(0, length);
    const std::size_t owner = ring_.owner_of(id);
    const std::string& shard = ring_.nodes()[owner].name;
    auto lease = co_await pools_[owner]->acquire(deadline);
    if (!lease) co_return to_store_error(lease.error(), shard);
    const std::array<pgasync::Param, 2> params{url, id};
    int attempt = 0;
    auto rows = co_await (*lease)->query(insert_sql, params, deadline);
    // No row: the id's owner committed after our snapshot. Looking again will see it.
    while (rows && rows->rows() == 0 && ++attempt < snapshot_retries) {
      rows = co_await (*lease)->query(insert_sql, params, deadline);
    }
    if (!rows) co_return to_store_error(rows.error(), shard);
    if (rows->rows() == 0) {
      co_return StoreError{StoreError::Kind::internal, shard, "id " + id + " keeps changing"};
    }
    const bool created = rows->get(0, 1) == "t";
    if (created || rows->get(0, 0) == url) {
      co_return CreatedLink{Link{std::move(id), std::move(url)}, created};
    }
    // The id belongs to a different URL: try the next longer prefix.
  }
  co_return StoreError{StoreError::Kind::internal, "", "no free id for the URL"};
}

asio::awaitable<void> LinkRepository::report_shards() {
  for (std::size_t i = 0; i < pools_.size(); ++i) {
    const auto& name = ring_.nodes()[i].name;
    auto lease = co_await pools_[i]->acquire(pgasync::Clock::now() + std::chrono::seconds(2));
    if (lease) {
      std::clog << "shardurl: shard " << name << ": up\n";
    } else {
      std::clog << "shardurl: shard " << name << ": unreachable (" << lease.error().describe()
                << "); its keys answer 503 until it comes up\n";
    }
  }
}

}  // namespace shardurl
