#include "http_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <iostream>
#include <list>

#include "routes.hpp"

namespace shardurl {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// The status for a request that could not be read, or 0 to close without answering (the peer
// left, or went quiet: nobody is listening for an answer).
unsigned status_for_read_error(const beast::error_code& ec) {
  if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == beast::error::timeout ||
      ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
      ec == http::error::partial_message) {
    return 0;
  }
  if (ec == http::error::header_limit) return 431;
  if (ec == http::error::body_limit) return 413;
  return 400;
}

std::string_view read_error_detail(unsigned status) {
  switch (status) {
    case 431: return "request headers too large";
    case 413: return "request body too large";
    default: return "malformed HTTP request";
  }
}

http::response<http::string_body> to_message(Response&& r, unsigned version, bool keep_alive) {
  http::response<http::string_body> msg{static_cast<http::status>(r.status), version};
  msg.set(http::field::server, "shardurl");
  msg.set(http::field::content_type, "application/json");
  for (auto& [name, value] : r.headers) msg.set(name, value);
  msg.keep_alive(keep_alive);
  msg.body() = std::move(r.body);
  msg.prepare_payload();
  return msg;
}

}  // namespace

struct HttpServer::State : std::enable_shared_from_this<State> {
  State(asio::io_context& io, const tcp::endpoint& endpoint, Routes& r, HttpLimits l)
      : acceptor(io, endpoint), routes(r), limits(l) {}

  tcp::acceptor acceptor;
  Routes& routes;
  HttpLimits limits;
  bool stopping = false;
  // Sessions waiting for a request: closed at once on stop(). Busy ones close after answering.
  std::list<beast::tcp_stream*> idle;
  std::size_t open = 0;

  asio::awaitable<void> accept_loop() {
    auto self = shared_from_this();
    while (!stopping) {
      auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
      if (ec == asio::error::operation_aborted || stopping) break;
      if (ec) {
        // EMFILE and friends: back off briefly instead of spinning.
        std::clog << "shardurl: accept: " << ec.message() << "\n";
        asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(50));
        co_await pause.async_wait(use_tuple);
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      asio::co_spawn(acceptor.get_executor(), session(beast::tcp_stream(std::move(socket))),
                     [](const std::exception_ptr& e) {
                       if (!e) return;
                       try {
                         std::rethrow_exception(e);
                       } catch (const std::exception& ex) {
                         std::clog << "shardurl: session failed: " << ex.what() << "\n";
                       }
                     });
    }
  }

  asio::awaitable<void> session(beast::tcp_stream stream) {
    auto self = shared_from_this();
    ++open;
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(limits.header_bytes));
      parser.body_limit(limits.body_bytes);
      stream.expires_after(limits.read_timeout);
      const auto slot = idle.insert(idle.end(), &stream);
      auto [ec, bytes] = co_await http::async_read(stream, buffer, parser, use_tuple);
      idle.erase(slot);
      if (ec) {
        if (const unsigned status = status_for_read_error(ec); status != 0 && !stopping) {
          auto msg = to_message(error_response(status, read_error_detail(status)), 11, false);
          stream.expires_after(limits.write_timeout);
          co_await http::async_write(stream, msg, use_tuple);
        }
        break;
      }
      auto& req = parser.get();
      Response response = co_await routes.handle({req.method(), req.target(), req.body()});
      const bool keep_alive = req.keep_alive() && !stopping;
      auto msg = to_message(std::move(response), req.version(), keep_alive);
      stream.expires_after(limits.write_timeout);
      auto [write_ec, written] = co_await http::async_write(stream, msg, use_tuple);
      if (write_ec || !keep_alive) break;
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    --open;
  }
};

HttpServer::HttpServer(asio::io_context& io, const tcp::endpoint& endpoint, Routes& routes,
                       HttpLimits limits)
    : state_(std::make_shared<State>(io, endpoint, routes, limits)) {}

HttpServer::~HttpServer() {
  stop();
}

void HttpServer::start() {
  asio::co_spawn(state_->acceptor.get_executor(), state_->accept_loop(), asio::detached);
}

void HttpServer::stop() {
  state_->stopping = true;
  beast::error_code ignored;
  state_->acceptor.close(ignored);
  for (auto* stream : state_->idle) stream->socket().cancel(ignored);
}

std::size_t HttpServer::connections() const noexcept {
  return state_->open;
}

tcp::endpoint HttpServer::local_endpoint() const {
  return state_->acceptor.local_endpoint();
}

}  // namespace shardurl
