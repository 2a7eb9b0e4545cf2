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
  /// Percent-decoded query parameters in order, '+' read as a space and a '%' that does not start
  /// a %XX escape kept as it is (as FastAPI, through Starlette and Python's parse_qsl, reads them).
  std::vector<std::pair<std::string, std::string>> query;

  /// The last value of query parameter `name`, if present: a repeated parameter counts once, with
  /// its last value, as FastAPI reads a parameter that is not a list.
  [[nodiscard]] const std::string* param(std::string_view name) const noexcept;
};

/// Decodes an origin-form target ("/path?query"), or an absolute-form one
/// ("http://host:5001/path?query", RFC 9112 section 3.2.2), which is routed by its path and query
/// as if it were "/path?query" (its scheme is http or https, in any case; its host is not compared
/// with anything, as the Host header is not). Returns the reason as a string when the target
/// cannot be served:
///  - asterisk-form ("*") or authority-form ("host:443"), or anything else that neither starts
///    with '/' nor is an absolute http(s) URI;
///  - an absolute-form target with another scheme, no host, user information ("user@host",
///    RFC 9110 section 4.2.4), or a host or port that is not one (is_host_and_port);
///  - a bad percent-escape in the path, bytes that are not UTF-8 once decoded (PostgreSQL's text
///    columns hold only UTF-8), or a control character in the path or in a parameter name.
/// Parameter values may hold control characters; their routes judge them.
std::variant<RequestTarget, std::string> parse_target(std::string_view target);

/// True when `s` is RFC 3986's `uri-host [ ":" port ]`, the value of a Host header (RFC 9112
/// section 3.2) and the authority of an absolute-form target without user information: a
/// registered name or IPv4 address (unreserved and sub-delims characters and %XX escapes,
/// possibly empty) or a bracketed IP literal, then an optional ':' and digits. A cheap scan of the
/// characters the grammar allows; an IP literal's inside is not checked further.
bool is_host_and_port(std::string_view s) noexcept;

/// True when `s` is well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF).
bool is_utf8(std::string_view s) noexcept;

}  // namespace shardurl
