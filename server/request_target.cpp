#include "request_target.hpp"

#include <boost/url/encoding_opts.hpp>
#include <boost/url/pct_string_view.hpp>

#include <algorithm>

namespace shardurl {
namespace {

// Decodes one component; nullopt when its escapes are malformed.
std::optional<std::string> decode(std::string_view raw, bool plus_is_space) {
  // Most components have nothing to decode: no Boost.URL pass for those (every request has one).
  if (raw.find('%') == std::string_view::npos &&
      (!plus_is_space || raw.find('+') == std::string_view::npos)) {
    return std::string(raw);
  }
  const auto pct = boost::urls::make_pct_string_view(raw);
  if (!pct) return std::nullopt;
  boost::urls::encoding_opts opts;
  opts.space_as_plus = plus_is_space;
  return pct->decode(opts);
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

}  // namespace

const std::string* RequestTarget::param(std::string_view name) const noexcept {
  for (const auto& [key, value] : query) {
    if (key == name) return &value;
  }
  return nullptr;
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
  if (target.empty() || target.front() != '/')
    return std::string("the request target must start with '/'");
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
    if (!key || !value) return std::string("the query has a malformed percent-escape");
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
