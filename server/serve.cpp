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
        routes(links, cache, caches, cluster, cluster.follower(index),
               RouteSettings{config.redirect_status, config.max_url_length,
                             std::chrono::milliseconds(config.timeouts.request_ms)},
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

// This server's name in the shards' pg_stat_activity: host and process.
std::string instance_name() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return std::string(host) + ":" + std::to_string(getpid());
}

}  // namespace

int serve(const Config& config) {
  log::apply(config.log);
  for (std::size_t i = 0; i < config.shards.size(); ++i) {
    if (config.shards[i].conninfo.empty()) {
      throw ConfigError("shards[" + std::to_string(i) + "].conninfo",
                        "missing: serving needs a libpq connection string for every shard");
    }
  }
  std::vector<std::string> keys = config.api_keys;
  if (const char* env = std::getenv("SHARDURL_API_KEYS")) {
    for (auto& key : ApiKeys::parse_list(env)) keys.push_back(std::move(key));
  }
  if (keys.empty()) log::warning("no API keys configured: every DELETE answers 401 or 403");

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

  HttpLimits limits;
  limits.header_bytes = config.http.header_limit_bytes;
  limits.body_bytes = config.http.body_limit_bytes;
  limits.read_timeout = std::chrono::milliseconds(config.http.read_timeout_ms);
  limits.max_connections = std::min(config.http.max_connections, raise_open_file_limit());

  const asio::ip::tcp::endpoint endpoint(asio::ip::make_address(config.listen_host),
                                         config.listen_port);
  std::optional<HttpServer> server;
  try {
    server.emplace(http_workers, endpoint, limits);
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
                                      std::chrono::milliseconds(config.timeouts.shutdown_ms)),
                       asio::detached);
        signals.async_wait(on_signal);
      };
  signals.async_wait(on_signal);

  std::ostringstream started;
  started << "serving http://" << endpoint << " on " << config.shards.size() << " shards (ring: "
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
