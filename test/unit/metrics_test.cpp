// The Prometheus text exposition that /metrics answers: escaping, and histograms whose buckets
// are cumulative and end in +Inf == count. (test/e2e/observability_test.py has promtool check the
// whole of a real server's answer.)
#include <catch2/catch.hpp>

#include <charconv>
#include <string>

#include "batcher.hpp"
#include "metrics.hpp"

using shardurl::metrics::append_label_value;
using shardurl::metrics::Exposition;

TEST_CASE("label values escape backslash, double quote and line feed, and nothing else") {
  std::string out;
  append_label_value(out, "a\\b\"c\nd\te é");
  CHECK(out == "a\\\\b\\\"c\\nd\te é");
}

TEST_CASE("a family is HELP and TYPE, then its samples, one line each") {
  Exposition e;
  e.family("shardurl_x_total", "counter", "Counts \\ things\nacross lines.");
  e.sample("shardurl_x_total", {{"shard", "5432"}, {"kind", "a\"b"}}, std::uint64_t{7});
  e.sample("shardurl_x_total", {}, std::uint64_t{0});
  e.sample("shardurl_x_total", {{"shard", "weird\\name\n"}}, 0.25);
  CHECK(e.text() ==
        "# HELP shardurl_x_total Counts \\\\ things\\nacross lines.\n"
        "# TYPE shardurl_x_total counter\n"
        "shardurl_x_total{shard=\"5432\",kind=\"a\\\"b\"} 7\n"
        "shardurl_x_total 0\n"
        "shardurl_x_total{shard=\"weird\\\\name\\n\"} 0.25\n");
}

TEST_CASE("histogram buckets are cumulative, end in +Inf, and +Inf equals the count") {
  Exposition e;
  const std::array<std::string_view, 3> bounds = {"0.001", "0.01", "0.1"};
  const std::array<std::uint64_t, 4> per_bucket = {2, 0, 5, 1};  // the last: above 0.1
  e.histogram("h_seconds", {{"route", "/{url_id}"}}, bounds, per_bucket, 0.375);
  CHECK(e.text() ==
        "h_seconds_bucket{route=\"/{url_id}\",le=\"0.001\"} 2\n"
        "h_seconds_bucket{route=\"/{url_id}\",le=\"0.01\"} 2\n"
        "h_seconds_bucket{route=\"/{url_id}\",le=\"0.1\"} 7\n"
        "h_seconds_bucket{route=\"/{url_id}\",le=\"+Inf\"} 8\n"
        "h_seconds_sum{route=\"/{url_id}\"} 0.375\n"
        "h_seconds_count{route=\"/{url_id}\"} 8\n");

  Exposition empty;
  const std::array<std::uint64_t, 4> none{};
  empty.histogram("h_seconds", {}, bounds, none, 0.0);
  CHECK(empty.text() ==
        "h_seconds_bucket{le=\"0.001\"} 0\n"
        "h_seconds_bucket{le=\"0.01\"} 0\n"
        "h_seconds_bucket{le=\"0.1\"} 0\n"
        "h_seconds_bucket{le=\"+Inf\"} 0\n"
        "h_seconds_sum 0\n"
        "h_seconds_count 0\n");
}

TEST_CASE("the bucket labels say the bounds the counters use") {
  namespace m = shardurl::metrics;
  for (std::size_t i = 0; i < m::latency_bounds.size(); ++i) {
    double seconds = 0;
    const auto text = m::latency_bounds[i];
    REQUIRE(std::from_chars(text.data(), text.data() + text.size(), seconds).ec == std::errc{});
    INFO(text);
    CHECK(static_cast<std::uint64_t>(seconds * 1e9 + 0.5) == m::latency_bounds_ns[i]);
    if (i > 0) CHECK(m::latency_bounds_ns[i] > m::latency_bounds_ns[i - 1]);
  }
  REQUIRE(m::batch_size_bounds.size() == shardurl::Batcher::batch_size_bounds.size());
  for (std::size_t i = 0; i < m::batch_size_bounds.size(); ++i) {
    CHECK(m::batch_size_bounds[i] == std::to_string(shardurl::Batcher::batch_size_bounds[i]));
    // Bucket i holds up to 2^i statements: Batcher counts with bit_width(size - 1).
    CHECK(shardurl::Batcher::batch_size_bounds[i] == std::size_t{1} << i);
  }
}

TEST_CASE("every route has a bounded label: its template, unmatched or refused") {
  using shardurl::RouteId;
  CHECK(shardurl::route_label(RouteId::redirect) == "/{url_id}");
  CHECK(shardurl::route_label(RouteId::url) == "/urls/{url_id}");
  CHECK(shardurl::route_label(RouteId::metrics) == "/metrics");
  CHECK(shardurl::route_label(RouteId::unmatched) == "unmatched");
  CHECK(shardurl::route_label(RouteId::refused) == "refused");
  const auto table = shardurl::Routes::table();
  REQUIRE(table.size() + 2 == shardurl::route_ids);
  for (std::size_t i = 0; i < table.size(); ++i) {
    CHECK(shardurl::route_label(static_cast<RouteId>(i)) == table[i].path);
  }
}
