// libFuzzer target: everything a client's bytes reach before a route runs. The first byte picks
// what to drive, so one corpus covers them all (see docs/fuzzing.md):
//   0 Beast's request parser, the whole input in one buffer, then the head's checks and the
//     request target
//   1 the same, fed in pieces of 1-16 bytes (the second byte) as a socket would deliver them
//   2 url_problem, and properties of the URLs it accepts
//   3 alias_problem, is_reserved, is_plausible_id
//   4 location_value: only visible ASCII, idempotent
//   5 parse_target on the raw bytes, then the checks a route applies to what it decoded
// and, whatever the rest: an input starting with 0x16 (a TLS handshake record, as every TLS
// connection starts) is the client's side of a handshake with the HTTPS listener's OpenSSL
// context (make_tls_context: versions, ALPN selection), on memory BIOs.
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

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/ssl/context.hpp>
#include <filesystem>
#include <memory>

#include <unistd.h>

#include "header_checks.hpp"
#include "request_target.hpp"
#include "tls.hpp"
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

// The listener's context, with a throwaway self-signed certificate written once per process.
boost::asio::ssl::context& tls_context() {
  static const std::shared_ptr<boost::asio::ssl::context> context = [] {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509_sign(cert, key, EVP_sha256());
    const auto dir = std::filesystem::temp_directory_path() /
                     ("shardurl-fuzz-tls-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    shardurl::TlsConfig files{(dir / "cert.pem").string(), (dir / "key.pem").string()};
    FILE* out = std::fopen(files.cert_file.c_str(), "w");
    PEM_write_X509(out, cert);
    std::fclose(out);
    out = std::fopen(files.key_file.c_str(), "w");
    PEM_write_PrivateKey(out, key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(out);
    X509_free(cert);
    EVP_PKEY_free(key);
    auto made = shardurl::make_tls_context(files);
    std::filesystem::remove_all(dir);
    return made;
  }();
  return *context;
}

// The server's side of a handshake whose client sent `bytes`: it must end in a clean "wants
// more" or a refusal, and whatever protocol it agreed on is http/1.1 (or none).
void drive_tls(std::string_view bytes) {
  SSL* ssl = SSL_new(tls_context().native_handle());
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, in, out);  // ssl owns both now
  SSL_set_accept_state(ssl);
  BIO_write(in, bytes.data(), static_cast<int>(bytes.size()));
  const int result = SSL_do_handshake(ssl);
  const int error = SSL_get_error(ssl, result);
  FUZZ_CHECK(result == 1 || error == SSL_ERROR_WANT_READ || error == SSL_ERROR_SSL ||
             error == SSL_ERROR_SYSCALL || error == SSL_ERROR_ZERO_RETURN);
  const unsigned char* alpn = nullptr;
  unsigned int alpn_length = 0;
  SSL_get0_alpn_selected(ssl, &alpn, &alpn_length);
  FUZZ_CHECK(alpn_length == 0 ||
             std::string_view(reinterpret_cast<const char*>(alpn), alpn_length) == "http/1.1");
  // What the server would send (ServerHello or an alert) is at most a few kilobytes.
  FUZZ_CHECK(BIO_ctrl_pending(out) < 16 * 1024);
  FUZZ_CHECK(SSL_version(ssl) == 0 || SSL_version(ssl) >= TLS1_2_VERSION ||
             result != 1);
  SSL_free(ssl);
  ERR_clear_error();
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  if (data[0] == 0x16) {
    drive_tls(std::string_view(reinterpret_cast<const char*>(data), size));
    return 0;
  }
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
