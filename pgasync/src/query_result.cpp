#include "pgasync/query_result.hpp"

#include <libpq-fe.h>

#include <cassert>
#include <charconv>
#include <cstdlib>
#include <cstring>

namespace shardurl::pgasync {

void QueryResult::Clear::operator()(pg_result* res) const noexcept {
  PQclear(res);
}

QueryResult::QueryResult(pg_result* res) noexcept : res_(res) {}

int QueryResult::rows() const noexcept {
  return PQntuples(res_.get());
}

int QueryResult::columns() const noexcept {
  return PQnfields(res_.get());
}

bool QueryResult::is_null(int row, int column) const noexcept {
  assert(row >= 0 && row < rows() && column >= 0 && column < columns());
  return PQgetisnull(res_.get(), row, column) != 0;
}

std::string_view QueryResult::get(int row, int column) const noexcept {
  assert(row >= 0 && row < rows() && column >= 0 && column < columns());
  // PQgetlength, not strlen: text values may not contain NUL, but the length is free.
  return {PQgetvalue(res_.get(), row, column),
          static_cast<std::size_t>(PQgetlength(res_.get(), row, column))};
}

std::optional<std::string_view> QueryResult::get_optional(int row, int column) const noexcept {
  if (is_null(row, column)) return std::nullopt;
  return get(row, column);
}

int QueryResult::column_index(const char* name) const noexcept {
  return PQfnumber(res_.get(), name);
}

std::uint64_t QueryResult::affected_rows() const noexcept {
  const char* text = PQcmdTuples(res_.get());
  std::uint64_t n = 0;
  std::from_chars(text, text + std::strlen(text), n);  // "" (no count) leaves n at 0
  return n;
}

std::string_view QueryResult::command_tag() const noexcept {
  return PQcmdStatus(res_.get());
}

}  // namespace shardurl::pgasync
