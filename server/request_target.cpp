#include "request_target.hpp"

#include <algorithm>
#include <array>

namespace shardurl {
namespace {

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes one component. In a path, a '%' that does not start a %XX escape makes it malformed
// (nullopt). In a query, '+' is a space and such a '%' is kept as it is, as Python's parse_qsl
// (and so FastAPI) reads a query: "full_url=100%" is "100%".
std::optional<std::string> decode(std::string_view raw, bool in_query) {
  // Most components have nothing to decode: a copy, no byte-by-byte pass (every request has one).
  // Two memchr scans, not find_first_of, which calls memchr once per byte.
  if (raw.find('%') == std::string_view::npos &&
      (!in_query || raw.find('+') == std::string_view::npos)) {
    return std::string(raw);
  }
  std::string out;
  out.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const char c = raw[i];
    if (c == '+' && in_query) {
      out += ' ';
    } else if (c != '%') {
      out += c;
    } else if (i + 2 < raw.size() && hex_value(raw[i + 1]) >= 0 && hex_value(raw[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(raw[i + 1]) * 16 + hex_value(raw[i + 2]));
      i += 2;
    } else if (in_query) {
      out += '%';
    } else {
      return std::nullopt;
    }
  }
  return out;
}

bool has_control_byte(std::string_view s) noexcept {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

// A decoded component is usable when it is UTF-8 text without control characters.
std::optional<std::string> check(std::string decoded, std::string_view what, std::string& error) {
  if (has_control_byte(decoded)) {
    error = std::string(what) + " contains a control character";
    return std::nullopt;
  }
  if (!is_utf8(decoded)) {
    error = std::string(what) + " is not valid UTF-8";
    return std::nullopt;
  }
  return decoded;
}

// RFC 3986's unreserved and sub-delims characters: what a registered name holds besides %XX.
constexpr std::array<bool, 256> reg_name_bytes = [] {
  std::array<bool, 256> t{};
  for (int c = 'a'; c <= 'z'; ++c) t[static_cast<std::size_t>(c)] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[static_cast<std::size_t>(c)] = true;
  for (int c = '0'; c <= '9'; ++c) t[static_cast<std::size_t>(c)] = true;
  for (const char c : std::string_view("-._~!$&'()*+,;=")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

// The length of the longest prefix of `s` that is unreserved and sub-delims characters and %XX
// escapes (and ':' when `colons`): all of a registered name, up to its port's ':'.
std::size_t reg_name_length(std::string_view s, bool colons) noexcept {
  std::size_t i = 0;
  for (;;) {
    while (i < s.size() && reg_name_bytes[static_cast<unsigned char>(s[i])]) ++i;
    if (i == s.size()) return i;
    if (colons && s[i] == ':') {
      ++i;
    } else if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 &&
               hex_value(s[i + 2]) >= 0) {
      i += 3;
    } else {
      return i;
    }
  }
}

bool iequals_ascii(std::string_view a, std::string_view lower) noexcept {
  return a.size() == lower.size() &&
         std::equal(a.begin(), a.end(), lower.begin(), [](char x, char y) {
           return (x >= 'A' && x <= 'Z' ? static_cast<char>(x - 'A' + 'a') : x) == y;
         });
}

// An absolute-form target's origin-form part ("/path?query", "?query" or "" for "/"), or why
// the target cannot be served. Only called for a target that does not start with '/'.
std::variant<std::string_view, std::string> origin_of(std::string_view target) {
  // RFC 3986: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
  const auto is_scheme = [](std::string_view s) {
    const auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
    return !s.empty() && alpha(s.front()) && std::all_of(s.begin(), s.end(), [&](char c) {
      return alpha(c) || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
    });
  };
  const auto separator = target.find("://");
  if (separator == std::string_view::npos || !is_scheme(target.substr(0, separator))) {
    if (target == "*") {
      return std::string("the asterisk-form target '*' is only allowed with OPTIONS");
    }
    if (target.find(':') != std::string_view::npos && is_host_and_port(target)) {
      return std::string("an authority-form target (host:port) is only allowed with CONNECT");
    }
    return std::string(
        "the request target must start with '/' or be an absolute http or https URI");
  }
  const std::string_view scheme = target.substr(0, separator);
  if (!iequals_ascii(scheme, "http") && !iequals_ascii(scheme, "https")) {
    return std::string("an absolute-form target must use the http or https scheme");
  }
  const std::string_view rest = target.substr(separator + 3);
  const auto authority_end = std::min(rest.find_first_of("/?"), rest.size());
  const std::string_view authority = rest.substr(0, authority_end);
  if (authority.find('@') != std::string_view::npos) {
    return std::string("an absolute-form target must not hold user information");
  }
  if (authority.empty() || authority.front() == ':') {
    return std::string("an absolute-form target must name a host");
  }
  if (!is_host_and_port(authority)) {
    return std::string("the host or port of the absolute-form target is not valid");
  }
  return rest.substr(authority_end);
}

}  // namespace

const std::string* RequestTarget::param(std::string_view name) const noexcept {
  const std::string* last = nullptr;
  for (const auto& [key, value] : query) {
    if (key == name) last = &value;
  }
  return last;
}

bool is_host_and_port(std::string_view s) noexcept {
  // A Host header is checked on every request. The common one ("localhost:5001", "127.0.0.1")
  // takes one pass of table lookups; '%' escapes and '[' IP literals take the general path.
  std::size_t end = 0;
  while (end < s.size() && reg_name_bytes[static_cast<unsigned char>(s[end])]) ++end;
  if (end < s.size() && (s[end] == '%' || s[end] == '[')) {
    if (s.front() == '[') {
      end = 1 + reg_name_length(s.substr(1), true);
      if (end == 1 || end == s.size() || s[end] != ']') return false;
      ++end;
    } else {
      end = reg_name_length(s, false);
    }
  }
  if (end == s.size()) return true;
  if (s[end] != ':') return false;
  for (std::size_t i = end + 1; i < s.size(); ++i) {
    if (static_cast<unsigned char>(s[i] - '0') > 9) return false;
  }
  return true;
}

bool is_utf8(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const unsigned char c = *p;
    int extra = 0;
    unsigned min = 0;
    unsigned cp = 0;
    if (c < 0x80) {
      ++p;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      extra = 1, min = 0x80, cp = c & 0x1fu;
    } else if ((c & 0xf0) == 0xe0) {
      extra = 2, min = 0x800, cp = c & 0x0fu;
    } else if ((c & 0xf8) == 0xf0) {
      extra = 3, min = 0x10000, cp = c & 0x07u;
    } else {
      return false;
    }
    if (end - p <= extra) return false;
    for (int i = 1; i <= extra; ++i) {
      if ((p[i] & 0xc0) != 0x80) return false;
      cp = cp << 6 | (p[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    p += extra + 1;
  }
  return true;
}

std::variant<RequestTarget, std::string> parse_target(std::string_view target) {
  if (target.empty() || target.front() != '/') {
    // Not origin-form: an absolute-form target is served by its path and query; "" is "/".
    auto origin = origin_of(target);
    if (auto* why = std::get_if<std::string>(&origin)) return std::move(*why);
    target = std::get<std::string_view>(origin);
  }
  const auto question = target.find('?');
  const std::string_view path = target.substr(0, question);
  const std::string_view query =
      question == std::string_view::npos ? std::string_view{} : target.substr(question + 1);

  RequestTarget out;
  out.segments.reserve(4);  // every route has at most 2: one allocation, not one per segment
  std::string error;
  std::size_t start = 1;
  while (start <= path.size()) {
    const auto slash = std::min(path.find('/', start), path.size());
    const std::string_view raw = path.substr(start, slash - start);
    start = slash + 1;
    if (raw.empty() && start > path.size()) break;  // the trailing slash, or "/" itself
    auto decoded = decode(raw, false);
    if (!decoded) return std::string("the path has a malformed percent-escape");
    auto segment = check(std::move(*decoded), "the path", error);
    if (!segment) return error;
    out.segments.push_back(std::move(*segment));
  }

  std::size_t begin = 0;
  while (begin < query.size()) {
    const auto amp = std::min(query.find('&', begin), query.size());
    const std::string_view pair = query.substr(begin, amp - begin);
    begin = amp + 1;
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    auto key = decode(pair.substr(0, eq), true);
    auto value =
        decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1), true);
    auto checked_key = check(std::move(*key), "a query parameter name", error);
    if (!checked_key) return error;
    // Values may hold control characters: the route that uses one decides (a URL with them is a
    // 422 from URL validation, which can say why).
    if (!is_utf8(*value)) return "query parameter '" + *checked_key + "' is not valid UTF-8";
    out.query.emplace_back(std::move(*checked_key), std::move(*value));
  }
  return out;
}

}  // namespace shardurl
