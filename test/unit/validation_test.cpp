#include <catch2/catch.hpp>

#include <boost/url/rfc/gen_delim_chars.hpp>
#include <boost/url/rfc/sub_delim_chars.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

#include <algorithm>
#include <string>

#include "request_target.hpp"
#include "short_id.hpp"
#include "validation.hpp"

using shardurl::alias_problem;
using shardurl::is_plausible_id;
using shardurl::is_reserved;
using shardurl::location_value;
using shardurl::url_problem;

namespace {
using namespace std::string_literals;

std::string problem(std::string_view url) {
  INFO("url: " << url);
  const auto why = url_problem(url);
  REQUIRE(why.has_value());
  return *why;
}

bool visible_ascii_only(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x21 && c <= 0x7e; });
}
}  // namespace

TEST_CASE("url_problem accepts http and https URLs in their usual shapes") {
  const char* accepted[] = {
      "https://www.postgresql.org/",  // the tutorial's
      "https://www.google.com/",
      "https://www.dev.to/",
      "http://example.com",
      "HTTPS://EXAMPLE.COM/",
      "hTtP://example.com/a",
      "https://example.com/path/to/page.html?q=1&r=two#section-3",
      "https://example.com:8443/x",
      "http://example.com:/",
      "http://127.0.0.1:5001/urls",
      "http://[::1]/",
      "http://[2001:db8::7]:8080/a?b#c",
      "https://example.com/a%20b%2Fc?x=%E2%82%AC",
      "https://example.com/?q=a+b&empty=&flag",
      "https://example.com/#",
      "https://example.com/?",
      "https://example.com/;params;x=1",
      "https://example.com/!$&'()*+,;=:@-._~",
      "https://xn--bcher-kva.example/",
      "https://localhost/",
      "https://a/",
  };
  for (const char* url : accepted) {
    INFO("url: " << url);
    CHECK_FALSE(url_problem(url).has_value());
  }
}

TEST_CASE("url_problem tolerates what a browser would percent-encode: IRIs and a few ASCII") {
  CHECK_FALSE(url_problem("https://de.wikipedia.org/wiki/Straße").has_value());
  CHECK_FALSE(url_problem("https://ja.wikipedia.org/wiki/日本語?q=é#ü").has_value());
  CHECK_FALSE(url_problem("https://bücher.example/").has_value());
  CHECK_FALSE(url_problem("https://example.com/😀").has_value());
  CHECK_FALSE(url_problem("https://example.com/?q={\"a\":[1]}|x^y`z<b>").has_value());
  CHECK_FALSE(url_problem("https://example.com/search?a[]=1&a[]=2#[x]").has_value());
  CHECK_FALSE(url_problem("https://example.com/[x]/").has_value());
  CHECK_FALSE(url_problem("http://[::1]:8080/a[0]").has_value());
}

TEST_CASE("url_problem refuses other schemes, case-insensitively") {
  for (const char* url :
       {"javascript:alert(1)", "JAVASCRIPT:alert(1)", "JavaScript://example.com/%0aalert(1)",
        "data:text/html,<script>alert(1)</script>", "data:text/html;base64,PHNjcmlwdD4=", "ftp://x",
        "ftp://example.com/file", "mailto:a@example.com", "file:///etc/passwd", "ws://example.com/",
        "vbscript:msgbox", "httpx://example.com/", "http+s://example.com/", "example.com:80/x"}) {
    CHECK(problem(url) == "only http and https URLs are accepted");
  }
}

TEST_CASE("url_problem refuses relative references") {
  for (const char* url : {"/x", "/", "example.com", "www.example.com/path", "//x.com", "//x.com/a",
                          "?q=1", "#frag", "urls/abc", "."}) {
    CHECK(problem(url) == "the URL is not an absolute URL");
  }
  CHECK(problem("") == "the URL is empty");
}

TEST_CASE("url_problem requires a non-empty host") {
  for (const char* url : {"http://", "https://", "https:///x", "http:///", "https:x.com",
                          "http:/x.com", "https:", "http:?q", "http://:80/", "https://:/"}) {
    CHECK(problem(url) == "the URL has no host");
  }
}

TEST_CASE("url_problem refuses userinfo, bad hosts and bad ports") {
  CHECK(problem("https://user:pass@example.com/") ==
        "the URL must not contain a user name or password");
  CHECK(problem("https://www.bank.com@evil.example/") ==
        "the URL must not contain a user name or password");
  CHECK(problem("https://@example.com/") == "the URL must not contain a user name or password");
  CHECK(problem("https://good.com%2Fevil.com/") == "the URL's host is not valid");
  CHECK(problem("https://a%00b.com/") == "the URL's host is not valid");
  CHECK(problem("https://a%20b.com/") == "the URL's host is not valid");
  CHECK(problem("https://a%0d%0ab.com/") == "the URL's host is not valid");
  CHECK(problem("https://a%ffb.com/") == "the URL's host is not valid");
  CHECK(problem("https://a|b.com/") == "the URL's host is not valid");
  CHECK(problem("https://example.com:65536/") == "the URL's port is not valid");
  CHECK(problem("https://example.com:99999999999999999999/") == "the URL's port is not valid");
  CHECK_FALSE(url_problem("https://example.com:65535/").has_value());
  // Boost.URL 1.81 alone would read these as port 8 and path "o/" (boostorg/url#636).
  CHECK(problem("https://example.com:8o/") == "the URL is not a valid URL");
  CHECK(problem("http://a:1:2/") == "the URL is not a valid URL");
  CHECK(problem("http://[::1]x/") == "the URL is not a valid URL");
  CHECK(problem("http://x[::1]/") == "the URL is not a valid URL");
  CHECK(problem("http://[::1/") == "the URL is not a valid URL");
  CHECK(problem("https://evil.com\\.good.com/") == "the URL contains a backslash");
  CHECK(problem("https:\\\\evil.com") == "the URL contains a backslash");
}

TEST_CASE("url_problem refuses malformed percent-escapes") {
  CHECK(problem("https://example.com/100%") == "the URL is not a valid URL");
  CHECK(problem("https://example.com/%zz") == "the URL is not a valid URL");
  CHECK(problem("https://example.com/%4") == "the URL is not a valid URL");
}

TEST_CASE("url_problem refuses whitespace and control characters anywhere") {
  const std::string why = "the URL contains whitespace or control characters";
  CHECK(problem("https://exa mple.com") == why);
  CHECK(problem("https://x.com/\r\nSet-Cookie: a=b") == why);
  CHECK(problem("https://x.com/\nLocation: https://evil/") == why);
  CHECK(problem(" https://x.com/") == why);
  CHECK(problem("https://x.com/ ") == why);
  CHECK(problem("https://x.com/\t") == why);
  CHECK(problem("https://x.com/\x7f") == why);
  CHECK(problem("https://x.com/\x1b[31m") == why);
  CHECK(problem("https://x.com/a\0b"s) == why);
  for (int c = 0; c < 0x20; ++c) {
    CHECK(problem("https://x.com/" + std::string(1, static_cast<char>(c))) == why);
  }
  // Non-ASCII whitespace, C1 controls, zero-width and bidi characters are invisible too.
  for (const char* invisible :
       {"\u00a0", "\u0085", "\u0080", "\u009f", "\u1680", "\u2000", "\u200a", "\u200b", "\u200d",
        "\u200e", "\u2028", "\u2029", "\u202e", "\u202f", "\u205f", "\u2060", "\u2066", "\u3000",
        "\ufeff"}) {
    CHECK(problem("https://x.com/a" + std::string(invisible) + "b") == why);
  }
  CHECK(problem("https://x\u202e.com/") == why);
}

TEST_CASE("url_problem refuses bytes that are not UTF-8") {
  CHECK(problem("https://x.com/\xff") == "the URL is not valid UTF-8");
  CHECK(problem("https://x.com/\xc3") == "the URL is not valid UTF-8");
  CHECK(problem("https://x.com/\xc0\xaf") == "the URL is not valid UTF-8");      // overlong '/'
  CHECK(problem("https://x.com/\xed\xa0\x80") == "the URL is not valid UTF-8");  // surrogate
}

TEST_CASE("url_problem limits the length in bytes, 2048 by default") {
  const std::string base = "https://example.com/";
  const std::string at_limit = base + std::string(2048 - base.size(), 'a');
  CHECK_FALSE(url_problem(at_limit).has_value());
  CHECK(problem(at_limit + "a") == "the URL is longer than 2048 bytes");
  CHECK(problem(std::string(100000, 'a')) == "the URL is longer than 2048 bytes");
  CHECK(url_problem(base, 10) == "the URL is longer than 10 bytes");
  CHECK_FALSE(url_problem(base, base.size()).has_value());
}

TEST_CASE("alias_problem accepts 1 to 64 characters of [A-Za-z0-9_-]") {
  for (const std::string& alias : {"a"s, "Z"s, "0"s, "-"s, "_"s, "my-link_1"s, "MyLink"s,
                                   std::string(64, 'x'), "URLs2"s, "healthz2"s, "doc"s, "url"s}) {
    INFO("alias: " << alias);
    CHECK_FALSE(alias_problem(alias).has_value());
  }
}

TEST_CASE("alias_problem refuses bad lengths, characters and reserved words") {
  const std::string length = "the alias must be 1 to 64 characters long";
  const std::string chars = "the alias may only contain the characters A-Z, a-z, 0-9, '_' and '-'";
  CHECK(alias_problem("") == length);
  CHECK(alias_problem(std::string(65, 'x')) == length);
  for (const std::string& alias : {"a/b"s, "a b"s, "é"s, "a.b"s, "a%2Fb"s, "a?b"s, "a#"s, "a\0"s,
                                   "\r\n"s, "a+b"s, "~a"s, "a=b"s}) {
    INFO("alias: " << alias);
    CHECK(alias_problem(alias) == chars);
  }
  CHECK(alias_problem("urls") == "the alias 'urls' is reserved");
  CHECK(alias_problem("healthz") == "the alias 'healthz' is reserved");
  CHECK(alias_problem("openapi.json") == "the alias 'openapi.json' is reserved");
  CHECK(alias_problem("docs") == "the alias 'docs' is reserved");
  CHECK(alias_problem("URLS") == "the alias 'URLS' is reserved");
  CHECK(alias_problem("Metrics") == "the alias 'Metrics' is reserved");
}

TEST_CASE("reserved words are the routed first segments, refused in any case") {
  const auto words = shardurl::reserved_words();
  for (const char* routed : {"urls", "healthz", "readyz", "metrics", "openapi.json", "docs"}) {
    CHECK(std::find(words.begin(), words.end(), routed) != words.end());
    CHECK(is_reserved(routed));
  }
  CHECK(words.size() == 6);
  CHECK(is_reserved("HealthZ"));
  CHECK(is_reserved("OPENAPI.JSON"));
  CHECK_FALSE(is_reserved("url"));
  CHECK_FALSE(is_reserved("urls/"));
  CHECK_FALSE(is_reserved(""));
  CHECK_FALSE(is_reserved("docs\0"s));
  for (const auto word : words) {
    // Every reserved word is a single path segment that decodes to itself.
    std::string target = "/";  // not "/" + word: GCC 12 warns falsely there (-Wrestrict)
    target += word;
    const auto parsed = shardurl::parse_target(target);
    REQUIRE(std::holds_alternative<shardurl::RequestTarget>(parsed));
    CHECK(std::get<shardurl::RequestTarget>(parsed).segments ==
          std::vector<std::string>{std::string(word)});
  }
}

TEST_CASE("location_value keeps a valid URL byte for byte") {
  for (const char* url : {"https://www.postgresql.org/", "http://[::1]:8080/a?b=c&d=%2F#frag",
                          "https://example.com/!$&'()*+,;=:@-._~/?#[]",
                          "https://example.com/a%20b%e2%82%ac", "https://example.com/%41%7e"}) {
    INFO("url: " << url);
    CHECK(location_value(url) == url);
  }
}

TEST_CASE("location_value percent-encodes everything a header must not carry") {
  CHECK(location_value("https://x.com/\r\nSet-Cookie: a=b") ==
        "https://x.com/%0D%0ASet-Cookie:%20a=b");
  CHECK(location_value("https://x.com/a\0b"s) == "https://x.com/a%00b");
  CHECK(location_value("https://x.com/a b") == "https://x.com/a%20b");
  CHECK(location_value("https://x.com/\x7f") == "https://x.com/%7F");
  CHECK(location_value("https://x.com/\t\x1b") == "https://x.com/%09%1B");
  CHECK(location_value("https://de.wikipedia.org/wiki/Straße") ==
        "https://de.wikipedia.org/wiki/Stra%C3%9Fe");
  CHECK(location_value("https://x.com/\xff\x80") == "https://x.com/%FF%80");
  CHECK(location_value("https://x.com/?q={\"a\"}|<b>^`\\") ==
        "https://x.com/?q=%7B%22a%22%7D%7C%3Cb%3E%5E%60%5C");
  // A '%' that does not start an escape is encoded; valid escapes are kept.
  CHECK(location_value("https://x.com/100%") == "https://x.com/100%25");
  CHECK(location_value("https://x.com/%4") == "https://x.com/%254");
  CHECK(location_value("https://x.com/%zz%41") == "https://x.com/%25zz%41");
  CHECK(location_value("%%41") == "%25%41");
  CHECK(location_value("") == "");
}

TEST_CASE("location_value keeps exactly RFC 3986's URI characters, as Boost.URL defines them") {
  namespace urls = boost::urls;
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    const bool uri_char =
        urls::unreserved_chars(c) || urls::gen_delim_chars(c) || urls::sub_delim_chars(c);
    const std::string one = std::string("https://x.com/") + c;
    INFO("byte " << b);
    CHECK((location_value(one) == one) == uri_char);
  }
}

TEST_CASE("location_value output is only visible ASCII for every byte value") {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  const std::string out = location_value(all + all);
  CHECK(visible_ascii_only(out));
  for (int b = 0; b < 256; ++b) {
    const std::string one(1, static_cast<char>(b));
    INFO("byte " << b);
    CHECK(visible_ascii_only(location_value(one)));
    CHECK(visible_ascii_only(location_value("%" + one)));
    CHECK(visible_ascii_only(location_value("%4" + one)));
  }
}

TEST_CASE("location_value of an accepted URL made only of URI characters is the URL itself") {
  for (int i = 0; i < 200; ++i) {
    const std::string url = "https://example.com/" + shardurl::id_digest(std::to_string(i));
    REQUIRE_FALSE(url_problem(url).has_value());
    CHECK(location_value(url) == url);
  }
}

TEST_CASE("is_plausible_id accepts 1 to 64 bytes") {
  CHECK(is_plausible_id("a"));
  CHECK(is_plausible_id("0OGWoMJ"));
  CHECK(is_plausible_id("ab/cd"));
  CHECK(is_plausible_id(std::string(64, 'x')));
  CHECK_FALSE(is_plausible_id(""));
  CHECK_FALSE(is_plausible_id(std::string(65, 'x')));
  CHECK_FALSE(is_plausible_id(std::string(100000, 'x')));
}
