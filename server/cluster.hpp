// The cluster as one running server follows it: its shards, their statement queues and change
// feeds, and the ring it serves, which a reshard replaces while the server runs.
//
// The ring is a versioned value (Topology). Each worker holds the version it serves in a
// RingFollower; a newer one is installed by posting it to every worker, as Envoy swaps its
// per-worker snapshots, so requests read their worker's ring without a lock. A newer version is
// found three ways, all ending in a shard's probe reading its metadata (shardurl_meta): the
// shard's change feed hears `NOTIFY shardurl_topology`; a statement is refused because its shard
// serves a newer ring (SQLSTATE SU001, see initdb/003_topology.sql); and every probe reads it
// anyway (each second). A ring names shards by name; a shard this server does not know yet is
// added (Shards::add), with its connection string from the metadata and this server's own
// password for it (environment or passfile).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "batcher.hpp"
#include "change_feed.hpp"
#include "config.hpp"
#include "shards.hpp"
#include "topology.hpp"

namespace shardurl {

class CacheGroup;
class Cluster;

/// The ring one worker serves now. Only touched on that worker's thread.
class RingFollower {
 public:
  RingFollower(Cluster& cluster, std::shared_ptr<const Topology> topology)
      : cluster_(cluster), current_(std::move(topology)) {}

  [[nodiscard]] const std::shared_ptr<const Topology>& current() const noexcept {
    return current_;
  }

  /// Waits until this worker serves a ring newer than `version`, or until `until`; true when it
  /// does. Asks the shard `slot` (which said it serves a newer one) to be probed at once.
  boost::asio::awaitable<bool> newer_than(std::uint64_t version, std::size_t slot,
                                          Deadline until);

 private:
  friend class Cluster;
  Cluster& cluster_;
  std::shared_ptr<const Topology> current_;
};

class Cluster {
 public:
  /// The shards of `config` (its ring is version 0) on `homes` (one per worker, each run by one
  /// thread). `instance` names this server in the shards' pg_stat_activity. `caches` (every
  /// worker's) must outlive the cluster; with caching on, each shard gets a change feed.
  Cluster(const Config& config, std::vector<boost::asio::any_io_executor> homes,
          std::string instance, const CacheGroup& caches);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  void start();
  void close();

  [[nodiscard]] Shards& shards() noexcept { return shards_; }
  [[nodiscard]] const Shards& shards() const noexcept { return shards_; }
  [[nodiscard]] Batcher& batcher() noexcept { return batcher_; }
  [[nodiscard]] const Batcher& batcher() const noexcept { return batcher_; }
  /// Worker `i`'s follower.
  [[nodiscard]] RingFollower& follower(std::size_t i) noexcept { return *followers_[i]; }

  /// What /readyz shows: the ring version served by every worker, and the reshard in progress
  /// that the shards report (JSON text, empty when none). Any thread.
  struct Status {
    std::uint64_t ring_version = 0;
    std::string move;
  };
  [[nodiscard]] Status status() const;

 private:
  friend class RingFollower;
  void on_meta(std::size_t slot, const ShardMeta& meta);
  void consider(std::uint64_t version, const std::string& topology);
  void install(std::shared_ptr<Topology> topology);
  void ensure_feed(std::size_t slot);

  Config config_;
  std::vector<boost::asio::any_io_executor> homes_;
  const CacheGroup& caches_;
  Shards shards_;
  Batcher batcher_;
  std::vector<std::unique_ptr<RingFollower>> followers_;
  std::vector<std::unique_ptr<ChangeFeed>> feeds_;  // by slot; null: none (no cache, or no way)
  // The control thread's (homes_[0]) own state.
  std::uint64_t latest_ = 0;  // the newest version installed or being installed
  bool started_ = false;
  mutable std::mutex status_mutex_;
  Status status_;
};

}  // namespace shardurl
