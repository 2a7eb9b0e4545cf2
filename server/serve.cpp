#include "serve.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <functional>
#include <sstream>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <thread>
#include <vector>

#include "cluster.hpp"
#include "http_server.hpp"
#include "link_cache.hpp"
#include "link_repository.hpp"
#include "log.hpp"
#include "metrics.hpp"
#include "routes.hpp"
#include "shards.hpp"
#include "tls.hpp"
#include "topology.hpp"

namespace shardurl {
namespace asio = boost::asio;
namespace {

// Every connection is a descriptor: lift the soft limit to the hard one, and return how many
// connections fit, leaving room for the shards' sockets and the process's own files.
std::size_t raise_open_file_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 1000;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    getrlimit(RLIMIT_NOFILE, &limit);
  }
  constexpr rlim_t reserve = 256;
  return limit.rlim_cur > 2 * reserve ? static_cast<std::size_t>(limit.rlim_cur - reserve)
                                      : static_cast<std::size_t>(limit.rlim_cur / 2);
}

RouteSettings route_settings(const Config& config) {
  return RouteSettings{config.redirect_status, config.max_url_length,
                       std::chrono::milliseconds(config.timeouts.request_ms)};
}

HttpLimits http_limits(const Config& config, std::size_t descriptors) {
  HttpLimits limits;
  limits.header_bytes = config.http.header_limit_bytes;
  limits.body_bytes = config.http.body_limit_bytes;
  limits.read_timeout = std::chrono::milliseconds(config.http.read_timeout_ms);
  limits.max_connections = std::min(config.http.max_connections, descriptors);
  return limits;
}

// The config's API keys and the environment's (read once, at start).
std::vector<std::string> api_keys(const Config& config, const std::vector<std::string>& env) {
  std::vector<std::string> keys = config.api_keys;
  keys.insert(keys.end(), env.begin(), env.end());
  return keys;
}

// What one event loop owns besides its shards (see Shards: shard i's pool, queue and feed live on
// worker i mod n): its cache, its ring (the Cluster's follower), its repository, its routes and
// its request counters. Nothing in here is touched from another thread except through
// CacheGroup, Cluster and Metrics, which post.
struct Worker {
  Worker(const Config& config, Cluster& cluster, std::size_t index, const CacheGroup& caches,
         const std::vector<std::string>& keys, boost::asio::any_io_executor executor,
         const Metrics& all_metrics)
      : cache(config.cache.entries, std::chrono::seconds(config.cache.ttl_s), Shards::capacity),
        links(cluster.follower(index), cluster.batcher()),
        routes(links, cache, caches, cluster, cluster.follower(index), route_settings(config),
               ApiKeys(keys), &all_metrics),
        metrics(std::move(executor), cluster.shards()) {}

  LinkCache cache;
  LinkRepository links;
  Routes routes;
  WorkerMetrics metrics;
};

// Stops accepting, lets requests in flight finish (bounded by `deadline`), then stops every loop.
asio::awaitable<void> drain_and_stop(HttpServer& server, const std::function<void()>& stop_all,
                                     std::chrono::milliseconds deadline) {
  server.stop();
  asio::steady_timer tick(co_await asio::this_coro::executor);
  const auto give_up = std::chrono::steady_clock::now() + deadline;
  while (server.connections() > 0 && std::chrono::steady_clock::now() < give_up) {
    tick.expires_after(std::chrono::milliseconds(10));
    co_await tick.async_wait(asio::use_awaitable);
  }
  if (server.connections() > 0) {
    log::warning(std::to_string(server.connections()) +
                 " connections still open at the shutdown deadline; closing them");
  }
  stop_all();
}

// Why `fresh` cannot be applied to a running server, or empty. The ring's shape is compared with
// the ring this instance serves now (which a reshard may have changed since the start); the rest
// with the configuration it started with.
std::string restart_only_change(const Config& running, const Config& fresh, const Topology& ring,
                                bool serves_tls) {
  if (fresh.listen_host != running.listen_host || fresh.listen_port != running.listen_port) {
    return "listen changed (" + running.listen_host + ":" + std::to_string(running.listen_port) +
           " -> " + fresh.listen_host + ":" + std::to_string(fresh.listen_port) +
           "): restart shardurl to listen there";
  }
  const auto& served = ring.config();
  bool same_ring = fresh.hash == served.hash && fresh.vnodes == served.vnodes &&
                   fresh.shards.size() == served.shards.size();
  for (std::size_t i = 0; same_ring && i < fresh.shards.size(); ++i) {
    const auto& a = fresh.shards[i];
    const auto& b = served.shards[i];
    same_ring = a.name == b.name && a.weight == b.weight && a.vnodes == b.vnodes;
  }
  if (!same_ring) {
    return "the shards differ from the ring this instance serves (version " +
           std::to_string(ring.version()) +
           "): shards are added, retired or reweighted with `shardurl reshard --config CURRENT "
           "--to NEW` (docs/resharding.md), which every running instance follows by itself";
  }
  for (const auto& shard : fresh.shards) {
    for (const auto& before : running.shards) {
      if (before.name == shard.name &&
          (before.conninfo != shard.conninfo || before.pool_mode != shard.pool_mode ||
           before.listen_conninfo != shard.listen_conninfo ||
           before.replication_conninfo != shard.replication_conninfo)) {
        return "how shard " + shard.name + " is reached changed: restart shardurl to apply it";
      }
    }
  }
  if (fresh.tls.enabled() != serves_tls) {
    return std::string(serves_tls ? "tls was removed" : "tls was added") +
           ": restart shardurl to change between HTTP and HTTPS";
  }
  const auto& p = running.pool;
  const auto& q = fresh.pool;
  const auto& h = running.health;
  const auto& g = fresh.health;
  const char* field = fresh.workers != running.workers                                 ? "workers"
                      : p.size != q.size || p.max_batch != q.max_batch ||
                              p.max_waiters != q.max_waiters                            ? "pool"
                      : h.interval_up_ms != g.interval_up_ms ||
                              h.interval_down_ms != g.interval_down_ms                  ? "health"
                                                                                        : nullptr;
  if (field != nullptr) return std::string(field) + " changed: restart shardurl to apply it";
  return {};
}

// The reloadable sections that differ, for the log line.
std::string reloaded_sections(const Config& running, const Config& fresh) {
  std::string list;
  const auto add = [&](bool differs, std::string_view name) {
    if (!differs) return;
    if (!list.empty()) list += ", ";
    list += name;
  };
  add(running.api_keys != fresh.api_keys, "api_keys");
  add(running.redirect_status != fresh.redirect_status, "redirect_status");
  add(running.max_url_length != fresh.max_url_length, "max_url_length");
  add(running.http.header_limit_bytes != fresh.http.header_limit_bytes ||
          running.http.body_limit_bytes != fresh.http.body_limit_bytes ||
          running.http.read_timeout_ms != fresh.http.read_timeout_ms ||
          running.http.max_connections != fresh.http.max_connections,
      "http");
  const auto& a = running.timeouts;
  const auto& b = fresh.timeouts;
  add(a.request_ms != b.request_ms || a.connect_ms != b.connect_ms || a.query_ms != b.query_ms ||
          a.pool_wait_ms != b.pool_wait_ms || a.shutdown_ms != b.shutdown_ms,
      "timeouts");
  add(running.cache.entries != fresh.cache.entries || running.cache.ttl_s != fresh.cache.ttl_s,
      "cache");
  add(running.log.format != fresh.log.format || running.log.access != fresh.log.access, "log");
  return list;
}

// This server's name in the shards' pg_stat_activity: host and process.
std::string instance_name() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return std::string(host) + ":" + std::to_string(getpid());
}

}  // namespace

int serve(const Config& config, const std::string& config_path) {
  log::apply(config.log);
  for (std::size_t i = 0; i < config.shards.size(); ++i) {
    if (config.shards[i].conninfo.empty()) {
      throw ConfigError("shards[" + std::to_string(i) + "].conninfo",
                        "missing: serving needs a libpq connection string for every shard");
    }
  }
  std::vector<std::string> env_keys;
  if (const char* env = std::getenv("SHARDURL_API_KEYS")) env_keys = ApiKeys::parse_list(env);
  const std::vector<std::string> keys = api_keys(config, env_keys);
  if (keys.empty()) log::warning("no API keys configured: every DELETE answers 401 or 403");
  std::shared_ptr<asio::ssl::context> tls;
  if (config.tls.enabled()) tls = make_tls_context(config.tls);  // throws ConfigError

  const unsigned count =
      config.workers != 0 ? config.workers : std::max(1u, std::thread::hardware_concurrency());
  // The loops first: everything below posts to them, and they outlive it all.
  std::vector<std::unique_ptr<asio::io_context>> loops;
  std::vector<asio::any_io_executor> homes;
  for (unsigned i = 0; i < count; ++i) {
    loops.push_back(std::make_unique<asio::io_context>(1));
    homes.push_back(loops.back()->get_executor());
  }
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  for (auto& loop : loops) guards.push_back(asio::make_work_guard(*loop));

  CacheGroup caches;
  Cluster cluster(config, homes, instance_name(), caches);
  Metrics metrics(cluster);
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<HttpWorker> http_workers;
  for (unsigned i = 0; i < count; ++i) {
    workers.push_back(
        std::make_unique<Worker>(config, cluster, i, caches, keys, homes[i], metrics));
    caches.add(homes[i], workers.back()->cache);
    metrics.add_worker(homes[i], workers.back()->metrics, workers.back()->cache);
    http_workers.push_back(
        HttpWorker{loops[i].get(), &workers.back()->routes, &workers.back()->metrics});
  }

  const std::size_t descriptors = raise_open_file_limit();
  const HttpLimits limits = http_limits(config, descriptors);

  const asio::ip::tcp::endpoint endpoint(asio::ip::make_address(config.listen_host),
                                         config.listen_port);
  std::optional<HttpServer> server;
  try {
    server.emplace(http_workers, endpoint, limits, tls);
  } catch (const boost::system::system_error& e) {
    std::cerr << "shardurl: cannot listen on " << config.listen_host << ":" << config.listen_port
              << ": " << e.code().message() << "\n";
    return 1;
  }
  metrics.set_open_connections([&server] { return server->connections(); });
  server->start();
  cluster.start();

  // Everything stops on its own thread: pools, probes and feeds, then the loops.
  const std::function<void()> stop_all = [&] {
    cluster.close();
    for (auto& loop : loops) asio::post(*loop, [&l = *loop] { l.stop(); });
  };
  asio::io_context& main_io = *loops.front();
  // What a reload changes, on the first worker's thread (the signal handlers run there, and so
  // does that worker's ring follower, which the reload reads).
  Config running = config;
  const auto reload = [&] {
    if (config_path.empty()) {
      log::warning("SIGHUP: no --config file to re-read (the built-in configuration is in use)");
      return;
    }
    Config fresh;
    std::shared_ptr<asio::ssl::context> fresh_tls;
    try {
      fresh = load_config(config_path);
      // Even with the same paths: a renewed certificate is the usual reason for a reload.
      if (fresh.tls.enabled()) fresh_tls = make_tls_context(fresh.tls);
    } catch (const ConfigError& e) {
      log::error("SIGHUP: " + config_path + " not reloaded, nothing changed: " + e.what());
      return;
    }
    const std::string refused =
        restart_only_change(running, fresh, *cluster.follower(0).current(), server->serves_tls());
    if (!refused.empty()) {
      log::error("SIGHUP: " + config_path + " not reloaded, nothing changed: " + refused);
      return;
    }
    const std::string sections = reloaded_sections(running, fresh);
    const std::vector<std::string> fresh_keys = api_keys(fresh, env_keys);
    for (std::size_t i = 0; i < workers.size(); ++i) {
      asio::post(*loops[i], [&worker = *workers[i], settings = route_settings(fresh),
                             keys = ApiKeys(fresh_keys), cache = fresh.cache]() mutable {
        worker.routes.reconfigure(settings, std::move(keys));
        worker.cache.configure(cache.entries, std::chrono::seconds(cache.ttl_s),
                               std::chrono::steady_clock::now());
      });
    }
    log::apply(fresh.log);
    cluster.shards().set_timeouts(fresh.timeouts);
    server->set_limits(http_limits(fresh, descriptors));
    if (fresh_tls) server->set_tls(fresh_tls);
    running = std::move(fresh);
    log::info("SIGHUP: reloaded " + config_path + " (" +
              (sections.empty() ? std::string("no setting changed") : "changed: " + sections) +
              (fresh_tls ? "; certificate and key re-read" : "") + ")");
    if (fresh_keys.empty()) log::warning("no API keys configured: every DELETE answers 401 or 403");
  };
  asio::signal_set hangups(main_io, SIGHUP);
  std::function<void(const boost::system::error_code&, int)> on_hangup =
      [&](const boost::system::error_code& ec, int) {
        if (ec) return;
        reload();
        hangups.async_wait(on_hangup);
      };
  hangups.async_wait(on_hangup);

  asio::signal_set signals(main_io, SIGINT, SIGTERM);
  bool draining = false;
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int signal) {
        if (ec) return;
        const char* name = signal == SIGINT ? "SIGINT" : "SIGTERM";
        if (draining) {
          // A second signal: the operator will not wait for the drain.
          log::warning(std::string(name) + " again: closing " +
                       std::to_string(server->connections()) + " connections now");
          stop_all();
          return;
        }
        draining = true;
        log::info(std::string(name) + ": finishing requests in flight, then exiting (send it "
                                      "again to exit at once)");
        asio::co_spawn(main_io,
                       drain_and_stop(*server, stop_all,
                                      std::chrono::milliseconds(running.timeouts.shutdown_ms)),
                       asio::detached);
        signals.async_wait(on_signal);
      };
  signals.async_wait(on_signal);

  std::ostringstream started;
  started << "serving " << (tls ? "https://" : "http://") << endpoint << " on " << config.shards.size() << " shards (ring: "
          << ring::to_string(config.hash) << ", " << count << (count == 1 ? " worker" : " workers")
          << ")";
  log::info(started.str());
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < loops.size(); ++i) {
    threads.emplace_back([&io = *loops[i]] { io.run(); });
  }
  main_io.run();
  for (auto& thread : threads) thread.join();
  server.reset();  // before the loops it uses
  for (auto& worker : workers) worker->metrics.flush_access_log();
  log::info("stopped");
  return 0;
}

}  // namespace shardurl
