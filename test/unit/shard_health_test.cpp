#include <catch2/catch.hpp>

#include "shard_health.hpp"

using shardurl::HealthPolicy;
using shardurl::ShardHealth;
using shardurl::ShardState;
using namespace std::chrono_literals;

TEST_CASE("a shard starts unknown and is tried, not refused") {
  ShardHealth h;
  CHECK(h.state() == ShardState::unknown);
  CHECK_FALSE(h.fail_fast());
  CHECK(h.next_probe_in() == HealthPolicy{}.interval_down);  // find out quickly
}

TEST_CASE("a failed probe or request takes the shard down; a good probe brings it back") {
  const auto t0 = ShardHealth::Clock::now();
  ShardHealth h(HealthPolicy{1000ms, 200ms});
  h.probe_succeeded(t0);
  CHECK(h.state() == ShardState::up);
  CHECK(h.take_change());
  CHECK_FALSE(h.take_change());
  CHECK(h.next_probe_in() == 1000ms);

  h.request_failed(t0 + 1s, "connection lost");
  CHECK(h.fail_fast());
  CHECK(h.last_error() == "connection lost");
  CHECK(h.since() == t0 + 1s);
  CHECK(h.take_change());
  CHECK(h.next_probe_in() == 200ms);  // a down shard is watched closely

  h.probe_failed(t0 + 2s, "connection refused");
  CHECK(h.fail_fast());
  CHECK(h.since() == t0 + 1s);  // still the same outage
  CHECK_FALSE(h.take_change());
  CHECK(h.last_error() == "connection refused");

  h.probe_succeeded(t0 + 3s);
  CHECK(h.state() == ShardState::up);
  CHECK_FALSE(h.fail_fast());
  CHECK(h.last_error().empty());
  CHECK(h.take_change());
}

TEST_CASE("state names for /readyz") {
  CHECK(shardurl::to_string(ShardState::up) == "up");
  CHECK(shardurl::to_string(ShardState::down) == "down");
  CHECK(shardurl::to_string(ShardState::unknown) == "unknown");
}
