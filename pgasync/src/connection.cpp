// All of pgasync's Asio-heavy code: waiting on libpq's socket with a deadline.
#include "pgasync/connection.hpp"

#include <libpq-fe.h>
#include <openssl/ssl.h>
#include <poll.h>

#include <algorithm>
#include <limits>
#include <utility>
#include <variant>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "conninfo.hpp"

namespace shardurl::pgasync {
namespace asio = boost::asio;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

std::string trimmed(const char* message) {
  std::string out = message != nullptr ? message : "";
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

Error make_error(Errc code, std::string client_message = {}) {
  Error err{code, {}};
  err.diag.client_message = std::move(client_message);
  return err;
}

std::string field(const PGresult* res, int code) {
  const char* value = PQresultErrorField(res, code);
  return value != nullptr ? value : "";
}

// Notices (e.g. "table does not exist, skipping") would go to stderr from an I/O thread; the
// server log has them anyway.
void ignore_notice(void* /*arg*/, const char* /*message*/) {}

enum class Ready { yes, timeout, cancelled, failed };

}  // namespace

struct Connection::Impl {
  explicit Impl(executor_type ex) : socket(ex), timer(ex) {}
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() { close(); }

  asio::posix::stream_descriptor socket;  // watches libpq's fd; never closes it
  asio::steady_timer timer;               // the current operation's deadline
  PGconn* conn = nullptr;
  bool broken = false;
  bool busy = false;

  void close() noexcept {
    release_socket();
    if (conn != nullptr) PQfinish(conn);
    conn = nullptr;
    broken = true;
  }

  void release_socket() noexcept {
    if (socket.is_open()) socket.release();  // hand the fd back to libpq, which closes it
  }

  // Points the descriptor at PQsocket(). `force` re-registers even an unchanged number: during
  // connect libpq may close its socket and open a new one that reuses the number, and epoll
  // forgets a closed fd, so only a fresh registration is safe there.
  bool watch_socket(bool force) noexcept {
    const int fd = PQsocket(conn);
    if (fd < 0) {
      release_socket();
      return false;
    }
    if (!force && socket.is_open() && socket.native_handle() == fd) return true;
    release_socket();
    boost::system::error_code ec;
    socket.assign(fd, ec);
    return !ec;
  }

  // With TLS, libpq decrypts at most one record per read and only as much of it as fits in its
  // input buffer; the rest stays inside OpenSSL, already taken off the socket. A record larger
  // than that room (a server or pooler may send records of up to 16 KiB) thus leaves bytes that
  // no socket readiness will ever announce: waiting on the socket then stalls until more arrives
  // or the deadline passes. libpq's own waits (pqSocketCheck) look here first, and so do ours.
  [[nodiscard]] bool tls_input_pending() const noexcept {
    if (conn == nullptr) return false;
    const auto* ssl = static_cast<const SSL*>(PQsslStruct(conn, "OpenSSL"));
    return ssl != nullptr && SSL_pending(ssl) > 0;
  }

  // Whether a read would find something now: decrypted bytes inside OpenSSL, or a readable socket.
  [[nodiscard]] bool input_waiting() const noexcept {
    if (tls_input_pending()) return true;
    pollfd pfd{PQsocket(conn), POLLIN, 0};
    return ::poll(&pfd, 1, 0) > 0;
  }

  Error lost(std::string message = {}) {
    if (message.empty() && conn != nullptr) message = trimmed(PQerrorMessage(conn));
    close();
    return make_error(Errc::connection_lost, std::move(message));
  }

  Error interrupted(Ready why) {
    close();  // the session may still owe a reply: it cannot be reused
    switch (why) {
      case Ready::timeout: return make_error(Errc::timeout, "deadline passed");
      case Ready::cancelled: return make_error(Errc::cancelled);
      default: return make_error(Errc::connection_lost, "waiting on the socket failed");
    }
  }

  // Waits until the socket is readable and/or writable, or the deadline passes. The poll() first
  // is essential: Asio's reactor is edge-triggered and async_wait does not check the socket, so
  // readiness that arrived before the wait (already drained from epoll) would never complete it.
  // Input OpenSSL already holds counts as readable (see tls_input_pending).
  asio::awaitable<Ready> wait(bool readable, bool writable, Deadline deadline) {
    if (readable && tls_input_pending()) co_return Ready::yes;
    pollfd pfd{socket.native_handle(), 0, 0};
    if (readable) pfd.events |= POLLIN;
    if (writable) pfd.events |= POLLOUT;
    if (::poll(&pfd, 1, 0) > 0) co_return Ready::yes;  // POLLERR/POLLHUP count: libpq will see them
    if (Clock::now() >= deadline) co_return Ready::timeout;

    timer.expires_at(deadline);
    using namespace asio::experimental::awaitable_operators;
    using asio::posix::descriptor_base;
    std::size_t winner = 0;
    boost::system::error_code ec;
    auto first_ec = [](const auto& tuple) { return std::get<0>(tuple); };
    if (readable && writable) {
      auto r = co_await (socket.async_wait(descriptor_base::wait_read, use_tuple) ||
                         socket.async_wait(descriptor_base::wait_write, use_tuple) ||
                         timer.async_wait(use_tuple));
      winner = r.index() == 2 ? 1 : 0;
      ec = std::visit(first_ec, r);
    } else {
      auto r = co_await (
          socket.async_wait(readable ? descriptor_base::wait_read : descriptor_base::wait_write,
                            use_tuple) ||
          timer.async_wait(use_tuple));
      winner = r.index();
      ec = std::visit(first_ec, r);
    }
    if (winner == 1) co_return ec ? Ready::cancelled : Ready::timeout;
    if (ec == asio::error::operation_aborted) co_return Ready::cancelled;
    co_return ec ? Ready::failed : Ready::yes;
  }

  asio::awaitable<std::optional<Error>> connect(
      const std::vector<std::pair<std::string, std::string>>& params, Deadline deadline) {
    std::vector<const char*> keywords;
    std::vector<const char*> values;
    for (const auto& [key, value] : params) {
      keywords.push_back(key.c_str());
      values.push_back(value.c_str());
    }
    keywords.push_back(nullptr);
    values.push_back(nullptr);

    // Every host is numeric by now (hostaddr), so this starts a non-blocking connect() only.
    conn = PQconnectStartParams(keywords.data(), values.data(), 0);
    if (conn == nullptr) co_return make_error(Errc::connection_failed, "out of memory");
    PQsetNoticeProcessor(conn, &ignore_notice, nullptr);
    // While connecting, libpq has no PGresult to ask for a SQLSTATE; verbose messages carry it
    // ("FATAL:  08P01: unsupported startup parameter: options"), and connect_failure() parses it.
    PQsetErrorVerbosity(conn, PQERRORS_VERBOSE);

    // libpq's documented protocol: behave as if PQconnectPoll had returned WRITING, then loop.
    PostgresPollingStatusType status = PGRES_POLLING_WRITING;
    while (status != PGRES_POLLING_OK) {
      if (status == PGRES_POLLING_FAILED || PQstatus(conn) == CONNECTION_BAD) {
        co_return connect_failure();
      }
      if (!watch_socket(true)) {
        auto message = trimmed(PQerrorMessage(conn));
        close();
        co_return make_error(Errc::connection_failed,
                             message.empty() ? "libpq has no socket" : std::move(message));
      }
      const Ready ready =
          co_await wait(status == PGRES_POLLING_READING, status != PGRES_POLLING_READING, deadline);
      if (ready == Ready::failed) {
        close();
        co_return make_error(Errc::connection_failed, "waiting on the socket failed");
      }
      if (ready != Ready::yes) co_return interrupted(ready);
      status = PQconnectPoll(conn);
    }

    PQsetErrorVerbosity(conn, PQERRORS_DEFAULT);
    if (PQsetnonblocking(conn, 1) != 0 || !watch_socket(false)) {
      auto message = trimmed(PQerrorMessage(conn));
      close();
      co_return make_error(Errc::connection_failed, std::move(message));
    }
    co_return std::nullopt;
  }

  // A failed connect: libpq's message, with the server's SQLSTATE when the server (or a pooler
  // such as PgBouncer) sent one, taken from the verbose "SEVERITY:  XXXXX: message" lines.
  Error connect_failure() {
    Error err = make_error(Errc::connection_failed, trimmed(PQerrorMessage(conn)));
    const std::string& text = err.diag.client_message;
    for (std::size_t at = text.find(":  "); at != std::string::npos; at = text.find(":  ", at + 1)) {
      const std::string_view rest = std::string_view(text).substr(at + 3);
      if (rest.size() > 6 && rest[5] == ':' &&
          std::all_of(rest.begin(), rest.begin() + 5, [](char c) {
            return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z');
          })) {
        err.diag.sqlstate = std::string(rest.substr(0, 5));
        break;
      }
    }
    close();
    return err;
  }

  // Admission for query-like operations: one at a time, and none on a dead session.
  std::optional<Error> begin() {
    if (busy) return make_error(Errc::busy);
    if (broken || conn == nullptr) return make_error(Errc::connection_lost, "connection is closed");
    busy = true;
    return std::nullopt;
  }

  // Sends everything PQsend* queued. libpq: while PQflush returns 1, wait for read or write
  // readiness; consume input when readable so a server that is itself blocked on sending to us can
  // make progress.
  asio::awaitable<std::optional<Error>> flush(Deadline deadline) {
    for (;;) {
      const int flushed = PQflush(conn);
      if (flushed == 0) co_return std::nullopt;
      if (flushed < 0) co_return lost();
      const Ready ready = co_await wait(true, true, deadline);
      if (ready != Ready::yes) co_return interrupted(ready);
      if (PQconsumeInput(conn) == 0) co_return lost();
    }
  }

  static Error server_error(const PGresult* res) {
    Error err = make_error(Errc::server_error);
    err.diag.sqlstate = field(res, PG_DIAG_SQLSTATE);
    err.diag.server_message = field(res, PG_DIAG_MESSAGE_PRIMARY);
    err.diag.server_detail = field(res, PG_DIAG_MESSAGE_DETAIL);
    if (err.diag.server_message.empty()) {
      err.diag.client_message = trimmed(PQresultErrorMessage(res));
    }
    return err;
  }

  // Flushes what PQsend* queued and collects every result. Called right after PQsend*, which
  // returned `sent` (1 on success).
  asio::awaitable<Result<QueryResult>> complete(int sent, Deadline deadline) {
    struct Unbusy {
      bool& flag;
      ~Unbusy() { flag = false; }
    } unbusy{busy};

    try {
      if (sent != 1) co_return lost();
      if (auto err = co_await flush(deadline)) co_return std::move(*err);

      std::unique_ptr<PGresult, decltype(&PQclear)> last(nullptr, &PQclear);
      std::optional<Error> failure;
      for (;;) {
        while (PQisBusy(conn) == 0) {
          std::unique_ptr<PGresult, decltype(&PQclear)> res(PQgetResult(conn), &PQclear);
          if (!res) co_return finish(std::move(last), std::move(failure));
          switch (PQresultStatus(res.get())) {
            case PGRES_TUPLES_OK:
            case PGRES_COMMAND_OK:
            case PGRES_EMPTY_QUERY: last = std::move(res); break;
            case PGRES_FATAL_ERROR:
              if (!failure) failure = server_error(res.get());
              break;
            default:
              // COPY and friends: PQgetResult would keep returning them; the session is stuck.
              close();
              co_return make_error(Errc::protocol_error,
                                   std::string("unsupported result status ") +
                                       PQresStatus(PQresultStatus(res.get())));
          }
        }
        const Ready ready = co_await wait(true, false, deadline);
        if (ready != Ready::yes) co_return interrupted(ready);
        if (PQconsumeInput(conn) == 0) co_return lost();
      }
    } catch (const boost::system::system_error&) {
      // Asio throws operation_aborted from co_await once the caller's cancellation was requested.
      co_return interrupted(Ready::cancelled);
    }
  }

  using Outcomes = std::vector<Result<QueryResult>>;

  // Collects a pipeline's results after PQpipelineSync: for each of `calls` statements, its
  // result(s) and a NULL; then one PGRES_PIPELINE_SYNC. After an error the server skips the rest
  // (PGRES_PIPELINE_ABORTED each) and rolls the implicit transaction back.
  asio::awaitable<Result<Outcomes>> complete_pipeline(std::size_t calls, Deadline deadline) {
    struct Unbusy {
      bool& flag;
      ~Unbusy() { flag = false; }
    } unbusy{busy};

    try {
      if (auto err = co_await flush(deadline)) co_return std::move(*err);
      Outcomes out;
      out.reserve(calls);
      std::optional<Result<QueryResult>> current;  // the statement being read
      bool failed = false;
      for (;;) {
        while (PQisBusy(conn) == 0) {
          std::unique_ptr<PGresult, decltype(&PQclear)> res(PQgetResult(conn), &PQclear);
          if (!res) {
            // The end of one statement's results.
            if (!current || out.size() == calls) {
              close();
              co_return make_error(Errc::protocol_error, "pipeline: result without a statement");
            }
            out.push_back(std::move(*current));
            current.reset();
            continue;
          }
          switch (PQresultStatus(res.get())) {
            case PGRES_TUPLES_OK:
            case PGRES_COMMAND_OK:
            case PGRES_EMPTY_QUERY: current.emplace(QueryResult(res.release())); break;
            case PGRES_FATAL_ERROR: {
              Error err = server_error(res.get());
              if (PQstatus(conn) == CONNECTION_BAD || is_fatal(err)) {
                // Keep the server's own error (its SQLSTATE says why), not libpq's "server closed
                // the connection" that follows it.
                close();
                err.code = Errc::connection_lost;
                co_return err;
              }
              failed = true;
              current.emplace(std::move(err));
              break;
            }
            case PGRES_PIPELINE_ABORTED:
              current.emplace(make_error(Errc::pipeline_aborted, "skipped"));
              break;
            case PGRES_PIPELINE_SYNC:
              if (out.size() != calls || current) {
                close();
                co_return make_error(Errc::protocol_error, "pipeline: early sync");
              }
              co_return end_pipeline(std::move(out), failed);
            default:
              close();
              co_return make_error(Errc::protocol_error,
                                   std::string("unsupported result status ") +
                                       PQresStatus(PQresultStatus(res.get())));
          }
        }
        if (PQstatus(conn) == CONNECTION_BAD) co_return lost();
        const Ready ready = co_await wait(true, false, deadline);
        if (ready != Ready::yes) co_return interrupted(ready);
        if (PQconsumeInput(conn) == 0) co_return lost();
      }
    } catch (const boost::system::system_error&) {
      co_return interrupted(Ready::cancelled);
    }
  }

  // Moves every notification libpq has parsed so far into `out`.
  void collect_notifications(std::vector<Notification>& out) {
    (void)PQisBusy(conn);  // parses what PQconsumeInput read, notifications included
    while (PGnotify* n = PQnotifies(conn)) {
      out.push_back(Notification{n->relname != nullptr ? n->relname : "",
                                 n->extra != nullptr ? n->extra : "", n->be_pid});
      PQfreemem(n);
    }
  }

  Result<Outcomes> end_pipeline(Outcomes out, bool failed) {
    if (PQexitPipelineMode(conn) != 1) {
      auto message = trimmed(PQerrorMessage(conn));
      close();
      return make_error(Errc::protocol_error, "leaving pipeline mode: " + message);
    }
    if (failed) {
      // The transaction was rolled back: what succeeded before the error did not stick.
      for (auto& outcome : out) {
        if (outcome) outcome = make_error(Errc::pipeline_aborted, "rolled back");
      }
    }
    return out;
  }

  Result<QueryResult> finish(std::unique_ptr<PGresult, decltype(&PQclear)> last,
                             std::optional<Error> failure) {
    if (PQstatus(conn) == CONNECTION_BAD) {
      // Whatever the server said last (57P01, 25P03, ...), the session is gone.
      Error err = failure ? std::move(*failure) : Error{};
      err.code = Errc::connection_lost;
      if (err.diag.client_message.empty()) err.diag.client_message = trimmed(PQerrorMessage(conn));
      close();
      return err;
    }
    if (failure) {
      if (is_fatal(*failure)) close();
      return std::move(*failure);
    }
    if (!last) return make_error(Errc::protocol_error, "the server sent no result");
    return QueryResult(last.release());
  }
};

namespace {

// Resolves one DNS name off the I/O thread (Asio's resolver thread) within the deadline. A
// lookup already running in the resolver thread cannot be interrupted: the deadline is then late
// by its remainder.
asio::awaitable<std::variant<std::vector<std::string>, Ready>> resolve(Connection::executor_type ex,
                                                                       const std::string& host,
                                                                       Deadline deadline) {
  using namespace asio::experimental::awaitable_operators;
  asio::ip::tcp::resolver resolver(ex);
  asio::steady_timer timer(ex, deadline);
  auto r = co_await (resolver.async_resolve(host, "", use_tuple) || timer.async_wait(use_tuple));
  if (r.index() == 1) {
    co_return std::get<0>(std::get<1>(r)) ? Ready::cancelled : Ready::timeout;
  }
  auto& [ec, endpoints] = std::get<0>(r);
  if (ec == asio::error::operation_aborted) co_return Ready::cancelled;
  std::vector<std::string> addrs;
  if (!ec) {
    for (const auto& entry : endpoints) {
      auto addr = entry.endpoint().address().to_string();
      if (std::find(addrs.begin(), addrs.end(), addr) == addrs.end()) addrs.push_back(addr);
    }
  }
  co_return addrs;  // empty: the name did not resolve
}

}  // namespace

asio::awaitable<Result<Connection>> Connection::connect(executor_type ex, std::string conninfo,
                                                        Deadline deadline,
                                                        std::string session_options) {
  auto plan = detail::plan_connect(conninfo, session_options);
  if (!plan) co_return plan.error();
  try {
    std::string unresolved;
    for (auto& host : plan->hosts) {
      if (!host.needs_resolving) continue;
      auto outcome = co_await resolve(ex, host.host, deadline);
      if (const Ready* why = std::get_if<Ready>(&outcome)) {
        co_return make_error(*why == Ready::timeout ? Errc::timeout : Errc::cancelled,
                             "resolving " + host.host);
      }
      host.addrs = std::move(std::get<0>(outcome));
      if (host.addrs.empty()) unresolved += (unresolved.empty() ? "" : ", ") + host.host;
    }
    auto params = detail::connect_params(*plan);
    if (!params) {
      auto err = params.error();
      if (!unresolved.empty()) err.diag.client_message = "could not resolve host " + unresolved;
      co_return err;
    }

    auto impl = std::make_unique<Impl>(ex);
    if (auto err = co_await impl->connect(*params, deadline)) co_return std::move(*err);
    co_return Connection(std::move(impl));
  } catch (const boost::system::system_error&) {
    co_return make_error(Errc::cancelled);
  }
}

Connection::Connection(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
Connection::Connection(Connection&&) noexcept = default;
Connection& Connection::operator=(Connection&&) noexcept = default;
Connection::~Connection() = default;

namespace {

constexpr std::size_t max_params = std::numeric_limits<std::uint16_t>::max();

// libpq wants NUL-terminated text; views need not be.
struct ParamStorage {
  explicit ParamStorage(std::span<const Param> params) {
    text.reserve(params.size());
    for (const auto& p : params) text.emplace_back(p ? std::string(*p) : std::string());
    for (std::size_t i = 0; i < params.size(); ++i) {
      pointers.push_back(params[i] ? text[i].c_str() : nullptr);
    }
  }
  [[nodiscard]] int count() const { return static_cast<int>(pointers.size()); }
  std::vector<std::string> text;
  std::vector<const char*> pointers;
};

}  // namespace

asio::awaitable<Result<QueryResult>> Connection::query(std::string_view sql,
                                                       std::span<const Param> params,
                                                       Deadline deadline) {
  Impl* impl = impl_.get();  // stable even if *this is moved while we are suspended
  if (params.size() > max_params) co_return make_error(Errc::invalid_argument, "too many params");
  if (auto err = impl->begin()) co_return std::move(*err);
  const std::string text(sql);
  const ParamStorage storage(params);
  const int sent = PQsendQueryParams(impl->conn, text.c_str(), storage.count(), nullptr,
                                     storage.pointers.data(), nullptr, nullptr, 0);
  co_return co_await impl->complete(sent, deadline);
}

asio::awaitable<Result<void>> Connection::prepare(std::string_view name, std::string_view sql,
                                                  Deadline deadline) {
  Impl* impl = impl_.get();
  if (auto err = impl->begin()) co_return std::move(*err);
  const std::string name_text(name);
  const std::string sql_text(sql);
  const int sent = PQsendPrepare(impl->conn, name_text.c_str(), sql_text.c_str(), 0, nullptr);
  auto res = co_await impl->complete(sent, deadline);
  if (!res) co_return res.error();
  co_return boost::system::in_place_value;
}

asio::awaitable<Result<void>> Connection::execute_script(std::string_view sql, Deadline deadline) {
  Impl* impl = impl_.get();
  if (auto err = impl->begin()) co_return std::move(*err);
  const std::string text(sql);
  const int sent = PQsendQuery(impl->conn, text.c_str());
  auto res = co_await impl->complete(sent, deadline);
  if (!res) co_return res.error();
  co_return boost::system::in_place_value;
}

asio::awaitable<Result<QueryResult>> Connection::execute_prepared(std::string_view name,
                                                                  std::span<const Param> params,
                                                                  Deadline deadline) {
  Impl* impl = impl_.get();
  if (params.size() > max_params) co_return make_error(Errc::invalid_argument, "too many params");
  if (auto err = impl->begin()) co_return std::move(*err);
  const std::string name_text(name);
  const ParamStorage storage(params);
  const int sent = PQsendQueryPrepared(impl->conn, name_text.c_str(), storage.count(),
                                       storage.pointers.data(), nullptr, nullptr, 0);
  co_return co_await impl->complete(sent, deadline);
}

asio::awaitable<Result<std::vector<Result<QueryResult>>>> Connection::execute_pipeline(
    std::span<const PipelineCall> calls, Deadline deadline) {
  Impl* impl = impl_.get();
  for (const auto& call : calls) {
    if (call.params.size() > max_params) {
      co_return make_error(Errc::invalid_argument, "too many params");
    }
  }
  if (auto err = impl->begin()) co_return std::move(*err);
  if (calls.empty()) {
    impl->busy = false;
    co_return std::vector<Result<QueryResult>>{};
  }
  if (PQenterPipelineMode(impl->conn) != 1) {
    impl->busy = false;
    co_return impl->lost();
  }
  std::string text;  // the name, or the unnamed statement's SQL: libpq wants NUL-terminated text
  for (const auto& call : calls) {
    const ParamStorage storage(call.params);
    int sent = 0;
    if (!call.name.empty()) {
      text.assign(call.name);
      sent = PQsendQueryPrepared(impl->conn, text.c_str(), storage.count(),
                                 storage.pointers.data(), nullptr, nullptr, 0);
    } else {
      text.assign(call.sql);
      sent = PQsendQueryParams(impl->conn, text.c_str(), storage.count(), nullptr,
                               storage.pointers.data(), nullptr, nullptr, 0);
    }
    if (sent != 1) {
      impl->busy = false;
      co_return impl->lost();
    }
  }
  // PQpipelineSync also tries to flush; complete_pipeline finishes what it could not send.
  if (PQpipelineSync(impl->conn) != 1) {
    impl->busy = false;
    co_return impl->lost();
  }
  co_return co_await impl->complete_pipeline(calls.size(), deadline);
}

void Connection::discard_notifications() noexcept {
  if (!impl_ || impl_->conn == nullptr) return;
  while (PGnotify* n = PQnotifies(impl_->conn)) PQfreemem(n);
}

std::vector<Notification> Connection::take_notifications() {
  std::vector<Notification> out;
  if (impl_ && impl_->conn != nullptr) impl_->collect_notifications(out);
  return out;
}

asio::awaitable<Result<std::vector<Notification>>> Connection::wait_notifications(
    Deadline deadline) {
  Impl* impl = impl_.get();
  if (auto err = impl->begin()) co_return std::move(*err);
  struct Unbusy {
    bool& flag;
    ~Unbusy() { flag = false; }
  } unbusy{impl->busy};
  std::vector<Notification> out;
  try {
    for (;;) {
      // Whatever is already in libpq's buffer first: a notification may have come with the last
      // reply, and the socket would then never turn readable for it.
      if (PQconsumeInput(impl->conn) == 0) co_return impl->lost();
      impl->collect_notifications(out);
      if (!out.empty()) co_return out;
      // Idle: nothing is owed to us, so running out of time or being cancelled leaves the
      // session as good as it was. Only a failed wait or EOF ends it.
      const Ready ready = co_await impl->wait(true, false, deadline);
      if (ready == Ready::timeout) co_return out;
      if (ready == Ready::cancelled) co_return make_error(Errc::cancelled);
      if (ready == Ready::failed) co_return impl->lost("waiting on the socket failed");
    }
  } catch (const boost::system::system_error&) {
    co_return make_error(Errc::cancelled);
  }
}

bool Connection::is_broken() const noexcept {
  return !impl_ || impl_->broken;
}

void Connection::mark_broken() noexcept {
  if (impl_) impl_->broken = true;
}

bool Connection::in_transaction() const noexcept {
  return impl_ && impl_->conn != nullptr && PQtransactionStatus(impl_->conn) != PQTRANS_IDLE;
}

bool Connection::check_alive() noexcept {
  if (is_broken() || impl_->conn == nullptr) return false;
  PGconn* conn = impl_->conn;
  // An idle session has nothing to read unless the server is ending it: first a FATAL message,
  // which PQconsumeInput reads as data, then EOF, which only the next read sees. So read and
  // parse until the socket is quiet; a few rounds cover FATAL + EOF (and rare ParameterStatus).
  for (int round = 0; round < 4; ++round) {
    if (!impl_->input_waiting()) return true;
    if (PQconsumeInput(conn) == 0 || PQstatus(conn) == CONNECTION_BAD) break;
    (void)PQisBusy(conn);  // parses what arrived (a FATAL while idle becomes a notice)
  }
  impl_->close();
  return false;
}

void Connection::close() noexcept {
  if (impl_) impl_->close();
}

Connection::executor_type Connection::get_executor() const noexcept {
  return impl_->socket.get_executor();
}

pg_conn* Connection::native_handle() const noexcept {
  return impl_ ? impl_->conn : nullptr;
}

}  // namespace shardurl::pgasync
