#include "metrics.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/version.hpp>

#include <libpq-fe.h>
#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <memory>

#include "batcher.hpp"
#include "cluster.hpp"
#include "link_cache.hpp"
#include "shards.hpp"

#ifndef SHARDURL_VERSION
#define SHARDURL_VERSION "unknown"
#endif

namespace shardurl {
namespace asio = boost::asio;

namespace metrics {

void append_label_value(std::string& out, std::string_view value) {
  for (const char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
}

namespace {

// HELP text escapes backslash and line feed only.
void append_help(std::string& out, std::string_view help) {
  for (const char c : help) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
}

void append_number(std::string& out, std::uint64_t n) {
  std::array<char, 24> digits{};
  const auto end = std::to_chars(digits.data(), digits.data() + digits.size(), n).ptr;
  out.append(digits.data(), end);
}

// The shortest text that reads back as `v` (Go's ParseFloat, which Prometheus uses, reads it).
void append_double(std::string& out, double v) {
  std::array<char, 32> digits{};
  const auto end = std::to_chars(digits.data(), digits.data() + digits.size(), v).ptr;
  out.append(digits.data(), end);
}

}  // namespace

void Exposition::family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  append_help(out_, help);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void Exposition::series(std::string_view name, std::string_view suffix,
                        std::initializer_list<Label> labels, const Label* extra) {
  out_ += name;
  out_ += suffix;
  if (labels.size() == 0 && extra == nullptr) {
    out_ += ' ';
    return;
  }
  char separator = '{';
  const auto add = [&](const Label& label) {
    out_ += separator;
    separator = ',';
    out_ += label.name;
    out_ += "=\"";
    append_label_value(out_, label.value);
    out_ += '"';
  };
  for (const auto& label : labels) add(label);
  if (extra != nullptr) add(*extra);
  out_ += "} ";
}

void Exposition::sample(std::string_view name, std::initializer_list<Label> labels,
                        std::uint64_t value) {
  series(name, {}, labels, nullptr);
  append_number(out_, value);
  out_ += '\n';
}

void Exposition::sample(std::string_view name, std::initializer_list<Label> labels, double value) {
  series(name, {}, labels, nullptr);
  append_double(out_, value);
  out_ += '\n';
}

void Exposition::histogram(std::string_view name, std::initializer_list<Label> labels,
                           std::span<const std::string_view> bounds,
                           std::span<const std::uint64_t> counts, double sum) {
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    cumulative += counts[i];
    const Label le{"le", i < bounds.size() ? bounds[i] : std::string_view("+Inf")};
    series(name, "_bucket", labels, &le);
    append_number(out_, cumulative);
    out_ += '\n';
  }
  series(name, "_sum", labels, nullptr);
  append_double(out_, sum);
  out_ += '\n';
  series(name, "_count", labels, nullptr);
  append_number(out_, cumulative);
  out_ += '\n';
}

}  // namespace metrics

WorkerMetrics::Http& WorkerMetrics::Http::operator+=(const Http& other) noexcept {
  for (std::size_t r = 0; r < route_ids; ++r) {
    for (std::size_t s = 0; s < answers[r].size(); ++s) answers[r][s] += other.answers[r][s];
    for (std::size_t b = 0; b < latency[r].size(); ++b) latency[r][b] += other.latency[r][b];
    latency_ns[r] += other.latency_ns[r];
    bytes[r] += other.bytes[r];
  }
  return *this;
}

WorkerMetrics::WorkerMetrics(asio::any_io_executor executor, const Shards& shards)
    : access_(std::move(executor)), shards_(shards) {}

void WorkerMetrics::observe_refusal(unsigned status, boost::beast::http::verb method,
                                    std::string_view target, Clock::time_point read_at,
                                    std::size_t bytes) {
  const std::uint64_t ns = count(RouteId::refused, status, read_at, bytes);
  if (log::access()) log_access(method, target, status, ns, bytes, Response::no_shard);
}

void WorkerMetrics::log_access(boost::beast::http::verb method, std::string_view target,
                               unsigned status, std::uint64_t ns, std::size_t bytes,
                               std::size_t shard) {
  AccessEntry entry;
  if (method != boost::beast::http::verb::unknown) {
    entry.method = boost::beast::http::to_string(method);
  }
  entry.target = target;
  entry.status = status;
  entry.duration_ns = ns;
  entry.bytes = bytes;
  if (shard != Response::no_shard) entry.shard = shards_.name(shard);
  access_.add(entry);
}

namespace {

// What /proc and getrusage say about this process; zeros where they say nothing.
struct ProcessFigures {
  double cpu_seconds = 0;
  std::uint64_t resident_bytes = 0;
  std::uint64_t virtual_bytes = 0;
  std::uint64_t open_fds = 0;
  std::uint64_t max_fds = 0;
};

ProcessFigures process_figures() {
  ProcessFigures out;
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) == 0) {
    const auto seconds = [](const timeval& t) {
      return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
    };
    out.cpu_seconds = seconds(usage.ru_utime) + seconds(usage.ru_stime);
  }
  // procfs is memory, not a disk: these reads do not wait.
  std::ifstream statm("/proc/self/statm");
  std::uint64_t pages_virtual = 0;
  std::uint64_t pages_resident = 0;
  if (statm >> pages_virtual >> pages_resident) {
    const auto page = static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
    out.virtual_bytes = pages_virtual * page;
    out.resident_bytes = pages_resident * page;
  }
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec)) {
    ++out.open_fds;
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) out.max_fds = limit.rlim_cur;
  return out;
}

std::string boost_version() {
  return std::to_string(BOOST_VERSION / 100000) + "." + std::to_string(BOOST_VERSION / 100 % 1000) +
         "." + std::to_string(BOOST_VERSION % 100);
}

// PQlibVersion: major * 10000 + minor since PostgreSQL 10.
std::string libpq_version() {
  const int v = PQlibVersion();
  return std::to_string(v / 10000) + "." + std::to_string(v % 10000);
}

double seconds(std::uint64_t ns) {
  return static_cast<double>(ns) / 1e9;
}

}  // namespace

struct Metrics::Sum {
  WorkerMetrics::Http http;
  LinkCache::Stats cache;
  std::size_t cache_entries = 0;
  std::uint64_t ring_version = 0;
  struct Shard {
    ShardStatus status;
    Shards::PoolStats pool;
    Batcher::QueueStats queue;
  };
  std::vector<Shard> shards;  // by slot: those known to worker 0 when the scrape began
};

Metrics::Metrics(const Cluster& cluster)
    : cluster_(cluster),
      start_time_s_(
          std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
              .count()) {}

void Metrics::add_worker(asio::any_io_executor executor, const WorkerMetrics& counters,
                         const LinkCache& cache) {
  workers_.push_back(Worker{std::move(executor), &counters, &cache});
}

void Metrics::set_open_connections(std::function<std::size_t()> count) {
  open_connections_ = std::move(count);
}

asio::awaitable<std::string> Metrics::scrape() const {
  auto sum = std::make_unique<Sum>();
  for (std::size_t w = 0; w < workers_.size(); ++w) {
    // co_spawn onto the worker's own thread; use_awaitable brings us back to ours afterwards.
    co_await asio::co_spawn(
        workers_[w].executor,
        [this, w, &sum]() -> asio::awaitable<void> {
          collect(w, *sum);
          co_return;
        },
        asio::use_awaitable);
  }
  co_return render(*sum);
}

// On worker `w`'s thread.
void Metrics::collect(std::size_t w, Sum& sum) const {
  const Worker& worker = workers_[w];
  const Shards& shards = cluster_.shards();
  if (w == 0) {
    // Worker 0 adds shards (Cluster::install), each with its queue, before it returns to its
    // loop: every slot counted here has both, on every thread the scrape visits next.
    sum.shards.resize(shards.size());
    sum.ring_version = cluster_.status().ring_version;
  }
  sum.http += worker.counters->http();
  const LinkCache::Stats& cache = worker.cache->stats();
  sum.cache.hits += cache.hits;
  sum.cache.misses += cache.misses;
  sum.cache.evicted_capacity += cache.evicted_capacity;
  sum.cache.evicted_expired += cache.evicted_expired;
  sum.cache.evicted_invalidated += cache.evicted_invalidated;
  sum.cache_entries += worker.cache->size();
  for (std::size_t slot = 0; slot < sum.shards.size(); ++slot) {
    if (shards.home(slot) != worker.executor) continue;
    auto& shard = sum.shards[slot];
    shard.status = shards.status(slot);
    shard.pool = shards.pool_stats(slot);
    shard.queue = cluster_.batcher().stats(slot);
  }
}

std::string Metrics::render(const Sum& sum) const {
  metrics::Exposition out;
  const auto& http = sum.http;

  out.family("shardurl_http_requests_total", "counter",
             "HTTP requests answered, by route template (unmatched: no route; refused: refused "
             "before routing) and status.");
  for (std::size_t r = 0; r < route_ids; ++r) {
    const std::string_view route = route_label(static_cast<RouteId>(r));
    for (std::size_t s = 0; s < http.answers[r].size(); ++s) {
      if (http.answers[r][s] == 0) continue;
      const std::string status = std::to_string(s + 100);
      out.sample("shardurl_http_requests_total", {{"route", route}, {"status", status}},
                 http.answers[r][s]);
    }
  }
  out.family("shardurl_http_request_duration_seconds", "histogram",
             "Time from a request read to its answer written, by route template.");
  for (std::size_t r = 0; r < route_ids; ++r) {
    out.histogram("shardurl_http_request_duration_seconds",
                  {{"route", route_label(static_cast<RouteId>(r))}}, metrics::latency_bounds,
                  http.latency[r], seconds(http.latency_ns[r]));
  }
  out.family("shardurl_http_response_bytes_total", "counter",
             "Bytes of the answers written (status line, headers and body), by route template.");
  for (std::size_t r = 0; r < route_ids; ++r) {
    out.sample("shardurl_http_response_bytes_total",
               {{"route", route_label(static_cast<RouteId>(r))}}, http.bytes[r]);
  }
  out.family("shardurl_http_open_connections", "gauge", "HTTP connections open now.");
  out.sample("shardurl_http_open_connections", {},
             static_cast<std::uint64_t>(open_connections_ ? open_connections_() : 0));

  out.family("shardurl_cache_hits_total", "counter",
             "Reads and redirects answered from a worker's link cache.");
  out.sample("shardurl_cache_hits_total", {}, sum.cache.hits);
  out.family("shardurl_cache_misses_total", "counter",
             "Reads and redirects the link cache could not answer (absent, expired, or its "
             "shard's change feed not current).");
  out.sample("shardurl_cache_misses_total", {}, sum.cache.misses);
  out.family("shardurl_cache_evictions_total", "counter",
             "Entries removed from the link cache, by reason (capacity: least recently used; "
             "expired: TTL or the shard's feed reconnected; invalidated: the link changed or "
             "moved).");
  out.sample("shardurl_cache_evictions_total", {{"reason", "capacity"}},
             sum.cache.evicted_capacity);
  out.sample("shardurl_cache_evictions_total", {{"reason", "expired"}}, sum.cache.evicted_expired);
  out.sample("shardurl_cache_evictions_total", {{"reason", "invalidated"}},
             sum.cache.evicted_invalidated);
  out.family("shardurl_cache_entries", "gauge", "Links in the link caches now (all workers).");
  out.sample("shardurl_cache_entries", {}, static_cast<std::uint64_t>(sum.cache_entries));

  const Shards& shards = cluster_.shards();
  const auto each_shard = [&](auto&& fn) {
    for (std::size_t slot = 0; slot < sum.shards.size(); ++slot) {
      fn(std::string_view(shards.name(slot)), sum.shards[slot]);
    }
  };
  out.family("shardurl_shard_state", "gauge",
             "1 for the state each shard is in (unknown: not probed yet; up; down: its keys answer "
             "503), 0 for the others.");
  each_shard([&](std::string_view name, const Sum::Shard& s) {
    for (const auto state : {ShardState::unknown, ShardState::up, ShardState::down}) {
      out.sample("shardurl_shard_state", {{"shard", name}, {"state", to_string(state)}},
                 static_cast<std::uint64_t>(s.status.state == state ? 1 : 0));
    }
  });
  out.family("shardurl_shard_sessions", "gauge",
             "Pooled sessions to each shard: busy (running a pipeline, or opening) and idle.");
  each_shard([&](std::string_view name, const Sum::Shard& s) {
    out.sample("shardurl_shard_sessions", {{"shard", name}, {"state", "busy"}},
               static_cast<std::uint64_t>(s.pool.open - s.pool.idle));
    out.sample("shardurl_shard_sessions", {{"shard", name}, {"state", "idle"}},
               static_cast<std::uint64_t>(s.pool.idle));
  });
  out.family("shardurl_shard_queue_depth", "gauge",
             "Statements waiting in each shard's queue for a session.");
  each_shard([&](std::string_view name, const Sum::Shard& s) {
    out.sample("shardurl_shard_queue_depth", {{"shard", name}},
               static_cast<std::uint64_t>(s.queue.queued));
  });
  out.family("shardurl_shard_statements_in_flight", "gauge",
             "Statements sent to each shard in pipelines that have not answered yet.");
  each_shard([&](std::string_view name, const Sum::Shard& s) {
    out.sample("shardurl_shard_statements_in_flight", {{"shard", name}},
               static_cast<std::uint64_t>(s.queue.in_flight));
  });
  out.family("shardurl_shard_statements_total", "counter",
             "Statements each shard answered with their rows (a batch of lookups counts each).");
  each_shard([&](std::string_view name, const Sum::Shard& s) {
    out.sample("shardurl_shard_statements_total", {{"shard", name}}, s.queue.statements);
  });
  out.family("shardurl_shard_errors_total", "counter",
             "Statements answered with an error, by shard and kind (unavailable, overloaded, "
             "timeout, statement: its own error, stale: routed by an older ring, moving: its link "
             "was being resharded). Stale and moving statements are routed again.");
  each_shard([&](std::string_view name, const Sum::Shard& s) {
    for (std::size_t k = 0; k < store_error_kinds; ++k) {
      out.sample("shardurl_shard_errors_total",
                 {{"shard", name}, {"kind", to_string(static_cast<StoreError::Kind>(k))}},
                 s.queue.errors[k]);
    }
  });
  out.family("shardurl_shard_batch_size", "histogram",
             "Statements per pipeline (one round trip and one commit) sent to each shard.");
  each_shard([&](std::string_view name, const Sum::Shard& s) {
    out.histogram("shardurl_shard_batch_size", {{"shard", name}}, metrics::batch_size_bounds,
                  s.queue.batches, static_cast<double>(s.queue.batched));
  });
  out.family("shardurl_ring_version", "gauge",
             "The ring version every worker serves (0: the config file's; see resharding).");
  out.sample("shardurl_ring_version", {}, sum.ring_version);

  out.family("shardurl_build_info", "gauge",
             "Always 1; the labels say which shardurl this is and what it was built with.");
  const std::string boost = boost_version();
  const std::string libpq = libpq_version();
  out.sample("shardurl_build_info",
             {{"version", SHARDURL_VERSION}, {"boost", boost}, {"libpq", libpq}}, std::uint64_t{1});
  const ProcessFigures process = process_figures();
  out.family("process_start_time_seconds", "gauge",
             "When shardurl started serving, in seconds since the Unix epoch.");
  out.sample("process_start_time_seconds", {}, start_time_s_);
  out.family("process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.");
  out.sample("process_cpu_seconds_total", {}, process.cpu_seconds);
  out.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  out.sample("process_resident_memory_bytes", {}, process.resident_bytes);
  out.family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
  out.sample("process_virtual_memory_bytes", {}, process.virtual_bytes);
  out.family("process_open_fds", "gauge", "Open file descriptors (connections included).");
  out.sample("process_open_fds", {}, process.open_fds);
  out.family("process_max_fds", "gauge", "The open file descriptor limit.");
  out.sample("process_max_fds", {}, process.max_fds);
  return out.take();
}

}  // namespace shardurl
