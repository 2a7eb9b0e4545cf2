// The request target of an HTTP request, decoded: path segments and query parameters.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace shardurl {

struct RequestTarget {
  /// Percent-decoded path segments: "/urls/ab%2Fcd" is {"urls", "ab/cd"}, so an id may hold '/'.
  /// "/" is {} and a trailing slash is ignored ("/urls/" is {"urls"}).
  std::vector<std::string> segments;
  /// Percent-decoded query parameters in order, '+' read as a space (as FastAPI reads them).
  std::vector<std::pair<std::string, std::string>> query;

  /// The first value of query parameter `name`, if present.
  [[nodiscard]] const std::string* param(std::string_view name) const noexcept;
};

/// Decodes an origin-form target ("/path?query"). Returns the reason as a string when the target
/// cannot be served: not starting with '/', a bad percent-escape, bytes that are not UTF-8 once
/// decoded (PostgreSQL's text columns hold only UTF-8), or a control character in the path or in
/// a parameter name. Parameter values may hold control characters; their routes judge them.
std::variant<RequestTarget, std::string> parse_target(std::string_view target);

/// True when `s` is well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF).
bool is_utf8(std::string_view s) noexcept;

}  // namespace shardurl
