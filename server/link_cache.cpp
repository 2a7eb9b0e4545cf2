#include "link_cache.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace shardurl {

LinkCache::LinkCache(std::size_t capacity, std::chrono::seconds ttl, std::size_t shards)
    : capacity_(capacity), ttl_(ttl), shards_(shards) {}

void LinkCache::erase(decltype(index_)::iterator it) {
  order_.erase(it->second);
  index_.erase(it);
}

std::optional<LinkCache::Hit> LinkCache::find(std::string_view id, Clock::time_point now) {
  if (capacity_ == 0) return std::nullopt;
  const auto it = index_.find(id);
  if (it == index_.end()) {
    ++stats_.misses;
    return std::nullopt;
  }
  const Entry& entry = *it->second;
  const ShardView& shard = shards_[entry.shard];
  if (entry.epoch != shard.epoch || entry.expires <= now) {
    erase(it);
    ++stats_.evicted_expired;
    ++stats_.misses;
    return std::nullopt;
  }
  // The feed is behind: keep the entry (it may be right), but do not vouch for it now.
  if (now >= shard.fresh_until) {
    ++stats_.misses;
    return std::nullopt;
  }
  order_.splice(order_.begin(), order_, it->second);
  ++stats_.hits;
  return Hit{entry.url, entry.location, entry.shard};
}

LinkCache::Ticket LinkCache::ticket(std::size_t shard) const noexcept {
  return Ticket{generation_, shard < shards_.size() ? shards_[shard].epoch : 0};
}

void LinkCache::put(std::string_view id, std::string_view url, std::string_view location,
                    std::size_t shard, Ticket ticket, Clock::time_point now) {
  if (capacity_ == 0 || shard >= shards_.size() || ticket.generation != generation_ ||
      ticket.epoch != shards_[shard].epoch) {
    return;
  }
  const auto fill = [&](Entry& e) {
    e.url.assign(url);
    e.location.assign(location);
    e.shard = shard;
    e.epoch = ticket.epoch;
    e.expires = now + ttl_;
  };
  if (const auto it = index_.find(id); it != index_.end()) {
    fill(*it->second);
    order_.splice(order_.begin(), order_, it->second);
    return;
  }
  if (index_.size() >= capacity_) {
    // Reuse the least recently used entry's node and strings rather than allocating anew.
    auto last = std::prev(order_.end());
    index_.erase(last->id);
    ++stats_.evicted_capacity;
    last->id.assign(id);
    fill(*last);
    order_.splice(order_.begin(), order_, last);
  } else {
    order_.push_front(Entry{std::string(id), {}, {}, 0, 0, {}});
    fill(order_.front());
  }
  index_.emplace(order_.front().id, order_.begin());
}

void LinkCache::configure(std::size_t capacity, std::chrono::seconds ttl, Clock::time_point now) {
  capacity_ = capacity;
  ttl_ = ttl;
  ++generation_;  // a lookup under way fills under the new limits, or not at all
  while (index_.size() > capacity_) {
    erase(index_.find(order_.back().id));
    ++stats_.evicted_capacity;  // a smaller capacity evicts as a full cache does
  }
  for (auto& entry : order_) entry.expires = std::min(entry.expires, now + ttl_);
}

void LinkCache::evict(std::string_view id) {
  ++generation_;
  if (const auto it = index_.find(id); it != index_.end()) {
    erase(it);
    ++stats_.evicted_invalidated;
  }
}

void LinkCache::set_fresh_until(std::size_t shard, Clock::time_point until) {
  if (shard < shards_.size() && until > shards_[shard].fresh_until) {
    shards_[shard].fresh_until = until;
  }
}

void LinkCache::reset_shard(std::size_t shard) {
  if (shard >= shards_.size()) return;
  ++shards_[shard].epoch;
  shards_[shard].fresh_until = {};
}

void LinkCache::forget_moved(const std::function<std::size_t(std::string_view id)>& owner) {
  ++generation_;
  for (auto it = index_.begin(); it != index_.end();) {
    if (owner(it->first) != it->second->shard) {
      order_.erase(it->second);
      it = index_.erase(it);
      ++stats_.evicted_invalidated;
    } else {
      ++it;
    }
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

void CacheGroup::post_evict(const std::string& id) const {
  for (const auto& member : members_) {
    boost::asio::post(member.executor, [cache = member.cache, id] { cache->evict(id); });
  }
}

void CacheGroup::post_fresh_until(std::size_t shard, LinkCache::Clock::time_point until) const {
  for (const auto& member : members_) {
    boost::asio::post(member.executor,
                      [cache = member.cache, shard, until] { cache->set_fresh_until(shard, until); });
  }
}

void CacheGroup::post_reset_shard(std::size_t shard) const {
  for (const auto& member : members_) {
    boost::asio::post(member.executor, [cache = member.cache, shard] { cache->reset_shard(shard); });
  }
}

}  // namespace shardurl
