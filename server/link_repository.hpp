// Where links are stored: all of shardurl's SQL lives here. The ring picks the shard that owns an
// id; the Batcher carries the statement to it (or refuses at once when it is down).
//
// A link is live or deleted. Deleting keeps the row as a tombstone (deleted_at set), so that its
// id is never handed to anybody else: reads answer 410, an anonymous create skips it, and only a
// keyed restore brings it back.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <optional>
#include <string>
#include <vector>

#include "batcher.hpp"
#include "cluster.hpp"
#include "shards.hpp"

namespace shardurl {

struct Link {
  std::string id;
  std::string url;
};

/// A row as read: its URL, whether it is a tombstone, and the shard (slot) it was read on.
struct StoredLink {
  std::string url;
  bool deleted = false;
  std::size_t shard = 0;
};

struct CreatedLink {
  Link link;
  bool created = false;  // false: the URL already had this link
};

/// What storing a URL under one chosen id did.
enum class Claim {
  created,   // the row is new (or was restored), and committed
  existing,  // the id already holds this very URL, live
  taken,     // the id holds a different URL, live: nothing changed
  deleted,   // the id holds a deleted link (of any URL): nothing changed
};

/// What deleting an id did.
enum class Removal {
  deleted,          // it was live and is a tombstone now
  already_deleted,  // it was a tombstone already
  not_found,        // no link ever had the id
};

class LinkRepository {
 public:
  /// What every pooled session runs when it opens (see Shards): prepares the statements this
  /// repository executes, so requests skip parsing and planning.
  static std::string session_script();

  /// The statement the Batcher combines lookups into (see Batcher::Limits::lookup).
  static Statement lookup_statement();
  /// The statement that opens every batch (Batcher::Limits::head): durability and the ring check.
  static Statement head_statement();

  /// One worker's repository: routes by `ring` (that worker's), sends through `batcher`. Both
  /// must outlive it. Every operation follows the ring as it changes: a statement that a shard
  /// refuses because it serves a newer ring, or because its link is moving right now, is routed
  /// again once this worker serves the newer ring, within the request's deadline.
  LinkRepository(RingFollower& ring, Batcher& batcher) : ring_(ring), batcher_(batcher) {}

  /// The row stored under `id`, or std::nullopt when there is none (an expected miss).
  boost::asio::awaitable<StoreResult<std::optional<StoredLink>>> find(std::string id,
                                                                     Deadline deadline);

  /// The link of `url`: the tutorial's own id for it when the tutorial stored it (live), else the
  /// first prefix of its digest (7 characters first) that is free or holds `url` live; a prefix
  /// that holds another URL, or any deleted link, keeps its place and is skipped. Stores it when
  /// new. Race-free: the unique constraint on url_id decides, never a prior check. Answers only
  /// after the row is committed.
  boost::asio::awaitable<StoreResult<CreatedLink>> create(std::string url, Deadline deadline);

  /// Stores `url` under exactly `id` (a user's alias). Race-free like create().
  boost::asio::awaitable<StoreResult<Claim>> claim(std::string url, std::string id,
                                                   Deadline deadline);

  /// Brings the deleted link `id` back, pointing at `url`: created when it was a tombstone;
  /// otherwise what claim() finds (existing, taken, or created when no row had the id).
  boost::asio::awaitable<StoreResult<Claim>> restore(std::string url, std::string id,
                                                     Deadline deadline);

  /// Deletes the link stored under `id`, keeping a tombstone.
  boost::asio::awaitable<StoreResult<Removal>> remove(std::string id, Deadline deadline);

  /// The shard (slot) that owns `id` in the ring this worker serves now.
  [[nodiscard]] std::size_t owner_of(std::string_view id) const noexcept {
    return ring_.current()->owner_of(id);
  }
  /// The ring node (uhashring's node) that owns `id` now, for the JSON `server` field.
  [[nodiscard]] const ring::Node& node_of(std::string_view id) const noexcept {
    return ring_.current()->node_of(id);
  }
  /// Both, with one ring lookup. The node lives as long as the ring this worker serves now.
  [[nodiscard]] Topology::Placement place(std::string_view id) const noexcept {
    return ring_.current()->place(id);
  }

 private:
  /// One INSERT ... ON CONFLICT for `id` on the shard that owns it.
  boost::asio::awaitable<StoreResult<Claim>> insert(const std::string& url, const std::string& id,
                                                    Deadline deadline);
  /// `statement` with `params` for the link `id`, on the shard that owns it, following the ring
  /// as it changes (see the constructor). `key` as in Batcher::run; lookups have an empty
  /// statement.
  boost::asio::awaitable<StoreResult<Rows>> routed(const std::string& id, Statement statement,
                                                   const std::vector<std::string>& params,
                                                   std::size_t key, Deadline deadline,
                                                   std::size_t* shard = nullptr);

  RingFollower& ring_;
  Batcher& batcher_;
};

}  // namespace shardurl
