// The HTTP/1.1 front door: accepts connections and runs one session coroutine per connection.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <vector>

namespace boost::asio::ssl {
class context;
}

namespace shardurl {

class Routes;
class WorkerMetrics;

/// Limits every connection lives under. The defaults are what `shardurl serve` uses.
struct HttpLimits {
  std::size_t header_bytes = 8 * 1024;  // request line + headers; more is 431
  std::size_t body_bytes = 64 * 1024;   // more is 413
  /// The whole of one request (headers and body) must arrive within this, and an idle keep-alive
  /// connection is closed after it: a slow or silent client cannot hold a connection for ever.
  std::chrono::milliseconds read_timeout{10000};
  std::chrono::milliseconds write_timeout{10000};
  /// Connections beyond this are closed as soon as they are accepted.
  std::size_t max_connections = 10000;
};

/// One event loop that serves connections: its io_context runs on one thread, and `routes` (with
/// everything behind it) and `metrics` belong to that thread. `metrics` observes every answer
/// written and every request refused (WorkerMetrics::observe).
struct HttpWorker {
  boost::asio::io_context* io;
  Routes* routes;
  WorkerMetrics* metrics;
};

/// Accepts on `endpoint` and serves each connection with its worker's routes: keep-alive,
/// pipelined requests answered in order, one request at a time per connection.
///
/// Threading: the acceptor runs on the first worker and hands each new connection to the next
/// worker in turn; a connection then lives on that worker's thread for good, so nothing on the
/// request path is shared between threads. The io_contexts must outlive the server.
class HttpServer {
 public:
  /// With `tls`, the listener serves HTTPS only (see make_tls_context()); plain HTTP sent to it
  /// is answered 400 in plain HTTP and the connection closed.
  HttpServer(std::vector<HttpWorker> workers, const boost::asio::ip::tcp::endpoint& endpoint,
             HttpLimits limits = {}, std::shared_ptr<boost::asio::ssl::context> tls = nullptr);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Starts the accept loop.
  void start();

  /// Stops accepting. Requests in flight finish; every connection closes after its current
  /// response, and idle ones close at once. Callable from any thread: the work is posted to each
  /// worker.
  void stop();

  /// New connections use `tls` from now on (a reloaded certificate); open ones keep theirs. The
  /// server stays HTTPS or HTTP as it started: the caller refuses a change of kind. Any thread.
  void set_tls(std::shared_ptr<boost::asio::ssl::context> tls);
  [[nodiscard]] bool serves_tls() const;
  /// New limits, for each connection's next request (and the acceptor's next connection). Any
  /// thread: each worker takes them on its own.
  void set_limits(const HttpLimits& limits);
  /// Connections open now (all workers). Callable from any thread.
  [[nodiscard]] std::size_t connections() const noexcept;

  [[nodiscard]] boost::asio::ip::tcp::endpoint local_endpoint() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace shardurl
