#include "serve.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <iostream>

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

// Stops accepting, lets requests in flight finish (bounded by `deadline`), then stops the loop.
asio::awaitable<void> drain_and_stop(HttpServer& server, Shards& shards, asio::io_context& io,
                                     std::chrono::milliseconds deadline) {
  server.stop();
  asio::steady_timer tick(io);
  const auto give_up = std::chrono::steady_clock::now() + deadline;
  while (server.connections() > 0 && std::chrono::steady_clock::now() < give_up) {
    tick.expires_after(std::chrono::milliseconds(10));
    co_await tick.async_wait(asio::use_awaitable);
  }
  if (server.connections() > 0) {
    std::clog << "shardurl: " << server.connections()
              << " connections still open at the shutdown deadline; closing them\n";
  }
  shards.close();
  io.stop();
}

}  // namespace

int serve(const Config& config) {
  for (std::size_t i = 0; i < config.shards.size(); ++i) {
    if (config.shards[i].conninfo.empty()) {
      throw ConfigError("shards[" + std::to_string(i) + "].conninfo",
                        "missing: serving needs a libpq connection string for every shard");
    }
  }
  asio::io_context io(1);
  const ring::Ring ring = make_ring(config);
  Shards shards(io.get_executor(), config, ring, LinkRepository::session_script());
  Batcher batcher(io.get_executor(), shards,
                  Batcher::Limits{config.pool.max_batch, config.pool.max_waiters, config.pool.size});
  LinkRepository links(ring, batcher);
  std::vector<std::string> keys = config.api_keys;
  if (const char* env = std::getenv("SHARDURL_API_KEYS")) {
    for (auto& key : ApiKeys::parse_list(env)) keys.push_back(std::move(key));
  }
  if (keys.empty()) std::clog << "shardurl: no API keys configured: DELETE answers 403\n";
  LinkCache cache(config.cache.entries, std::chrono::seconds(config.cache.ttl_s));
  Routes routes(links, cache, shards, RouteSettings{config.redirect_status, config.max_url_length},
                ApiKeys(keys));
  HttpLimits limits;
  limits.header_bytes = config.http.header_limit_bytes;
  limits.body_bytes = config.http.body_limit_bytes;
  limits.read_timeout = std::chrono::milliseconds(config.http.read_timeout_ms);
  limits.max_connections = std::min(config.http.max_connections, raise_open_file_limit());

  const asio::ip::tcp::endpoint endpoint(asio::ip::make_address(config.listen_host),
                                         config.listen_port);
  std::optional<HttpServer> server;
  try {
    server.emplace(io, endpoint, routes, limits);
  } catch (const boost::system::system_error& e) {
    std::cerr << "shardurl: cannot listen on " << config.listen_host << ":" << config.listen_port
              << ": " << e.code().message() << "\n";
    return 1;
  }
  server->start();
  shards.start();

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    std::clog << "shardurl: " << (signal == SIGINT ? "SIGINT" : "SIGTERM")
              << ": finishing requests in flight, then exiting\n";
    asio::co_spawn(
        io,
        drain_and_stop(*server, shards, io, std::chrono::milliseconds(config.timeouts.shutdown_ms)),
        asio::detached);
  });

  std::clog << "shardurl: serving http://" << endpoint << " on " << config.shards.size()
            << " shards (ring: " << ring::to_string(config.hash) << ")\n";
  io.run();
  std::clog << "shardurl: stopped\n";
  return 0;
}

}  // namespace shardurl
