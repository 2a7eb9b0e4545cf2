#include "serve.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <csignal>
#include <iostream>

#include "http_server.hpp"
#include "link_repository.hpp"
#include "routes.hpp"

namespace shardurl {
namespace asio = boost::asio;
namespace {

constexpr auto drain_deadline = std::chrono::seconds(10);

// Waits for in-flight requests to finish (bounded), then stops the loop.
asio::awaitable<void> drain_and_stop(HttpServer& server, LinkRepository& links,
                                     asio::io_context& io) {
  server.stop();
  asio::steady_timer tick(io);
  const auto give_up = std::chrono::steady_clock::now() + drain_deadline;
  while (server.connections() > 0 && std::chrono::steady_clock::now() < give_up) {
    tick.expires_after(std::chrono::milliseconds(20));
    co_await tick.async_wait(asio::use_awaitable);
  }
  links.close();
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
  LinkRepository links(io.get_executor(), config, ring);
  Routes routes(links);

  const asio::ip::tcp::endpoint endpoint(asio::ip::make_address(config.listen_host),
                                         config.listen_port);
  std::optional<HttpServer> server;
  try {
    server.emplace(io, endpoint, routes);
  } catch (const boost::system::system_error& e) {
    std::cerr << "shardurl: cannot listen on " << config.listen_host << ":" << config.listen_port
              << ": " << e.code().message() << "\n";
    return 1;
  }
  server->start();
  asio::co_spawn(io, links.report_shards(), asio::detached);

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    std::clog << "shardurl: " << (signal == SIGINT ? "SIGINT" : "SIGTERM")
              << ": finishing requests in flight, then exiting\n";
    asio::co_spawn(io, drain_and_stop(*server, links, io), asio::detached);
  });

  std::clog << "shardurl: serving http://" << endpoint << " on " << config.shards.size()
            << " shards (ring: " << ring::to_string(config.hash) << ")\n";
  io.run();
  std::clog << "shardurl: stopped\n";
  return 0;
}

}  // namespace shardurl
