// How pgasync reports failure: an error code of its own category, the diagnostics that explain it,
// and the one rule (is_fatal) that decides whether the connection that produced it may be reused.
//
// Expected outcomes of talking to a database (a unique violation, a timeout, a full pool) are
// values in a Result, never exceptions: callers branch on them in the normal flow.
#pragma once

#include <iosfwd>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>

namespace shardurl::pgasync {

enum class Errc {
  connection_failed = 1,  // could not establish a session (refused, bad address, auth, DNS)
  connection_lost,        // an established session broke (EOF, reset, server terminated it)
  server_error,           // the server answered with an ErrorResponse; see Diagnostics::sqlstate
  timeout,                // the operation's deadline passed
  cancelled,              // the caller cancelled the operation (Asio cancellation)
  pool_exhausted,         // every connection is leased and the wait queue is full
  pool_closed,            // the pool was closed before or while waiting
  busy,                   // another operation is still running on this connection
  invalid_argument,       // rejected before anything was sent (e.g. more than 65535 params)
  protocol_error,         // a reply pgasync does not handle (e.g. COPY); session state unknown
  pipeline_aborted,       // another statement in the same pipeline failed: this one had no effect
};

const std::error_category& pgasync_category() noexcept;

inline std::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), pgasync_category()};
}

/// The SQLSTATEs pgasync itself acts on. Every other code is only carried in Diagnostics.
namespace sqlstate {
inline constexpr std::string_view unique_violation = "23505";
inline constexpr std::string_view query_canceled = "57014";  // statement_timeout or a cancel
inline constexpr std::string_view read_only_sql_transaction = "25006";  // a standby, or read-only
inline constexpr std::string_view too_many_connections = "53300";
inline constexpr std::string_view invalid_sql_statement_name = "26000";  // no such prepared statement
inline constexpr std::string_view duplicate_prepared_statement = "42P05";
}  // namespace sqlstate

/// What went wrong, in words. The server's text and libpq's/pgasync's text are kept apart so a
/// caller can show a constraint violation's detail without leaking client internals, and log both.
struct Diagnostics {
  std::string sqlstate;        // five characters, empty when the server did not send one
  std::string server_message;  // the server's primary message
  std::string server_detail;   // the server's DETAIL line, often empty
  std::string client_message;  // libpq's or pgasync's own explanation, often empty
};

struct Error {
  std::error_code code;
  Diagnostics diag;

  /// One line for logs: the code's message, SQLSTATE and the non-empty messages.
  [[nodiscard]] std::string describe() const;
};

/// Writes describe(); also lets test frameworks print a Result.
std::ostream& operator<<(std::ostream& os, const Error& err);

/// The rule for dropping a connection. True when the session that produced `err` cannot be
/// trusted for another statement:
///   - connection_failed, connection_lost, protocol_error;
///   - timeout and cancelled during an operation on the connection (the reply may still be on its
///     way; pgasync never sends a cancel request, it closes the socket instead);
///   - server_error with SQLSTATE class 08 (connection exception), 57P01..57P03
///     (admin_shutdown, crash_shutdown, cannot_connect_now) or 25006 (read_only_sql_transaction:
///     the session reached a standby, or a server turned read-only; a new session may find the
///     primary, e.g. with libpq's target_session_attrs=read-write).
/// Any other server_error (23505 unique_violation, 42601 syntax_error, 57014 query_canceled, ...)
/// leaves the session healthy. Pool-level errors (pool_exhausted, pool_closed) and busy /
/// invalid_argument never touched a session and are not fatal; neither is pipeline_aborted (the
/// statement was skipped or rolled back because another one in its pipeline failed).
/// Connection marks itself broken by this rule; ShardPool then discards it on release.
[[nodiscard]] bool is_fatal(const Error& err) noexcept;

/// The rule for blaming the server rather than the statement. True when `err` says that the server
/// (or the way to it) cannot take statements now, so that every other statement for it would fail
/// too: everything is_fatal() holds for, plus server errors of class 53 (insufficient resources:
/// too many connections, disk full, out of memory), 57P04 (database dropped), 58 (system error:
/// I/O), 3D000 (no such database) and class 28 (authentication). A statement's own failure
/// (a constraint, a syntax error, 26000 a missing prepared statement, pipeline_aborted because
/// another statement failed, a statement_timeout) is false: it concerns that statement alone.
/// Pool-level errors (pool_exhausted, pool_closed) are false as well; cancelled is false (the
/// caller gave up, the server did nothing wrong).
[[nodiscard]] bool is_server_unavailable(const Error& err) noexcept;

/// True for a server_error carrying `state` (e.g. sqlstate::unique_violation).
[[nodiscard]] bool has_sqlstate(const Error& err, std::string_view state) noexcept;

/// Lets Result<T>::value() throw: boost::system::system_error carrying code and describe().
[[noreturn]] void throw_exception_from_error(const Error& err, const boost::source_location& loc);

/// The return type of every pgasync operation.
template <class T>
using Result = boost::system::result<T, Error>;

}  // namespace shardurl::pgasync

template <>
struct std::is_error_code_enum<shardurl::pgasync::Errc> : std::true_type {};
