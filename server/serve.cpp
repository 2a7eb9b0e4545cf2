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

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <thread>
#include <vector>

#include "http_server.hpp"
#include "link_cache.hpp"
#include "link_repository.hpp"
#include "routes.hpp"

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

// Everything one event loop owns: its thread's shard sessions, statement queues and cache. Nothing
// in here is touched from another thread, except through BatcherGroup and CacheGroup (which post).
// Each worker's Shards watches every shard (for /readyz), but only the shards this worker owns in
// the BatcherGroup carry statements.
struct Worker {
  Worker(const Config& config, const ring::Ring& ring, const BatcherGroup& batchers,
         const CacheGroup& caches, const std::vector<std::string>& keys)
      : io(1),
        shards(io.get_executor(), config, ring, LinkRepository::session_script()),
        batcher(io.get_executor(), shards,
                Batcher::Limits{config.pool.max_batch, config.pool.max_waiters, config.pool.size,
                                LinkRepository::lookup_statement()}),
        links(ring, batchers),
        cache(config.cache.entries, std::chrono::seconds(config.cache.ttl_s)),
        routes(links, cache, caches, shards,
               RouteSettings{config.redirect_status, config.max_url_length}, ApiKeys(keys)),
        guard(io.get_executor()) {}

  asio::io_context io;
  Shards shards;
  Batcher batcher;
  LinkRepository links;
  LinkCache cache;
  Routes routes;
  asio::executor_work_guard<asio::io_context::executor_type> guard;  // run() until stopped
};

// Stops accepting, lets requests in flight finish (bounded by `deadline`), then stops every loop.
asio::awaitable<void> drain_and_stop(HttpServer& server,
                                     std::vector<std::unique_ptr<Worker>>& workers,
                                     std::chrono::milliseconds deadline) {
  server.stop();
  asio::steady_timer tick(co_await asio::this_coro::executor);
  const auto give_up = std::chrono::steady_clock::now() + deadline;
  while (server.connections() > 0 && std::chrono::steady_clock::now() < give_up) {
    tick.expires_after(std::chrono::milliseconds(10));
    co_await tick.async_wait(asio::use_awaitable);
  }
  if (server.connections() > 0) {
    std::clog << "shardurl: " << server.connections()
              << " connections still open at the shutdown deadline; closing them\n";
  }
  for (auto& worker : workers) {
    asio::post(worker->io, [&w = *worker] {
      w.shards.close();
      w.io.stop();
    });
  }
}

}  // namespace

int serve(const Config& config) {
  for (std::size_t i = 0; i < config.shards.size(); ++i) {
    if (config.shards[i].conninfo.empty()) {
      throw ConfigError("shards[" + std::to_string(i) + "].conninfo",
                        "missing: serving needs a libpq connection string for every shard");
    }
  }
  const ring::Ring ring = make_ring(config);
  std::vector<std::string> keys = config.api_keys;
  if (const char* env = std::getenv("SHARDURL_API_KEYS")) {
    for (auto& key : ApiKeys::parse_list(env)) keys.push_back(std::move(key));
  }
  if (keys.empty()) std::clog << "shardurl: no API keys configured: DELETE answers 403\n";

  const unsigned count =
      config.workers != 0 ? config.workers : std::max(1u, std::thread::hardware_concurrency());
  CacheGroup caches;
  BatcherGroup batchers;
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<HttpWorker> http_workers;
  for (unsigned i = 0; i < count; ++i) {
    workers.push_back(std::make_unique<Worker>(config, ring, batchers, caches, keys));
    caches.add(workers.back()->io.get_executor(), workers.back()->cache);
    batchers.add(workers.back()->io.get_executor(), workers.back()->batcher);
    http_workers.push_back(HttpWorker{&workers.back()->io, &workers.back()->routes});
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
  server->start();
  for (auto& worker : workers) worker->shards.start();

  asio::io_context& main_io = workers.front()->io;
  asio::signal_set signals(main_io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    std::clog << "shardurl: " << (signal == SIGINT ? "SIGINT" : "SIGTERM")
              << ": finishing requests in flight, then exiting\n";
    asio::co_spawn(
        main_io,
        drain_and_stop(*server, workers, std::chrono::milliseconds(config.timeouts.shutdown_ms)),
        asio::detached);
  });

  std::clog << "shardurl: serving http://" << endpoint << " on " << config.shards.size()
            << " shards (ring: " << ring::to_string(config.hash) << ", " << count
            << (count == 1 ? " worker" : " workers") << ")\n";
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < workers.size(); ++i) {
    threads.emplace_back([&io = workers[i]->io] { io.run(); });
  }
  main_io.run();
  for (auto& thread : threads) thread.join();
  server.reset();  // before the loops it uses
  std::clog << "shardurl: stopped\n";
  return 0;
}

}  // namespace shardurl
