// Where links are stored: all of shardurl's SQL lives here. The ring picks the shard that owns an
// id; Shards lends a connection to it (or refuses at once when it is down).
#pragma once

#include <boost/asio/awaitable.hpp>

#include <optional>
#include <string>

#include "ring/ring.hpp"
#include "batcher.hpp"
#include "shards.hpp"

namespace shardurl {

struct Link {
  std::string id;
  std::string url;
};

struct CreatedLink {
  Link link;
  bool created = false;  // false: the URL already had this link
};

/// What storing a URL under one chosen id did.
enum class Claim {
  created,   // the row is new, and committed
  existing,  // the id already holds this very URL
  taken,     // the id holds a different URL: nothing changed
};

class LinkRepository {
 public:
  /// What every pooled session runs when it opens (see Shards): prepares the statements this
  /// repository executes, so requests skip parsing and planning.
  static std::string session_script();

  /// The statement the Batcher combines lookups into (see Batcher::Limits::lookup_statement).
  static std::string_view lookup_statement();

  /// `ring` and `batchers` must outlive the repository; shards are in ring order.
  LinkRepository(const ring::Ring& ring, const BatcherGroup& batchers)
      : ring_(ring), batcher_(batchers) {}

  /// The link stored under `id`, or std::nullopt when there is none (an expected miss).
  boost::asio::awaitable<StoreResult<std::optional<Link>>> find(std::string id);

  /// Stores `url` under the shortest free prefix of its digest (7 characters first), or returns the
  /// link it already has. Race-free: the unique constraint on url_id decides, never a prior check.
  /// Answers only after the row is committed.
  boost::asio::awaitable<StoreResult<CreatedLink>> create(std::string url);

  /// Stores `url` under exactly `id` (a user's alias). Race-free like create().
  boost::asio::awaitable<StoreResult<Claim>> claim(std::string url, std::string id);

  /// Deletes the link stored under `id`; false when there was none.
  boost::asio::awaitable<StoreResult<bool>> remove(std::string id);

  [[nodiscard]] const ring::Ring& ring() const noexcept { return ring_; }

 private:
  /// One INSERT ... ON CONFLICT for `id` on the shard that owns it.
  boost::asio::awaitable<StoreResult<Claim>> insert(const std::string& url, const std::string& id);

  const ring::Ring& ring_;
  const BatcherGroup& batcher_;
};

}  // namespace shardurl
