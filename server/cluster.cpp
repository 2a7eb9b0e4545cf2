#include "cluster.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

#include "link_cache.hpp"
#include "link_repository.hpp"
#include "log.hpp"

namespace shardurl {
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

// Where a shard's change feed LISTENs, or empty when it has none.
std::string feed_conninfo(const ShardConfig& shard) {
  if (!shard.listen_conninfo.empty()) return shard.listen_conninfo;
  if (shard.pool_mode == PoolMode::transaction) return {};
  return shard.conninfo;
}

// How often a request waiting for a newer ring looks again: a cutover takes well under a second.
constexpr std::chrono::milliseconds recheck_every{10};

}  // namespace

asio::awaitable<bool> RingFollower::newer_than(std::uint64_t version, std::size_t slot,
                                               Deadline until) {
  if (current_->version() > version) co_return true;
  cluster_.shards_.probe_now(slot);
  asio::steady_timer tick(co_await asio::this_coro::executor);
  while (current_->version() <= version && Clock::now() < until) {
    tick.expires_after(std::min<Clock::duration>(recheck_every, until - Clock::now()));
    co_await tick.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  co_return current_->version() > version;
}

Cluster::Cluster(const Config& config, std::vector<asio::any_io_executor> homes,
                 std::string instance, const CacheGroup& caches)
    : config_(config),
      homes_(std::move(homes)),
      caches_(caches),
      shards_(homes_, config, LinkRepository::session_script(), std::move(instance),
              [this](std::size_t slot, const ShardMeta& meta) { on_meta(slot, meta); }),
      batcher_(shards_, Batcher::Limits{config.pool.max_batch, config.pool.max_waiters,
                                        config.pool.size, LinkRepository::lookup_statement(),
                                        LinkRepository::head_statement()}),
      feeds_(Shards::capacity) {
  auto first = std::make_shared<Topology>(0, config);
  std::vector<std::size_t> slots;
  for (const auto& shard : first->shards()) slots.push_back(*shards_.slot_of(shard.name));
  first->set_slots(std::move(slots));
  for (std::size_t i = 0; i < homes_.size(); ++i) {
    followers_.push_back(std::make_unique<RingFollower>(*this, first));
  }
  for (std::size_t slot = 0; slot < shards_.size(); ++slot) ensure_feed(slot);
}

Cluster::~Cluster() = default;

void Cluster::ensure_feed(std::size_t slot) {
  if (feeds_[slot] || config_.cache.entries == 0) return;
  const ShardConfig& shard = shards_.config(slot);
  const std::string target = feed_conninfo(shard);
  if (target.empty()) {
    log::warning("shard " + shard.name +
                 ": pool_mode is transaction and no listen_conninfo is set, so no change "
                 "notifications: its links are never served from the cache");
    return;
  }
  const FeedTiming timing{std::chrono::milliseconds(200), std::chrono::milliseconds(900),
                          std::chrono::milliseconds(config_.timeouts.connect_ms),
                          std::chrono::milliseconds(config_.timeouts.query_ms),
                          std::chrono::milliseconds(config_.health.interval_down_ms)};
  feeds_[slot] = std::make_unique<ChangeFeed>(shards_.home(slot), slot, shard.name, target,
                                              caches_, timing,
                                              [this, slot] { shards_.probe_now(slot); });
  if (started_) feeds_[slot]->start();
}

void Cluster::start() {
  started_ = true;
  shards_.start();
  for (auto& feed : feeds_) {
    if (feed) feed->start();
  }
}

void Cluster::close() {
  for (auto& feed : feeds_) {
    if (feed) feed->close();
  }
  shards_.close();
}

Cluster::Status Cluster::status() const {
  const std::lock_guard lock(status_mutex_);
  return status_;
}

// On the shard's home thread: the rest happens on the control thread, one version at a time.
void Cluster::on_meta(std::size_t slot, const ShardMeta& meta) {
  (void)slot;
  {
    const std::lock_guard lock(status_mutex_);
    status_.move = meta.move;
  }
  if (meta.ring_version == 0 || meta.topology.empty()) return;
  asio::post(homes_.front(), [this, version = meta.ring_version, topology = meta.topology] {
    consider(version, topology);
  });
}

void Cluster::consider(std::uint64_t version, const std::string& topology) {
  if (version <= latest_) return;
  try {
    install(std::make_shared<Topology>(topology_from_json(version, topology, config_)));
  } catch (const std::exception& e) {
    log::error("ring version " + std::to_string(version) +
                   " on the shards cannot be served: " + e.what() + "; staying on version " +
                   std::to_string(latest_),
               {{"event", "ring_refused"}, {"error", e.what()}});
  }
}

void Cluster::install(std::shared_ptr<Topology> topology) {
  std::vector<std::size_t> slots;
  for (const auto& shard : topology->shards()) {
    auto slot = shards_.slot_of(shard.name);
    if (!slot) {
      slot = shards_.add(shard);
      batcher_.add(*slot);
      ensure_feed(*slot);
      log::info("shard " + shard.name + ": joined (ring version " +
                    std::to_string(topology->version()) + ")",
                {{"shard", shard.name}, {"event", "shard_added"}});
    }
    slots.push_back(*slot);
  }
  topology->set_slots(std::move(slots));
  latest_ = topology->version();
  shards_.forget_tutorial_ids();
  std::shared_ptr<const Topology> ready = std::move(topology);
  // Every worker switches on its own thread, and its cache forgets the links that moved (their
  // changes are announced by their new shard now). Once the last has
  // switched, the shards are told (application_name), so a reshard knows this instance follows.
  auto remaining = std::make_shared<std::size_t>(followers_.size());
  for (std::size_t i = 0; i < followers_.size(); ++i) {
    asio::post(homes_[i], [this, i, ready, remaining] {
      followers_[i]->current_ = ready;
      caches_.cache(i).forget_moved([&ready](std::string_view id) { return ready->owner_of(id); });
      asio::post(homes_.front(), [this, ready, remaining] {
        if (--*remaining != 0) return;
        shards_.set_ring_version(ready->version());
        {
          const std::lock_guard lock(status_mutex_);
          status_.ring_version = ready->version();
        }
        for (std::size_t slot = 0; slot < shards_.size(); ++slot) shards_.probe_now(slot);
        log::info("serving ring version " + std::to_string(ready->version()) + " (" +
                      std::to_string(ready->shards().size()) + " shards)",
                  {{"event", "ring_installed"}, {"ring_version", std::to_string(ready->version())}});
      });
    });
  }
}

}  // namespace shardurl
