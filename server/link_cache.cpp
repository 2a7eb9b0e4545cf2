#include "link_cache.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace shardurl {

std::optional<std::string_view> LinkCache::find(std::string_view id, Clock::time_point now) {
  if (capacity_ == 0) return std::nullopt;
  const auto it = index_.find(id);
  if (it == index_.end()) return std::nullopt;
  if (it->second->expires <= now) {
    order_.erase(it->second);
    index_.erase(it);
    return std::nullopt;
  }
  order_.splice(order_.begin(), order_, it->second);
  return std::string_view(it->second->url);
}

void LinkCache::put(std::string_view id, std::string_view url, std::uint64_t generation,
                    Clock::time_point now) {
  if (capacity_ == 0 || generation != generation_) return;
  if (const auto it = index_.find(id); it != index_.end()) {
    it->second->expires = now + ttl_;
    order_.splice(order_.begin(), order_, it->second);
    return;
  }
  if (index_.size() >= capacity_) {
    // Reuse the least recently used entry's node and strings rather than allocating anew.
    auto last = std::prev(order_.end());
    index_.erase(last->id);
    last->id.assign(id);
    last->url.assign(url);
    last->expires = now + ttl_;
    order_.splice(order_.begin(), order_, last);
  } else {
    order_.push_front(Entry{std::string(id), std::string(url), now + ttl_});
  }
  index_.emplace(order_.front().id, order_.begin());
}

void LinkCache::evict(std::string_view id) {
  ++generation_;
  if (const auto it = index_.find(id); it != index_.end()) {
    order_.erase(it->second);
    index_.erase(it);
  }
}

void CacheGroup::add(boost::asio::any_io_executor executor, LinkCache& cache) {
  members_.push_back(Member{std::move(executor), &cache});
}

boost::asio::awaitable<void> CacheGroup::evict(std::string id) const {
  namespace asio = boost::asio;
  for (const auto& member : members_) {
    // co_spawn onto the cache's own thread; use_awaitable brings us back to ours afterwards.
    co_await asio::co_spawn(
        member.executor,
        [cache = member.cache, &id]() -> asio::awaitable<void> {
          cache->evict(id);
          co_return;
        },
        asio::use_awaitable);
  }
}

}  // namespace shardurl
