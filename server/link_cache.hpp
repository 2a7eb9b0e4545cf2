// A bounded in-process cache of id -> URL for reads and redirects. Links never change once
// created, only disappear, so an entry is right until its link is deleted: a delete evicts it here
// at once, and `ttl` bounds how long another instance's delete can go unnoticed.
//
// Single-threaded, like everything a worker owns: no locks. Lookups allocate nothing. Each worker
// has its own; CacheGroup reaches all of them for deletes.
#pragma once

#include <chrono>
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

  /// `capacity` 0 turns the cache off: every call is a no-op or a miss.
  LinkCache(std::size_t capacity, std::chrono::seconds ttl) : capacity_(capacity), ttl_(ttl) {}

  /// The URL cached for `id`, if present and younger than the TTL. Marks it recently used.
  std::optional<std::string_view> find(std::string_view id, Clock::time_point now);

  /// Caches `url` for `id`, evicting the least recently used entry when full. Skipped when a
  /// delete happened since `generation` was read (the row may be the one just deleted).
  void put(std::string_view id, std::string_view url, std::uint64_t generation,
           Clock::time_point now);

  /// Forgets `id` and starts a new generation.
  void evict(std::string_view id);

  /// Read before a database lookup whose result will be put().
  [[nodiscard]] std::uint64_t generation() const noexcept { return generation_; }
  [[nodiscard]] std::size_t size() const noexcept { return index_.size(); }
  [[nodiscard]] bool enabled() const noexcept { return capacity_ > 0; }

 private:
  struct Entry {
    std::string id;
    std::string url;
    Clock::time_point expires;
  };
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  using Order = std::list<Entry>;  // most recently used first

  std::size_t capacity_;
  std::chrono::seconds ttl_;
  Order order_;
  std::unordered_map<std::string, Order::iterator, Hash, std::equal_to<>> index_;
  std::uint64_t generation_ = 0;
};

/// Every worker's cache, so that a delete through one worker evicts the link from all of them.
/// Built before the workers start, then read-only.
class CacheGroup {
 public:
  /// `cache` lives on `executor`'s thread and must outlive the group.
  void add(boost::asio::any_io_executor executor, LinkCache& cache);

  /// Evicts `id` from every cache, each on its own thread; completes when all are done.
  [[nodiscard]] boost::asio::awaitable<void> evict(std::string id) const;

 private:
  struct Member {
    boost::asio::any_io_executor executor;
    LinkCache* cache;
  };
  std::vector<Member> members_;
};

}  // namespace shardurl
