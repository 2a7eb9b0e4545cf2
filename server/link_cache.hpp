// A bounded in-process cache of id -> link for reads and redirects, one per worker thread.
//
// A cached answer must never outlive a change made through any instance by more than a second.
// Changes reach a cache three ways: a delete through this instance evicts at once (CacheGroup);
// every change made through any instance is announced on the owning shard (NOTIFY shardurl_links,
// in the changing transaction) and a ChangeFeed (change_feed.hpp) evicts it here; and an entry is
// only served while its shard's feed is known to be current:
//
//   - fresh_until(shard): the feed saw the echo of its own heartbeat, sent at time T, so every
//     change committed before T has been evicted already (notifications arrive in commit order).
//     An entry is served only before T + 0.9 s: a change can thus go unseen for less than a
//     second, even when the feed's connection silently stopped delivering.
//   - the shard's epoch: bumped when the feed (re)connects, since changes made while it was away
//     were never announced to it; entries filled before that are not served again.
//   - the generation: bumped by every eviction, so a database read that raced a change cannot put
//     the old answer back (put() skips it).
//
// Single-threaded, like everything a worker owns: no locks. Lookups allocate nothing.
#pragma once

#include <chrono>
#include <functional>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

namespace shardurl {

class LinkCache {
 public:
  using Clock = std::chrono::steady_clock;

  /// A cached link: its URL and, when the URL may be redirected to, the Location to send (empty
  /// when it may not: see Routes).
  struct Hit {
    std::string_view url;
    std::string_view location;
    std::size_t shard;  // the slot it was read from
  };

  /// What the cache did since it was made, for /metrics (plain counters: one thread).
  struct Stats {
    std::uint64_t hits = 0;
    std::uint64_t misses = 0;               // find() found nothing it could serve (the cache on)
    std::uint64_t evicted_capacity = 0;     // the least recently used entry made room
    std::uint64_t evicted_expired = 0;      // older than the TTL, or its shard's feed reconnected
    std::uint64_t evicted_invalidated = 0;  // a change to the link, or it moved to another shard
  };

  /// What a lookup must remember from before its database read, to put() the answer afterwards.
  struct Ticket {
    std::uint64_t generation = 0;
    std::uint64_t epoch = 0;
  };

  /// `capacity` 0 turns the cache off: every call is a no-op or a miss. `shards` is how many
  /// shards entries can belong to; none is fresh until told (set_fresh_until).
  LinkCache(std::size_t capacity, std::chrono::seconds ttl, std::size_t shards = 1);

  /// The link cached for `id`, if present, younger than the TTL, and its shard's feed current.
  /// Marks it recently used.
  std::optional<Hit> find(std::string_view id, Clock::time_point now);

  /// Read before a database read of a link of `shard` whose answer will be put().
  [[nodiscard]] Ticket ticket(std::size_t shard) const noexcept;

  /// Caches a link of `shard`, evicting the least recently used entry when full. Skipped when
  /// anything was evicted, or the shard's feed reconnected, since `ticket` was taken.
  void put(std::string_view id, std::string_view url, std::string_view location, std::size_t shard,
           Ticket ticket, Clock::time_point now);

  /// Forgets `id` and starts a new generation.
  void evict(std::string_view id);

  /// Entries of `shard` may be served until `until` (later calls only move it forward).
  void set_fresh_until(std::size_t shard, Clock::time_point until);

  /// The feed of `shard` (re)connected or was lost: no entry of it filled before now is served.
  void reset_shard(std::size_t shard);

  /// The ring changed: forgets every entry whose link `owner` (its shard under the new ring) no
  /// longer places on the shard it was read from, since its changes are announced by its new
  /// shard now; the others stay. Lookups that started before are not cached (a new generation).
  void forget_moved(const std::function<std::size_t(std::string_view id)>& owner);

  /// New limits (a reload): the least recently used entries beyond `capacity` go (all of them
  /// for 0, which turns the cache off), and no entry outlives `ttl` from now.
  void configure(std::size_t capacity, std::chrono::seconds ttl, Clock::time_point now);

  [[nodiscard]] std::size_t size() const noexcept { return index_.size(); }
  [[nodiscard]] const Stats& stats() const noexcept { return stats_; }
  [[nodiscard]] bool enabled() const noexcept { return capacity_ > 0; }

 private:
  struct Entry {
    std::string id;
    std::string url;
    std::string location;
    std::size_t shard = 0;
    std::uint64_t epoch = 0;
    Clock::time_point expires;
  };
  struct ShardView {
    std::uint64_t epoch = 0;
    Clock::time_point fresh_until{};
  };
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  using Order = std::list<Entry>;  // most recently used first

  void erase(std::unordered_map<std::string, Order::iterator, Hash, std::equal_to<>>::iterator it);

  std::size_t capacity_;
  std::chrono::seconds ttl_;
  Order order_;
  std::unordered_map<std::string, Order::iterator, Hash, std::equal_to<>> index_;
  std::vector<ShardView> shards_;
  std::uint64_t generation_ = 0;
  Stats stats_;
};

/// Every worker's cache, so that a change reaches all of them. Built before the workers start,
/// then read-only; callable from any thread.
class CacheGroup {
 public:
  /// `cache` lives on `executor`'s thread and must outlive the group.
  void add(boost::asio::any_io_executor executor, LinkCache& cache);

  /// Evicts `id` from every cache, each on its own thread; completes when all are done.
  [[nodiscard]] boost::asio::awaitable<void> evict(std::string id) const;

  /// The same three calls posted to every cache without waiting. Posts from one thread run on
  /// each cache in the order they were made, so an eviction posted before a freshness update is
  /// done before that update is seen.
  void post_evict(const std::string& id) const;
  void post_fresh_until(std::size_t shard, LinkCache::Clock::time_point until) const;
  void post_reset_shard(std::size_t shard) const;

  /// Worker `i`'s cache, to be touched on that worker's thread only.
  [[nodiscard]] LinkCache& cache(std::size_t i) const { return *members_[i].cache; }

  [[nodiscard]] bool enabled() const noexcept {
    return !members_.empty() && members_.front().cache->enabled();
  }

 private:
  struct Member {
    boost::asio::any_io_executor executor;
    LinkCache* cache;
  };
  std::vector<Member> members_;
};

}  // namespace shardurl
