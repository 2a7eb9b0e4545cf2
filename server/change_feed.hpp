// Follows one shard's changes to links, so that every instance's caches agree within a second.
//
// Every statement that changes an existing link (a delete, a restore) also runs
// pg_notify('shardurl_links', id) in its own transaction, so PostgreSQL announces the change when,
// and only if, it commits. A ChangeFeed holds one session per shard that LISTENs to that channel
// and evicts each announced id from every worker's cache (CacheGroup).
//
// A feed cannot tell a quiet channel from a dead one, so it proves it is current: every 200 ms it
// sends a NOTIFY on a channel of its own on the same session and waits for the echo. PostgreSQL
// delivers notifications in commit order, so when the echo of a heartbeat sent at T arrives, every
// change committed before T has arrived before it and been evicted; the feed then lets the
// caches serve this shard's entries until T + 0.9 s (LinkCache::set_fresh_until). When the session
// breaks, hangs or sits behind a transaction-mode pooler (which does not carry notifications),
// echoes stop and the caches stop serving this shard's links within that bound, reading them
// from the shard instead. A new session starts a new epoch (LinkCache::reset_shard): changes made
// while the feed was away were never announced to it.
//
// Runs on the shard's home thread (see Shards); its posts to the caches are in order.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace shardurl {

class CacheGroup;

namespace pgasync {
class Connection;
struct Notification;
}  // namespace pgasync

struct FeedTiming {
  std::chrono::milliseconds heartbeat_every{200};
  std::chrono::milliseconds fresh_for{900};  // after a heartbeat is sent; under the 1 s promise
  std::chrono::milliseconds connect{1000};
  std::chrono::milliseconds query{2000};
  std::chrono::milliseconds retry{200};  // between two connection attempts
};

/// The channel every change to a link is announced on; its payload is the link's id.
inline constexpr std::string_view links_channel = "shardurl_links";
/// The channel a reshard announces a newer ring on (docs/resharding.md); its payload is the version.
inline constexpr std::string_view topology_channel = "shardurl_topology";

class ChangeFeed {
 public:
  /// Follows shard `shard` (named `name`) through `conninfo` on `home`, reporting to `caches`,
  /// which must outlive the feed's loop; `on_topology` runs (on `home`) when the shard announces
  /// a newer ring.
  ChangeFeed(boost::asio::any_io_executor home, std::size_t shard, std::string name,
             std::string conninfo, const CacheGroup& caches, FeedTiming timing = {},
             std::function<void()> on_topology = {});
  ~ChangeFeed();
  ChangeFeed(const ChangeFeed&) = delete;
  ChangeFeed& operator=(const ChangeFeed&) = delete;

  /// Starts the loop on the home executor.
  void start();
  /// Ends the loop within one heartbeat. Any thread.
  void close() noexcept;

  /// Whether the last heartbeat was echoed (for /readyz). Any thread.
  [[nodiscard]] bool current() const noexcept;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace shardurl
