#include "pgasync/error.hpp"

#include <ostream>
#include <system_error>

#include <boost/system/system_error.hpp>

namespace shardurl::pgasync {
namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "pgasync"; }

  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::connection_failed: return "could not connect to the database";
      case Errc::connection_lost: return "the database connection was lost";
      case Errc::server_error: return "the database server reported an error";
      case Errc::timeout: return "the database operation timed out";
      case Errc::cancelled: return "the database operation was cancelled";
      case Errc::pool_exhausted:
        return "no database connection available and the wait queue is full";
      case Errc::pool_closed: return "the connection pool is closed";
      case Errc::busy: return "another operation is in progress on this connection";
      case Errc::invalid_argument: return "invalid argument for a database operation";
      case Errc::protocol_error: return "unexpected reply from the database server";
      case Errc::pipeline_aborted:
        return "not applied: another statement in the same pipeline failed";
    }
    return "unknown pgasync error";
  }
};

}  // namespace

const std::error_category& pgasync_category() noexcept {
  static const Category category;
  return category;
}

std::string Error::describe() const {
  std::string out = code.message();
  if (!diag.sqlstate.empty()) out += " [" + diag.sqlstate + "]";
  if (!diag.server_message.empty()) out += ": " + diag.server_message;
  if (!diag.server_detail.empty()) out += " (" + diag.server_detail + ")";
  if (!diag.client_message.empty()) out += "; " + diag.client_message;
  return out;
}

std::ostream& operator<<(std::ostream& os, const Error& err) {
  return os << err.describe();
}

bool is_fatal(const Error& err) noexcept {
  if (err.code.category() != pgasync_category()) return true;  // not ours: assume the worst
  switch (static_cast<Errc>(err.code.value())) {
    case Errc::connection_failed:
    case Errc::connection_lost:
    case Errc::timeout:
    case Errc::cancelled:
    case Errc::protocol_error: return true;
    case Errc::server_error: {
      const std::string_view state = err.diag.sqlstate;
      return state.starts_with("08") || state == "57P01" || state == "57P02" ||
             state == "57P03" || state == sqlstate::read_only_sql_transaction;
    }
    case Errc::pool_exhausted:
    case Errc::pool_closed:
    case Errc::busy:
    case Errc::invalid_argument:
    case Errc::pipeline_aborted: return false;
  }
  return true;
}

bool is_server_unavailable(const Error& err) noexcept {
  if (err.code == Errc::cancelled || err.code == Errc::pool_exhausted ||
      err.code == Errc::pool_closed) {
    return false;
  }
  if (err.code != Errc::server_error) return is_fatal(err);
  const std::string_view state = err.diag.sqlstate;
  return is_fatal(err) || state.starts_with("53") || state.starts_with("58") ||
         state.starts_with("28") || state == "57P04" || state == "3D000";
}

bool has_sqlstate(const Error& err, std::string_view state) noexcept {
  return err.code == Errc::server_error && err.diag.sqlstate == state;
}

void throw_exception_from_error(const Error& err, const boost::source_location& /*loc*/) {
  throw boost::system::system_error(boost::system::error_code(err.code), err.describe());
}

}  // namespace shardurl::pgasync
