#include "http_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <ctime>
#include <iostream>
#include <list>
#include <memory_resource>
#include <mutex>
#include <tuple>

#include "header_checks.hpp"
#include "metrics.hpp"
#include "routes.hpp"

namespace shardurl {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t max_header_fields = 100;

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

// Control characters other than CR, LF and HTAB, and DEL: bytes no header block can hold.
constexpr std::array<bool, 256> forbidden_header_bytes = [] {
  std::array<bool, 256> t{};
  for (int b = 0; b < 0x20; ++b) t[static_cast<std::size_t>(b)] = true;
  t['\r'] = t['\n'] = t['\t'] = false;
  t[0x7f] = true;
  return t;
}();

bool has_forbidden_header_byte(std::string_view bytes) noexcept {
  bool found = false;
  for (const char c : bytes) found |= forbidden_header_bytes[static_cast<unsigned char>(c)];
  return found;
}

// A connection's stream: the socket itself, or TLS over it (the socket stays the connection's, so
// that the sweeper can cancel either kind through it).
using TlsStream = beast::ssl_stream<tcp::socket&>;

// Writes the rest of `out` after its first `written` bytes.
template <class Stream>
asio::awaitable<beast::error_code> write_rest(Stream& stream, const std::string& out,
                                              std::size_t written) {
  auto [ec, n] = co_await asio::async_write(
      stream, asio::buffer(out.data() + written, out.size() - written), use_tuple);
  co_return ec;
}

// The first byte of every TLS connection: a handshake record (RFC 8446 section 5.1).
constexpr unsigned char tls_handshake_record = 0x16;

// Plain HTTP sent to the HTTPS port is answered in plain HTTP: a client (or a person with curl)
// that forgot the scheme learns why, instead of reading a TLS alert as garbage.
constexpr std::string_view plain_http_detail =
    "this port serves HTTPS only: send the request with https://";

// The Date header (RFC 9110 section 6.6.1), formatted once a second rather than per response.
// Everything in a server runs on one thread, so the cache needs no lock. shardurl never calls
// setlocale, so strftime runs in the "C" locale and day and month names are the English ones.
std::string_view http_date() {
  thread_local std::time_t formatted_at = 0;
  thread_local std::array<char, 32> text{};
  thread_local std::size_t length = 0;
  const std::time_t now = std::time(nullptr);
  if (now != formatted_at) {
    std::tm utc{};
    gmtime_r(&now, &utc);
    length = std::strftime(text.data(), text.size(), "%a, %d %b %Y %H:%M:%S GMT", &utc);
    formatted_at = now;
  }
  return {text.data(), length};
}

// Writes a whole response into `out` (reused per connection, so a warm connection allocates
// nothing here): status line, headers, and the body unless `head`. Beast's serializer walks a
// buffers_cat view of every field per write, which showed in profiles; shardurl's headers are few
// and known, so plain appends do. Header values come from shardurl itself (Location is
// percent-encoded by location_value), never raw from a client.
void append_number(std::string& out, std::size_t n) {
  std::array<char, 24> digits{};
  const auto end = std::to_chars(digits.data(), digits.data() + digits.size(), n).ptr;
  out.append(digits.data(), end);
}

void render(const Response& r, unsigned version, bool keep_alive, bool head, std::string& out) {
  using namespace std::string_view_literals;  // appends of known length: no strlen per header
  const auto status = static_cast<http::status>(r.status);
  out.clear();
  out += version == 10 ? "HTTP/1.0 "sv : "HTTP/1.1 "sv;
  append_number(out, r.status);
  out += ' ';
  const auto reason = http::obsolete_reason(status);
  out.append(reason.data(), reason.size());
  out += "\r\nServer: shardurl\r\nDate: "sv;
  out += http_date();
  out += "\r\n"sv;
  const auto header = [&out](std::string_view name, std::string_view value) {
    if (value.empty()) return;
    out += name;
    out += value;
    out += "\r\n"sv;
  };
  header("Content-Type: "sv, r.content_type);
  // A body with a type is read as that type only, never sniffed as HTML or script.
  if (!r.content_type.empty()) out += "X-Content-Type-Options: nosniff\r\n"sv;
  header("Location: "sv, r.location);
  header("Cache-Control: "sv, r.cache_control);
  header("Allow: "sv, r.allow);
  header("Content-Security-Policy: "sv, r.content_security_policy);
  // RFC 9110 section 8.6: no Content-Length on 1xx and 204 (and 304, which shardurl never sends).
  const bool bodiless = r.status < 200 || r.status == 204 || r.status == 304;
  if (!bodiless) {
    out += "Content-Length: "sv;
    append_number(out, r.body.size());
    out += "\r\n"sv;
  }
  if (version == 10 && keep_alive) out += "Connection: keep-alive\r\n"sv;
  if (version != 10 && !keep_alive) out += "Connection: close\r\n"sv;
  out += "\r\n"sv;
  if (!head && !bodiless) out += r.body;
}

// The answer to a request refused before routing, closing the connection: render()'s, with
// `extra_header` (a line without CRLF: the refusal's Allow or Accept-Encoding), if any, before the
// blank line. Kept out of render(), which every answer runs through.
void render_refusal(const Response& r, bool head, std::string_view extra_header, std::string& out) {
  render(r, 11, false, head, out);
  if (extra_header.empty()) return;
  const auto blank_line = out.find("\r\n\r\n") + 2;
  out.insert(blank_line, "\r\n");
  out.insert(blank_line, extra_header);
}

// A request's start line and header fields live in a per-connection arena, reset for every
// request: Beast's fields allocate for the target and for each field otherwise.
using ArenaAllocator = std::pmr::polymorphic_allocator<char>;
using Parser = http::request_parser<http::string_body, ArenaAllocator>;
constexpr std::size_t arena_bytes = 512;  // a typical request's fields fit; more spills to the heap

// The interim answer to "Expect: 100-continue" (RFC 9110 section 15.2.1).
constexpr std::string_view continue_100 = "HTTP/1.1 100 Continue\r\n\r\n";

// An h2c client with prior knowledge starts with this preface (RFC 9113 section 3.4).
constexpr std::string_view http2_preface = "PRI * HTTP/2.0\r\n\r\n";

Request to_request(const Parser::value_type& req, std::chrono::steady_clock::time_point received) {
  Request out{.method = req.method(),
              .target = req.target(),
              .body = req.body(),
              .content_type = req[http::field::content_type],
              .api_key = std::nullopt,
              .received = received};
  if (const auto key = req.find("X-Api-Key"); key != req.end()) out.api_key = key->value();
  return out;
}

}  // namespace

struct HttpServer::State : std::enable_shared_from_this<State> {
  using Clock = std::chrono::steady_clock;
  struct Connection;
  // Connections in one phase, oldest deadline first. Every connection in a list got the same
  // timeout when it joined the back, so deadlines only grow towards the back: the sweeper looks
  // at the front only, and a connection changes phase with an O(1) splice, allocating nothing.
  using Phase = std::list<Connection*>;

  // One connection: its socket, and where its session is. The deadline is per phase, not per
  // socket operation: a request's header block and body share one read deadline, so a client
  // trickling a byte at a time is cut off like a silent one.
  struct Connection {
    explicit Connection(tcp::socket s) : socket(std::move(s)) {}
    tcp::socket socket;
    Clock::time_point deadline = Clock::time_point::max();
    Phase* phase = nullptr;
    Phase::iterator node;
  };

  struct Worker {
    asio::io_context* io;
    Routes* routes;
    WorkerMetrics* metrics;
    // This worker's copy, so that set_limits() changes it on the worker's own thread.
    HttpLimits limits;
    std::chrono::milliseconds sweep_every{100};
    // Only touched on this worker's thread. `reading`: waiting for (or reading) a request; stop()
    // closes these at once, busy ones close after answering. `writing`: sending an answer.
    // `busy`: waiting for the routes (the shards), under no deadline of the server's own.
    // `closing`: draining what the client still sends after our FIN (linger()).
    Phase reading;
    Phase writing;
    Phase busy;
    Phase closing;
  };

  // Moves `c` to the back of `to` with `timeout` from now (or none, for `busy`).
  static void enter(Connection& c, Phase& to, std::chrono::milliseconds timeout) {
    if (c.phase == nullptr) {
      c.node = to.insert(to.end(), &c);
    } else {
      to.splice(to.end(), *c.phase, c.node);
    }
    c.phase = &to;
    c.deadline = timeout == std::chrono::milliseconds::max() ? Clock::time_point::max()
                                                             : Clock::now() + timeout;
  }
  static void leave(Connection& c) {
    if (c.phase != nullptr) c.phase->erase(c.node);
    c.phase = nullptr;
  }

  State(const std::vector<HttpWorker>& ws, const tcp::endpoint& endpoint, HttpLimits limits,
        std::shared_ptr<asio::ssl::context> tls_context)
      : acceptor(*ws.at(0).io, endpoint), tls(std::move(tls_context)) {
    for (const auto& w : ws) {
      workers.push_back(
          Worker{w.io, w.routes, w.metrics, limits, sweep_period(limits), {}, {}, {}, {}});
    }
  }

  // Deadlines are enforced to within a twentieth of the shortest timeout (at most 100 ms late): a
  // sweep looks only at the expired front of each phase, so it costs nothing per connection that
  // is within its time.
  static std::chrono::milliseconds sweep_period(const HttpLimits& limits) {
    return std::clamp<std::chrono::milliseconds>(
        std::min(limits.read_timeout, limits.write_timeout) / 20, std::chrono::milliseconds(5),
        std::chrono::milliseconds(100));
  }

  tcp::acceptor acceptor;  // on the first worker
  std::vector<Worker> workers;
  std::atomic<bool> stopping{false};
  std::atomic<std::size_t> open{0};
  // HTTPS when set. Each new connection takes the context of the moment, so set_tls() (a reload of
  // the certificate) applies to the next connection and leaves open ones as they are.
  std::mutex tls_mutex;
  std::shared_ptr<asio::ssl::context> tls;

  std::shared_ptr<asio::ssl::context> tls_context() {
    const std::lock_guard lock(tls_mutex);
    return tls;
  }

  asio::awaitable<void> accept_loop() {
    auto self = shared_from_this();
    std::size_t next = 0;
    while (!stopping) {
      Worker& worker = workers[next];
      // The socket is created on the worker that will serve it.
      auto [ec, socket] = co_await acceptor.async_accept(*worker.io, use_tuple);
      if (ec == asio::error::operation_aborted || stopping) break;
      if (ec) {
        // EMFILE and friends: back off briefly instead of spinning.
        std::clog << "shardurl: accept: " << ec.message() << "\n";
        asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(50));
        co_await pause.async_wait(use_tuple);
        continue;
      }
      if (open.load(std::memory_order_relaxed) >= workers.front().limits.max_connections) {
        // Over the cap: refuse this one at once rather than let it queue behind the others.
        socket.close(ec);
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      open.fetch_add(1, std::memory_order_relaxed);
      next = (next + 1) % workers.size();
      asio::co_spawn(*worker.io, session(worker, std::move(socket), tls_context()),
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

  // Cancels the socket operation of every connection past its deadline, on `worker`'s thread. A
  // connection that was between two operations when cancelled stays at the front and is
  // cancelled again next time, until its session moves on (or ends). Ends once the server is
  // stopping and the worker has no connection left, so that the loop can run out of work and
  // the server's state goes with the HttpServer.
  asio::awaitable<void> sweep(Worker& worker) {
    auto self = shared_from_this();
    asio::steady_timer tick(*worker.io);
    while (!(stopping && worker.reading.empty() && worker.busy.empty() && worker.writing.empty() &&
             worker.closing.empty())) {
      tick.expires_after(worker.sweep_every);
      auto [ec] = co_await tick.async_wait(use_tuple);
      if (ec) co_return;
      const auto now = Clock::now();
      for (Phase* phase : {&worker.reading, &worker.writing, &worker.closing}) {
        for (Connection* c : *phase) {
          if (c->deadline > now) break;
          beast::error_code ignored;
          c->socket.cancel(ignored);
        }
      }
    }
  }

  struct ReadOutcome {
    unsigned status = 0;  // an error to answer before closing; 0: none
    std::string detail;
    bool close = false;            // the peer left or went quiet: close without answering
    std::string_view header = {};  // with status: one more header line for the answer, or empty
  };

  struct HeaderBlock {
    enum class Status { complete, too_large, malformed, closed } status = Status::closed;
    std::size_t size = 0;  // with complete: the bytes up to and including the blank line
  };

  // Reads until `buffer` holds a whole header block (up to the blank line). Bytes that can never
  // be part of a header (control characters other than CR, LF and HTAB: binary garbage, a TLS
  // handshake) end it at once instead of waiting out the read deadline.
  template <class Stream>
  asio::awaitable<HeaderBlock> read_header_block(Stream& stream, beast::flat_buffer& buffer,
                                                 const HttpLimits& limits) {
    using Status = HeaderBlock::Status;
    std::size_t searched = 0;
    for (;;) {
      const std::string_view have(static_cast<const char*>(buffer.data().data()), buffer.size());
      const auto end = have.find("\r\n\r\n", searched);
      const auto checked = have.substr(
          searched, end == std::string_view::npos ? std::string_view::npos : end + 4 - searched);
      if (has_forbidden_header_byte(checked)) co_return HeaderBlock{Status::malformed};
      if (end != std::string_view::npos) co_return HeaderBlock{Status::complete, end + 4};
      if (have.size() >= limits.header_bytes) co_return HeaderBlock{Status::too_large};
      searched = have.size() < 3 ? 0 : have.size() - 3;
      const std::size_t room = std::min<std::size_t>(4096, limits.header_bytes - have.size());
      auto [ec, n] = co_await stream.async_read_some(buffer.prepare(room), use_tuple);
      if (ec) co_return HeaderBlock{Status::closed};
      buffer.commit(n);
    }
  }

  // Reads one request in two steps: the header block, checked as raw bytes and then parsed, and
  // then the body, which is only read when the head is acceptable (a client that sent
  // "Expect: 100-continue" is told to go on first; one whose head decides the answer gets that
  // answer, and no 100).
  template <class Stream>
  asio::awaitable<ReadOutcome> read_request(Stream& stream, beast::flat_buffer& buffer,
                                            Parser& parser, const HttpLimits& limits) {
    const HeaderBlock header = co_await read_header_block(stream, buffer, limits);
    switch (header.status) {
      case HeaderBlock::Status::closed: co_return ReadOutcome{0, {}, true};
      case HeaderBlock::Status::too_large: co_return ReadOutcome{431, "request headers too large"};
      case HeaderBlock::Status::malformed: co_return ReadOutcome{400, "malformed HTTP request"};
      case HeaderBlock::Status::complete: break;
    }
    const std::string_view block(static_cast<const char*>(buffer.data().data()), header.size);
    if (auto problem = header_problem(block, max_header_fields)) {
      co_return ReadOutcome{problem->status, std::move(problem->detail)};
    }
    beast::error_code parse_ec;
    const std::size_t parsed = parser.put(asio::buffer(block), parse_ec);
    if (!parse_ec && !parser.is_header_done()) parse_ec = http::error::partial_message;
    if (parse_ec) {
      if (block.starts_with(http2_preface)) {
        co_return ReadOutcome{400, "HTTP/2 is not served: shardurl speaks HTTP/1.1"};
      }
      const unsigned status = status_for_read_error(parse_ec);
      co_return ReadOutcome{status == 0 ? 400u : status,
                            std::string(read_error_detail(status == 0 ? 400 : status))};
    }
    buffer.consume(parsed);
    const bool body_follows = !parser.is_done();
    const RequestHead head = head_of(parser.get());
    if (auto problem = head.problem(parser.chunked(), body_follows)) {
      co_return ReadOutcome{problem->status, std::move(problem->detail), false, problem->header};
    }
    if (body_follows) {
      if (head.expects_continue(body_follows)) {
        auto [ec, n] = co_await asio::async_write(stream, asio::buffer(continue_100), use_tuple);
        if (ec) co_return ReadOutcome{0, {}, true};
      }
      auto [ec, bytes] = co_await http::async_read(stream, buffer, parser, use_tuple);
      if (ec) {
        const unsigned status = status_for_read_error(ec);
        if (status == 0) co_return ReadOutcome{0, {}, true};
        co_return ReadOutcome{status, std::string(read_error_detail(status))};
      }
    }
    co_return ReadOutcome{};
  }

  // Runs on `worker`'s thread; the accept loop counted it in `open` already.
  asio::awaitable<void> session(Worker& worker, tcp::socket socket,
                                std::shared_ptr<asio::ssl::context> tls_context) {
    auto self = shared_from_this();
    struct Closed {
      std::atomic<std::size_t>& open;
      ~Closed() { open.fetch_sub(1, std::memory_order_relaxed); }
    } closed{open};
    Connection conn(std::move(socket));
    struct Leave {
      Connection& c;
      ~Leave() { leave(c); }
    } leave_on_exit{conn};
    // Synchronous operations on it return would_block instead of waiting (see serve_requests).
    beast::error_code ignored;
    conn.socket.non_blocking(true, ignored);
    beast::flat_buffer buffer;
    if (!tls_context) {
      co_await serve_requests(worker, conn, conn.socket, buffer);
      co_await linger(worker, conn);
      co_return;
    }
    // The handshake counts as reading the first request: a client that connects and sends
    // nothing, or trickles its hello, is cut off at the read deadline like any other.
    enter(conn, worker.reading, worker.limits.read_timeout);
    auto [read_ec, n] = co_await conn.socket.async_read_some(buffer.prepare(1024), use_tuple);
    buffer.commit(n);
    if (read_ec || stopping) {
      co_await linger(worker, conn);
      co_return;
    }
    const auto first = *static_cast<const unsigned char*>(buffer.data().data());
    if (first != tls_handshake_record) {
      // An HTTP request starts with a method, in capitals; anything else gets no answer.
      if (first >= 'A' && first <= 'Z') {
        const auto read_at = Clock::now();
        std::string out;
        render_refusal(error_response(400, plain_http_detail), false, {}, out);
        enter(conn, worker.writing, worker.limits.write_timeout);
        co_await write_rest(conn.socket, out, 0);
        worker.metrics->observe_refusal(400, http::verb::unknown, "", read_at, out.size());
      }
      co_await linger(worker, conn);
      co_return;
    }
    TlsStream stream(conn.socket, *tls_context);
    auto [handshake_ec, used] = co_await stream.async_handshake(
        asio::ssl::stream_base::server, buffer.data(), use_tuple);
    if (!handshake_ec) {
      buffer.consume(used);
      co_await serve_requests(worker, conn, stream, buffer);
      // close_notify first (it waits for the client's, within the closing phase's second), then
      // the same lingering close as plain HTTP.
      enter(conn, worker.closing, std::chrono::seconds(1));
      co_await stream.async_shutdown(use_tuple);
    }
    co_await linger(worker, conn);
  }

  // Reads requests and answers them, in order, until the client or the server ends the connection.
  template <class Stream>
  asio::awaitable<void> serve_requests(Worker& worker, Connection& conn, Stream& stream,
                                       beast::flat_buffer& buffer) {
    constexpr bool plain = std::is_same_v<Stream, tcp::socket>;
    std::string out;  // the response being written, reused
    std::array<std::byte, arena_bytes> arena_memory;
    std::pmr::monotonic_buffer_resource arena(arena_memory.data(), arena_memory.size(),
                                              std::pmr::new_delete_resource());
    for (;;) {
      const HttpLimits& limits = worker.limits;
      arena.release();  // the last request's parser is gone
      Parser parser(std::piecewise_construct, std::make_tuple(),
                    std::make_tuple(ArenaAllocator(&arena)));
      parser.header_limit(static_cast<std::uint32_t>(limits.header_bytes));
      parser.body_limit(limits.body_bytes);
      enter(conn, worker.reading, limits.read_timeout);
      if (stopping) {
        // stop() set the flag before it posted the cancel of reading sessions to this thread: a
        // session that got here after that cancel ran sees the flag.
        break;
      }
      const ReadOutcome outcome = co_await read_request(stream, buffer, parser, limits);
      enter(conn, worker.busy, std::chrono::milliseconds::max());
      if (outcome.status != 0) {
        if (!stopping) {
          const auto read_at = Clock::now();
          // A HEAD request refused on its head gets the headers of the refusal and no body.
          const bool head = parser.is_header_done() && parser.get().method() == http::verb::head;
          render_refusal(error_response(outcome.status, outcome.detail), head, outcome.header, out);
          enter(conn, worker.writing, worker.limits.write_timeout);
          co_await write_rest(stream, out, 0);
          const bool known = parser.is_header_done();
          worker.metrics->observe_refusal(outcome.status,
                                          known ? parser.get().method() : http::verb::unknown,
                                          known ? parser.get().target() : "", read_at, out.size());
        }
        break;
      }
      if (outcome.close) break;
      auto& req = parser.get();
      // Named, not a temporary inside the co_await: GCC 12 destroys an aggregate temporary in a
      // co_await expression twice (docs/notes.md).
      const Request request = to_request(req, Clock::now());
      Response response = co_await worker.routes->handle(request);
      const bool keep_alive = req.keep_alive() && !stopping;
      // HEAD: the headers GET would send, Content-Length included, and no body.
      render(response, req.version(), keep_alive, req.method() == http::verb::head, out);
      beast::error_code write_ec;
      std::size_t written = 0;
      if constexpr (plain) {
        // First a non-blocking send, which takes the whole of a small answer whenever the
        // socket's send buffer has room (nearly always) and costs no trip through the event loop;
        // an asynchronous write, under the write deadline, only for what it left. (TLS has no
        // such shortcut: OpenSSL's record goes through the stream's asynchronous write.)
        written = stream.write_some(asio::buffer(out), write_ec);
        if (write_ec == asio::error::would_block || write_ec == asio::error::try_again) {
          write_ec = {};
          written = 0;
        }
      }
      if (!write_ec && written < out.size()) {
        enter(conn, worker.writing, worker.limits.write_timeout);
        write_ec = co_await write_rest(stream, out, written);
      }
      worker.metrics->observe(request, response, out.size());
      if (write_ec || !keep_alive) break;
    }
  }

  // Closes gracefully: send FIN, then read and discard what the client still sends until it closes
  // too (or a second passes). Closing with unread bytes would make the kernel answer with a reset,
  // and the client could lose the response it was about to read.
  // The second is a phase of its own (`closing`), cut off by the sweeper like the others: no timer
  // whose handler could outlive the session.
  asio::awaitable<void> linger(Worker& worker, Connection& conn) {
    tcp::socket& socket = conn.socket;
    beast::error_code ec;
    socket.shutdown(tcp::socket::shutdown_send, ec);
    if (ec) co_return;
    // A TLS session entered the phase before its close_notify: its second started then.
    if (conn.phase != &worker.closing) enter(conn, worker.closing, std::chrono::seconds(1));
    std::array<char, 4096> sink{};
    for (;;) {
      auto [read_ec, n] = co_await socket.async_read_some(asio::buffer(sink), use_tuple);
      if (read_ec) break;
    }
    leave(conn);
    // A client that still trickles bytes may have sent one since the last read: take whatever is
    // queued right before closing, so the close finds nothing unread (which would be a reset).
    socket.non_blocking(true, ec);
    while (!ec && socket.read_some(asio::buffer(sink), ec) > 0) {
    }
    socket.close(ec);
  }
};

HttpServer::HttpServer(std::vector<HttpWorker> workers, const tcp::endpoint& endpoint,
                       HttpLimits limits, std::shared_ptr<asio::ssl::context> tls)
    : state_(std::make_shared<State>(workers, endpoint, limits, std::move(tls))) {}

HttpServer::~HttpServer() {
  // The workers' loops have stopped by now (they must outlive the server): close directly.
  state_->stopping = true;
  beast::error_code ignored;
  state_->acceptor.close(ignored);
}

void HttpServer::start() {
  asio::co_spawn(state_->acceptor.get_executor(), state_->accept_loop(), asio::detached);
  for (auto& worker : state_->workers) {
    asio::co_spawn(*worker.io, state_->sweep(worker), asio::detached);
  }
}

void HttpServer::stop() {
  state_->stopping = true;
  // Each piece on the thread that owns it.
  asio::post(state_->acceptor.get_executor(), [state = state_] {
    beast::error_code ignored;
    state->acceptor.close(ignored);
  });
  for (auto& worker : state_->workers) {
    asio::post(*worker.io, [state = state_, &worker] {
      beast::error_code ignored;
      for (auto* c : worker.reading) c->socket.cancel(ignored);
    });
  }
}

void HttpServer::set_tls(std::shared_ptr<asio::ssl::context> tls) {
  const std::lock_guard lock(state_->tls_mutex);
  state_->tls = std::move(tls);
}

void HttpServer::set_limits(const HttpLimits& limits) {
  for (auto& worker : state_->workers) {
    asio::post(*worker.io, [state = state_, &worker, limits] {
      worker.limits = limits;
      worker.sweep_every = State::sweep_period(limits);
    });
  }
}

bool HttpServer::serves_tls() const {
  const std::lock_guard lock(state_->tls_mutex);
  return state_->tls != nullptr;
}

std::size_t HttpServer::connections() const noexcept {
  return state_->open.load(std::memory_order_relaxed);
}

tcp::endpoint HttpServer::local_endpoint() const {
  return state_->acceptor.local_endpoint();
}

}  // namespace shardurl
