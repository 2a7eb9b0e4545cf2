// What a client may store and what a redirect may send: pure checks on URLs, aliases and short ids.
// The rules, and why each was chosen, are documented next to each function: the router's 422
// details quote these reasons word for word.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace shardurl {

/// Why `url` cannot be stored, or std::nullopt when it can. The reason is a short English sentence
/// for {"detail": reason} in a 422. Checked in this order, the first failure wins:
///
/// 1. "the URL is empty"; "the URL is longer than N bytes" (N = max_length, counted in bytes).
/// 2. "the URL is not valid UTF-8" (PostgreSQL's text columns hold only UTF-8).
/// 3. "the URL contains whitespace or control characters": C0 controls, space, DEL, and the
///    invisible non-ASCII code points a reader cannot see in a link: C1 controls (U+0080-U+009F),
///    Unicode White_Space (U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000)
///    and the zero-width and bidirectional format characters (U+200B-U+200F, U+202A-U+202E,
///    U+2060-U+2064, U+2066-U+206F, U+FEFF), which can disguise where a link goes.
/// 4. "the URL contains a backslash": browsers read '\' as '/' in http(s) URLs and RFC 3986 does
///    not, so the two would disagree about the host ("https://evil.com\.good.com/").
/// 5. The URL must parse with Boost.URL as an RFC 3986 absolute URI once the characters a browser
///    percent-encodes for you are encoded: every non-ASCII byte (so IRIs such as
///    "https://de.wikipedia.org/wiki/Straße" are accepted, as browsers and the tutorial accept
///    them) and " < > ^ ` { | }. Relative references ("/x", "example.com", "//x.com", "") give
///    "the URL is not an absolute URL"; anything else that does not parse (a lone '%',
///    "http://x:y") gives "the URL is not a valid URL".
/// 6. "only http and https URLs are accepted": the scheme, compared case-insensitively.
/// 7. "the URL has no host": an authority with a non-empty host is required ("https:///x",
///    "http://", "https:x.com" are refused). IPv4, IPv6 ([::1]) and registered names are accepted.
/// 8. "the URL must not contain a user name or password": userinfo is refused because
///    "https://www.bank.com@evil.com/" is a classic disguise and a shortener would publish secrets.
/// 9. "the URL's host is not valid": a registered name that, percent-decoded, holds a byte browsers
///    forbid in a host (controls, space, # % / : < > ? @ [ \ ] ^ |, DEL) or is not UTF-8.
/// 10. "the URL's port is not valid": a port above 65535. An empty port ("http://x.com:/") is
///    allowed, as RFC 3986 allows it.
///
/// An accepted URL is stored exactly as given (not normalised); location_value() makes it safe
/// for a Location header.
std::optional<std::string> url_problem(std::string_view url, std::size_t max_length = 2048);

/// Why `alias` cannot be used as a short id, or std::nullopt when it can:
/// "the alias must be 1 to 64 characters long", then "the alias 'W' is reserved" (see
/// is_reserved), then "the alias may only contain the characters A-Z, a-z, 0-9, '_' and '-'".
std::optional<std::string> alias_problem(std::string_view alias);

/// Words an alias may not be because the server routes them as the first path segment, so a
/// redirect GET /{id} would collide: urls, healthz, readyz, metrics, openapi.json, docs.
/// The router's tests check that every routed first segment is in this list.
std::span<const std::string_view> reserved_words() noexcept;

/// True when `word` equals a reserved word ignoring ASCII case. Ids are case-sensitive, but
/// "Healthz" next to "healthz" would only confuse people, so case variants are refused as well.
bool is_reserved(std::string_view word) noexcept;

/// The value for a Location header that redirects to a stored URL. Rows the tutorial stored were
/// never validated and may hold CR, LF, other controls, spaces or non-ASCII bytes: every byte
/// that is not an RFC 3986 unreserved or reserved character, and every '%' that does not start a
/// valid %XX escape, is percent-encoded (upper-case hex). Existing %XX escapes are kept as they
/// are, so a URL accepted by url_problem without non-ASCII or " < > ^ ` { | } comes back byte for
/// byte. The result holds only visible ASCII (0x21-0x7e) and can never split a response.
std::string location_value(std::string_view stored_url);

/// True when a stored URL may be sent as a redirect's Location: it passes url_problem (whatever its
/// length). Rows the tutorial stored were never validated: an empty URL, a relative reference, a
/// javascript:, data: or mailto: URL must never reach a browser as a redirect.
bool may_redirect_to(std::string_view stored_url);

/// True when `id` may be looked up at all: 1 to 64 bytes (longer ids never exist).
bool is_plausible_id(std::string_view id) noexcept;

}  // namespace shardurl
