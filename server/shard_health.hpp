// What shardurl believes about one shard, as a pure state machine: events in, state and the next
// probe time out. No I/O, no clock of its own, so every transition is tested without a server
// (test/unit/shard_health_test.cpp). Shards (shards.hpp) drives it from a probe loop and from the
// outcomes of real requests.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace shardurl {

enum class ShardState {
  unknown,  // not probed yet: requests are tried
  up,       // the last probe, or the last request, succeeded
  down,     // a probe or a request failed at the connection level: requests fail fast
};

std::string_view to_string(ShardState state) noexcept;

struct HealthPolicy {
  /// How often a healthy shard is probed (a hung shard is found by its next probe at the latest).
  std::chrono::milliseconds interval_up{1000};
  /// How often a down shard is probed: bounds how long a recovered shard stays refused.
  std::chrono::milliseconds interval_down{200};
};

class ShardHealth {
 public:
  using Clock = std::chrono::steady_clock;

  explicit ShardHealth(HealthPolicy policy = {}) : policy_(policy) {}

  /// A probe finished. `why` says what failed, for /readyz and the log.
  void probe_succeeded(Clock::time_point now) noexcept;
  void probe_failed(Clock::time_point now, std::string why);

  /// A request lost its connection, could not connect, or timed out on this shard: the shard is
  /// taken down at once, so the requests behind it fail fast instead of each waiting out its
  /// deadline. The next probe (interval_down later) brings it back if it is fine.
  void request_failed(Clock::time_point now, std::string why);

  [[nodiscard]] ShardState state() const noexcept { return state_; }
  [[nodiscard]] bool fail_fast() const noexcept { return state_ == ShardState::down; }
  [[nodiscard]] const std::string& last_error() const noexcept { return last_error_; }
  /// When the state last changed.
  [[nodiscard]] Clock::time_point since() const noexcept { return since_; }
  /// How long the probe loop should sleep before its next probe.
  [[nodiscard]] std::chrono::milliseconds next_probe_in() const noexcept;

  /// True once after each change of state (for logging a transition exactly once).
  bool take_change() noexcept;

 private:
  void set(ShardState state, Clock::time_point now) noexcept;

  HealthPolicy policy_;
  ShardState state_ = ShardState::unknown;
  Clock::time_point since_{};
  std::string last_error_;
  bool changed_ = false;
};

}  // namespace shardurl
