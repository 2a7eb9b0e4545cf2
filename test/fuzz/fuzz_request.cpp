// libFuzzer target: everything a client's bytes reach before a route runs. The first byte picks
// what to drive, so one corpus covers them all (see docs/fuzzing.md):
//   0 Beast's request parser, the whole input in one buffer, then the head's checks and the
//     request target
//   1 the same, fed in pieces of 1-16 bytes (the second byte) as a socket would deliver them
//   2 url_problem, and properties of the URLs it accepts
//   3 alias_problem, is_reserved, is_plausible_id
//   4 location_value: only visible ASCII, idempotent
//   5 parse_target on the raw bytes, then the checks a route applies to what it decoded
// Every property is checked with FUZZ_CHECK, which aborts, so a violation is a crash for
// libFuzzer and for fuzz_replay alike.
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "header_checks.hpp"
#include "request_target.hpp"
#include "validation.hpp"

namespace {
namespace http = boost::beast::http;

#define FUZZ_CHECK(cond)                                                                 \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (false)

constexpr std::size_t header_limit = 8 * 1024;
constexpr std::size_t body_limit = 64 * 1024;
constexpr int max_pipelined = 16;

bool visible_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x21 && c <= 0x7e; });
}

void check_location(std::string_view stored) {
  const std::string location = shardurl::location_value(stored);
  FUZZ_CHECK(visible_ascii(location));
  FUZZ_CHECK(shardurl::location_value(location) == location);
  FUZZ_CHECK(location.size() >= stored.size() && location.size() <= 3 * stored.size());
}

// A reason goes into a JSON body as is: a short line of printable ASCII.
bool printable_reason(const std::string& reason) {
  return !reason.empty() && reason.size() < 200 &&
         std::all_of(reason.begin(), reason.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

void check_url(std::string_view url) {
  const auto problem = shardurl::url_problem(url);
  if (problem) {
    FUZZ_CHECK(printable_reason(*problem));
    return;
  }
  FUZZ_CHECK(!url.empty() && url.size() <= 2048);
  FUZZ_CHECK(std::none_of(url.begin(), url.end(), [](char c) {
    return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == '\\';
  }));
  // What the redirect sends for an accepted URL is itself acceptable (any length).
  const std::string location = shardurl::location_value(url);
  FUZZ_CHECK(!shardurl::url_problem(location, location.size()));
}

void check_alias(std::string_view alias) {
  const auto problem = shardurl::alias_problem(alias);
  const bool ok = !problem;
  if (problem) FUZZ_CHECK(printable_reason(*problem));
  const bool plausible = shardurl::is_plausible_id(alias);
  FUZZ_CHECK(plausible == (!alias.empty() && alias.size() <= 64));
  if (ok) {
    FUZZ_CHECK(plausible && !shardurl::is_reserved(alias));
    FUZZ_CHECK(std::all_of(alias.begin(), alias.end(), [](char c) {
      return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '-';
    }));
    check_location(alias);
    FUZZ_CHECK(shardurl::location_value(alias) == alias);
  }
}

// What the routes do with a decoded target: full_url is validated, an id is looked up.
void check_target(std::string_view target) {
  const auto parsed = shardurl::parse_target(target);
  if (const auto* why = std::get_if<std::string>(&parsed)) {
    FUZZ_CHECK(!why->empty());
    return;
  }
  const auto& t = std::get<shardurl::RequestTarget>(parsed);
  // Anything but origin-form that is served is an absolute http(s) URI (RFC 9112 3.2.2).
  if (target.empty() || target.front() != '/') {
    std::string scheme(target.substr(0, target.find("://")));
    std::transform(scheme.begin(), scheme.end(), scheme.begin(), [](char c) {
      return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    });
    FUZZ_CHECK(target.find("://") != std::string_view::npos &&
               (scheme == "http" || scheme == "https"));
  }
  for (const auto& segment : t.segments) {
    FUZZ_CHECK(shardurl::is_utf8(segment));
    check_alias(segment);
  }
  for (const auto& [key, value] : t.query) FUZZ_CHECK(shardurl::is_utf8(key));
  if (const std::string* full_url = t.param("full_url")) {
    check_url(*full_url);
    check_location(*full_url);
  }
}

// What the session decides from the head before it reads a body (header_checks.hpp).
void check_head(const http::request_parser<http::string_body>& parser) {
  const auto& req = parser.get();
  const bool body_follows =
      parser.chunked() || (parser.content_length() && *parser.content_length() > 0);
  const shardurl::RequestHead head = shardurl::head_of(req);
  const auto problem = head.problem(parser.chunked(), body_follows);
  if (req.version() == 11 && req.count(http::field::host) == 0) {
    FUZZ_CHECK(problem && problem->status == 400);
  }
  if (!problem) {
    // What is read is framed by Content-Length or by chunked alone, in HTTP/1.1.
    if (req.count(http::field::transfer_encoding) > 0) {
      FUZZ_CHECK(parser.chunked() && req.version() == 11);
    }
    if (head.expects_continue(body_follows)) FUZZ_CHECK(req.version() == 11 && body_follows);
    return;
  }
  const unsigned s = problem->status;
  FUZZ_CHECK(s == 400 || s == 405 || s == 415 || s == 417 || s == 501);
  FUZZ_CHECK(printable_reason(problem->detail));
  FUZZ_CHECK(problem->header.empty() || problem->header.starts_with("Allow: ") ||
             problem->header.starts_with("Accept-Encoding: "));
  FUZZ_CHECK(std::all_of(problem->header.begin(), problem->header.end(),
                         [](char c) { return c >= 0x20 && c <= 0x7e; }));
}

void on_request(const http::request_parser<http::string_body>& parser) {
  FUZZ_CHECK(parser.get().body().size() <= body_limit);
  check_head(parser);
  check_target(parser.get().target());
}

// Feeds `input` to a fresh parser per message, `piece` bytes at a time (0: all at once), the way
// a session's read loop does: unconsumed bytes stay in the buffer and the next read appends.
void drive_parser(std::string_view input, std::size_t piece) {
  boost::beast::flat_buffer buffer;
  std::size_t offset = 0;
  for (int message = 0; message < max_pipelined; ++message) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(header_limit);
    parser.body_limit(body_limit);
    parser.eager(true);
    boost::system::error_code ec;
    while (!parser.is_done()) {
      if (buffer.size() > 0) {
        const std::size_t used = parser.put(buffer.data(), ec);
        buffer.consume(used);
        if (ec && ec != http::error::need_more) return;
        if (parser.is_done()) break;
        if (used > 0 && !ec) continue;
      }
      if (offset == input.size()) {
        parser.put_eof(ec);
        if (ec || !parser.is_done()) return;
        break;
      }
      const std::size_t n =
          piece == 0 ? input.size() - offset : std::min(piece, input.size() - offset);
      const auto dest = buffer.prepare(n);
      std::copy_n(input.data() + offset, n, static_cast<char*>(dest.data()));
      buffer.commit(n);
      offset += n;
    }
    on_request(parser);
    if (!parser.keep_alive()) return;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  const std::string_view rest = all.substr(1);
  switch (data[0] % 6) {
    case 0: drive_parser(rest, 0); break;
    case 1:
      if (!rest.empty()) drive_parser(rest.substr(1), static_cast<unsigned char>(rest[0]) % 16 + 1);
      break;
    case 2: check_url(rest); break;
    case 3: check_alias(rest); break;
    case 4: check_location(rest); break;
    default: check_target(rest); break;
  }
  return 0;
}
