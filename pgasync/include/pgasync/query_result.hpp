// The rows and counts one statement returned, owning libpq's PGresult.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

struct pg_result;  // libpq's PGresult; kept opaque so this header does not pull in libpq-fe.h

namespace shardurl::pgasync {

/// A successful statement's result: rows and columns in text format.
///
/// Owns the PGresult and frees it on destruction; move-only. Every string_view it hands out
/// points into that PGresult and is valid until the QueryResult is destroyed or moved from.
/// Reading it needs no connection: it stays valid after the connection or its lease is gone.
/// Row and column indices are 0-based and must be in range (checked by assertion only).
class QueryResult {
 public:
  /// Takes ownership of `res`, which must be a PGRES_TUPLES_OK / PGRES_COMMAND_OK /
  /// PGRES_EMPTY_QUERY result (Connection only builds it from those).
  explicit QueryResult(pg_result* res) noexcept;

  [[nodiscard]] int rows() const noexcept;
  [[nodiscard]] int columns() const noexcept;
  [[nodiscard]] bool is_null(int row, int column) const noexcept;

  /// The value's text; empty for NULL (use is_null or get_optional to tell them apart).
  [[nodiscard]] std::string_view get(int row, int column) const noexcept;
  [[nodiscard]] std::optional<std::string_view> get_optional(int row, int column) const noexcept;

  /// Column index by name, or -1. Names are matched as libpq's PQfnumber does (case folded unless
  /// quoted).
  [[nodiscard]] int column_index(const char* name) const noexcept;

  /// Rows an INSERT/UPDATE/DELETE/SELECT affected or returned (the command tag's count); 0 when
  /// the command has none.
  [[nodiscard]] std::uint64_t affected_rows() const noexcept;

  /// The command tag, e.g. "INSERT 0 1".
  [[nodiscard]] std::string_view command_tag() const noexcept;

  /// The underlying PGresult, still owned by this object.
  [[nodiscard]] pg_result* native_handle() const noexcept { return res_.get(); }

 private:
  struct Clear {
    void operator()(pg_result* res) const noexcept;
  };
  std::unique_ptr<pg_result, Clear> res_;
};

}  // namespace shardurl::pgasync
