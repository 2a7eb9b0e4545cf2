// shardurl's metrics, in Prometheus' text exposition format (GET /metrics; docs/operations.md lists
// every metric with its labels).
//
// Counting costs the request path a few additions and no atomic or lock: each worker thread owns
// its WorkerMetrics, its LinkCache's counters, and the statement queues and pools of the shards
// whose home it is, and only that thread ever writes them (plain integers). A scrape
// (Metrics::scrape) visits each worker in turn on its own thread, by a co_spawn onto its loop and
// back (as CacheGroup::evict does), adds what that worker owns to one sum, and renders the sum.
// Nothing is shared, so there is nothing to read torn; the price is that a scrape waits for each
// worker's loop to take its turn (microseconds when the loops are healthy), and the sum is not
// one instant: each worker is read at its own moment of the scrape.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/verb.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "access_log.hpp"
#include "log.hpp"
#include "routes.hpp"

namespace shardurl {

class Cluster;
class LinkCache;
class Shards;

namespace metrics {

struct Label {
  std::string_view name;
  std::string_view value;
};

/// Appends `value` as the inside of a quoted label value: backslash, double quote and line feed
/// escaped (\\, \", \n), as the exposition format requires.
void append_label_value(std::string& out, std::string_view value);

/// Text in the exposition format (version 0.0.4), one metric family after the other.
class Exposition {
 public:
  /// Starts a family: its # HELP and # TYPE lines. Its samples must follow before the next
  /// family starts.
  void family(std::string_view name, std::string_view type, std::string_view help);

  void sample(std::string_view name, std::initializer_list<Label> labels, std::uint64_t value);
  void sample(std::string_view name, std::initializer_list<Label> labels, double value);

  /// One histogram series: `counts[i]` observations fell in bucket i (counts per bucket, not
  /// cumulative; the last is +Inf, so counts has one more element than `bounds`). Renders the
  /// cumulative NAME_bucket{...,le="B"} lines, NAME_sum and NAME_count (the +Inf bucket's value).
  void histogram(std::string_view name, std::initializer_list<Label> labels,
                 std::span<const std::string_view> bounds, std::span<const std::uint64_t> counts,
                 double sum);

  [[nodiscard]] const std::string& text() const noexcept { return out_; }
  [[nodiscard]] std::string take() noexcept { return std::move(out_); }

 private:
  void series(std::string_view name, std::string_view suffix, std::initializer_list<Label> labels,
              const Label* extra);
  std::string out_;
};

/// The request latency histogram's buckets: upper bounds in seconds as the `le` label shows them,
/// and in nanoseconds. Requests answered from the cache take tens of microseconds; a shard round
/// trip about a millisecond; timeouts.request_ms (2 s) ends the rest.
inline constexpr std::array<std::string_view, 14> latency_bounds = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01",
    "0.025",  "0.05",    "0.1",    "0.25",  "0.5",    "1",     "2.5"};
inline constexpr std::array<std::uint64_t, 14> latency_bounds_ns = {
    100'000,    250'000,    500'000,     1'000'000,   2'500'000,   5'000'000,     10'000'000,
    25'000'000, 50'000'000, 100'000'000, 250'000'000, 500'000'000, 1'000'000'000, 2'500'000'000};

/// The `le` labels of the shard batch size histogram (Batcher::batch_size_bounds).
inline constexpr std::array<std::string_view, 9> batch_size_bounds = {"1",  "2",  "4",   "8",  "16",
                                                                      "32", "64", "128", "256"};

}  // namespace metrics

/// One worker's HTTP counters and access log. Only touched on that worker's thread.
class WorkerMetrics {
 public:
  /// Per route: answers by status, the latency histogram, and bytes sent.
  struct Http {
    std::array<std::array<std::uint64_t, 500>, route_ids> answers{};  // [route][status - 100]
    std::array<std::array<std::uint64_t, metrics::latency_bounds.size() + 1>, route_ids>
        latency{};  // [route][bucket], not cumulative; the last is +Inf
    std::array<std::uint64_t, route_ids> latency_ns{};
    std::array<std::uint64_t, route_ids> bytes{};
    Http& operator+=(const Http& other) noexcept;
  };

  /// `executor` is the worker's (the access log's flush timer runs there); `shards` names the
  /// shards in access lines.
  WorkerMetrics(boost::asio::any_io_executor executor, const Shards& shards);

  using Clock = std::chrono::steady_clock;

  /// Counts `response` to `request` once its `bytes` (headers included) are written, and logs it
  /// when the access log is on. The whole cost when it is off: a clock read, a short bucket
  /// search and five additions. The latency counts from request.received.
  [[gnu::always_inline]] void observe(const Request& request, const Response& response,
                                      std::size_t bytes) {
    const std::uint64_t ns = count(request.route, response.status, request.received, bytes);
    if (log::access()) {
      log_access(request.method, request.target, response.status, ns, bytes, response.shard);
    }
  }

  /// Counts a request the HTTP layer refused before routing, with `status`. `method` and
  /// `target` are those of its request line if it was understood (else verb::unknown, empty).
  void observe_refusal(unsigned status, boost::beast::http::verb method, std::string_view target,
                       Clock::time_point read_at, std::size_t bytes);

  [[nodiscard]] const Http& http() const noexcept { return http_; }

  /// Writes the access lines buffered so far (at shutdown, once the worker's loop has stopped).
  void flush_access_log() { access_.flush(); }

 private:
  // Adds one answer to the counters; returns its latency in nanoseconds.
  std::uint64_t count(RouteId id, unsigned status, Clock::time_point read_at, std::size_t bytes) {
    const auto ns = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - read_at).count());
    const auto route = static_cast<std::size_t>(id);
    ++http_.answers[route][status - 100u < 500u ? status - 100u : 499u];
    std::size_t bucket = 0;
    while (bucket < metrics::latency_bounds_ns.size() && ns > metrics::latency_bounds_ns[bucket]) {
      ++bucket;
    }
    ++http_.latency[route][bucket];
    http_.latency_ns[route] += ns;
    http_.bytes[route] += bytes;
    return ns;
  }
  void log_access(boost::beast::http::verb method, std::string_view target, unsigned status,
                  std::uint64_t ns, std::size_t bytes, std::size_t shard);

  Http http_;
  AccessLog access_;
  const Shards& shards_;
};

/// Every worker's counters and every shard's state, as one exposition. Built before the workers
/// start, then read-only; scrape() is callable from any worker.
class Metrics {
 public:
  /// `cluster` (its shards, queues and ring) must outlive this.
  explicit Metrics(const Cluster& cluster);

  /// Worker i (in the order of the io_contexts given to the Cluster: worker 0 first, the thread
  /// that adds shards): its loop, counters and cache, which must outlive this.
  void add_worker(boost::asio::any_io_executor executor, const WorkerMetrics& counters,
                  const LinkCache& cache);

  /// How many HTTP connections are open now (HttpServer::connections), any thread.
  void set_open_connections(std::function<std::size_t()> count);

  /// The exposition text of everything, gathered on each worker's own thread.
  [[nodiscard]] boost::asio::awaitable<std::string> scrape() const;

 private:
  struct Worker {
    boost::asio::any_io_executor executor;
    const WorkerMetrics* counters;
    const LinkCache* cache;
  };
  struct Sum;
  void collect(std::size_t worker, Sum& sum) const;
  [[nodiscard]] std::string render(const Sum& sum) const;

  const Cluster& cluster_;
  std::vector<Worker> workers_;
  std::function<std::size_t()> open_connections_;
  double start_time_s_;
};

}  // namespace shardurl
