#include "shard_health.hpp"

#include <utility>

namespace shardurl {

std::string_view to_string(ShardState state) noexcept {
  switch (state) {
    case ShardState::up: return "up";
    case ShardState::down: return "down";
    case ShardState::unknown: break;
  }
  return "unknown";
}

void ShardHealth::set(ShardState state, Clock::time_point now) noexcept {
  if (state == state_) return;
  state_ = state;
  since_ = now;
  changed_ = true;
}

void ShardHealth::probe_succeeded(Clock::time_point now) noexcept {
  last_error_.clear();
  set(ShardState::up, now);
}

void ShardHealth::probe_failed(Clock::time_point now, std::string why) {
  last_error_ = std::move(why);
  set(ShardState::down, now);
}

void ShardHealth::request_failed(Clock::time_point now, std::string why) {
  last_error_ = std::move(why);
  set(ShardState::down, now);
}

std::chrono::milliseconds ShardHealth::next_probe_in() const noexcept {
  return state_ == ShardState::up ? policy_.interval_up : policy_.interval_down;
}

bool ShardHealth::take_change() noexcept {
  return std::exchange(changed_, false);
}

}  // namespace shardurl
