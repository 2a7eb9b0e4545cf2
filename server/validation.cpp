#include "validation.hpp"

#include <boost/url/parse.hpp>
#include <boost/url/scheme.hpp>

#include <algorithm>
#include <limits>
#include <array>
#include <charconv>
#include <cstdint>

#include "request_target.hpp"

namespace shardurl {
namespace {

constexpr std::size_t max_alias_length = 64;
constexpr std::size_t max_id_length = 64;

constexpr std::array<std::string_view, 6> reserved{"urls",    "healthz",      "readyz",
                                                   "metrics", "openapi.json", "docs"};

constexpr std::string_view hex_digits = "0123456789ABCDEF";

void append_escape(std::string& out, unsigned char byte) {
  out += '%';
  out += hex_digits[byte >> 4];
  out += hex_digits[byte & 0x0f];
}

bool is_hex(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// Code points nobody sees in a link: C1 controls, Unicode White_Space, zero-width and bidi
// formatting characters. ASCII is handled separately.
bool is_invisible(std::uint32_t cp) noexcept {
  return (cp >= 0x80 && cp <= 0xa0) || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200f) ||
         (cp >= 0x2028 && cp <= 0x202f) || (cp >= 0x205f && cp <= 0x2064) ||
         (cp >= 0x2066 && cp <= 0x206f) || cp == 0x3000 || cp == 0xfeff;
}

// True when well-formed UTF-8 `s` holds a control, whitespace or invisible character.
bool has_space_or_control(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const unsigned char c = *p;
    if (c < 0x80) {
      if (c <= 0x20 || c == 0x7f) return true;
      ++p;
      continue;
    }
    const int extra = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : 1;
    std::uint32_t cp = c & (0x3FU >> extra);
    for (int i = 1; i <= extra; ++i) cp = cp << 6 | (p[i] & 0x3FU);
    if (is_invisible(cp)) return true;
    p += extra + 1;
  }
  return false;
}

// ASCII a browser percent-encodes before sending; with non-ASCII bytes, encoded before parsing.
bool browser_encodes(unsigned char c) noexcept {
  return c >= 0x80 || c == '"' || c == '<' || c == '>' || c == '^' || c == '`' || c == '{' ||
         c == '|' || c == '}';
}

// Bytes a browser refuses in a host once percent-decoded (WHATWG "forbidden domain code point").
bool forbidden_in_host(unsigned char c) noexcept {
  return c <= 0x20 || c == 0x7f ||
         std::string_view("#%/:<>?@[\\]^|").find(static_cast<char>(c)) != std::string_view::npos;
}

}  // namespace

std::optional<std::string> url_problem(std::string_view url, std::size_t max_length) {
  namespace urls = boost::urls;
  if (url.empty()) return "the URL is empty";
  if (url.size() > max_length)
    return "the URL is longer than " + std::to_string(max_length) + " bytes";
  if (!is_utf8(url)) return "the URL is not valid UTF-8";
  if (has_space_or_control(url)) return "the URL contains whitespace or control characters";
  if (url.find('\\') != std::string_view::npos) return "the URL contains a backslash";

  // '[' and ']' delimit an IP literal in the authority; in a path or query ("?a[]=1") browsers
  // send them raw, RFC 3986 does not allow them there.
  std::size_t authority_end = 0;
  if (const auto slashes = url.find("//");
      slashes != std::string_view::npos && slashes == url.find_first_of("/?#")) {
    authority_end = std::min(url.find_first_of("/?#", slashes + 2), url.size());
  }
  const auto needs_encoding = [authority_end](std::size_t i, char c) {
    return browser_encodes(static_cast<unsigned char>(c)) ||
           (i >= authority_end && (c == '[' || c == ']'));
  };
  std::string encoded;
  encoded.reserve(url.size());
  for (std::size_t i = 0; i < url.size(); ++i) {
    if (needs_encoding(i, url[i])) {
      append_escape(encoded, static_cast<unsigned char>(url[i]));
    } else {
      encoded += url[i];
    }
  }

  const auto parsed = urls::parse_uri(encoded);
  if (!parsed) {
    if (urls::parse_relative_ref(encoded)) return "the URL is not an absolute URL";
    return "the URL is not a valid URL";
  }
  const urls::url_view& u = *parsed;
  // Boost.URL 1.81 accepts "http://a.com:8x/" as port "8", path "x/" (boostorg/url#636): after
  // an authority the path must be empty or start with '/'.
  if (u.has_authority() && !u.encoded_path().empty() && u.encoded_path().front() != '/')
    return "the URL is not a valid URL";
  if (u.scheme_id() != urls::scheme::http && u.scheme_id() != urls::scheme::https)
    return "only http and https URLs are accepted";
  if (!u.has_authority() || u.encoded_host().empty()) return "the URL has no host";
  if (u.has_userinfo()) return "the URL must not contain a user name or password";
  if (u.host_type() == urls::host_type::name) {
    const std::string host = u.encoded_host().decode();
    if (host.empty() || !is_utf8(host) || std::any_of(host.begin(), host.end(), [](char c) {
          return forbidden_in_host(static_cast<unsigned char>(c));
        }))
      return "the URL's host is not valid";
  }
  if (u.has_port() && !u.port().empty()) {
    const std::string_view port = u.port();
    unsigned number = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
    if (ec != std::errc{} || end != port.data() + port.size() || number > 65535)
      return "the URL's port is not valid";
  }
  return std::nullopt;
}

std::optional<std::string> alias_problem(std::string_view alias) {
  if (alias.empty() || alias.size() > max_alias_length)
    return "the alias must be 1 to 64 characters long";
  if (is_reserved(alias)) return "the alias '" + std::string(alias) + "' is reserved";
  const bool allowed = std::all_of(alias.begin(), alias.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
  if (!allowed) return "the alias may only contain the characters A-Z, a-z, 0-9, '_' and '-'";
  return std::nullopt;
}

std::span<const std::string_view> reserved_words() noexcept {
  return reserved;
}

bool is_reserved(std::string_view word) noexcept {
  // Not boost::urls::grammar::ci_is_equal: in 1.81 it reads one byte past both strings when they
  // differ only in case (found by test/fuzz, input "3HEALTHZ").
  const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
  return std::any_of(reserved.begin(), reserved.end(), [&](std::string_view r) {
    return std::equal(word.begin(), word.end(), r.begin(), r.end(),
                      [&](char a, char b) { return lower(a) == lower(b); });
  });
}

namespace {

// RFC 3986's unreserved, gen-delims and sub-delims: the bytes a Location value carries as they are
// (with '%' only as part of a valid escape). One table lookup a byte: redirects call this on
// every answer. validation_test checks it against Boost.URL's character sets.
constexpr std::array<bool, 256> uri_chars = [] {
  std::array<bool, 256> t{};
  for (int c = 'a'; c <= 'z'; ++c) t[static_cast<std::size_t>(c)] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[static_cast<std::size_t>(c)] = true;
  for (int c = '0'; c <= '9'; ++c) t[static_cast<std::size_t>(c)] = true;
  for (const char c : std::string_view("-._~:/?#[]@!$&'()*+,;=")) {
    t[static_cast<unsigned char>(c)] = true;
  }
  return t;
}();

bool needs_escape(std::string_view s, std::size_t i) noexcept {
  const char c = s[i];
  if (c == '%') return !(i + 2 < s.size() && is_hex(s[i + 1]) && is_hex(s[i + 2]));
  return !uri_chars[static_cast<unsigned char>(c)];
}

}  // namespace

std::string location_value(std::string_view stored_url) {
  // The usual case, a URL with nothing to encode, is one table lookup a byte and one copy.
  std::size_t i = 0;
  for (;;) {
    while (i < stored_url.size() && uri_chars[static_cast<unsigned char>(stored_url[i])]) ++i;
    if (i == stored_url.size()) return std::string(stored_url);
    if (needs_escape(stored_url, i)) break;
    i += 3;  // a valid escape
  }
  std::string out;
  out.reserve(stored_url.size() + 16);
  out.append(stored_url.substr(0, i));
  for (; i < stored_url.size(); ++i) {
    if (needs_escape(stored_url, i)) {
      append_escape(out, static_cast<unsigned char>(stored_url[i]));
    } else {
      out += stored_url[i];
    }
  }
  return out;
}

bool may_redirect_to(std::string_view stored_url) {
  return !url_problem(stored_url, std::numeric_limits<std::size_t>::max());
}

bool is_plausible_id(std::string_view id) noexcept {
  return !id.empty() && id.size() <= max_id_length;
}

}  // namespace shardurl
