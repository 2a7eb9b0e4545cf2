#include <catch2/catch.hpp>

#include "request_target.hpp"

using shardurl::parse_target;
using shardurl::RequestTarget;

namespace {
RequestTarget ok(std::string_view target) {
  auto parsed = parse_target(target);
  INFO(target);
  REQUIRE(std::holds_alternative<RequestTarget>(parsed));
  return std::get<RequestTarget>(parsed);
}
std::string rejected(std::string_view target) {
  auto parsed = parse_target(target);
  INFO(target);
  REQUIRE(std::holds_alternative<std::string>(parsed));
  return std::get<std::string>(parsed);
}
using Segments = std::vector<std::string>;
}  // namespace

TEST_CASE("paths decode segment by segment, so an id can hold '/' and '+'") {
  CHECK(ok("/").segments.empty());
  CHECK(ok("/urls").segments == Segments{"urls"});
  CHECK(ok("/urls/").segments == Segments{"urls"});
  CHECK(ok("/urls/ab%2Fcd").segments == Segments{"urls", "ab/cd"});
  CHECK(ok("/urls/x+y").segments == Segments{"urls", "x+y"});
  CHECK(ok("/urls/%C3%A9").segments == Segments{"urls", "é"});
  CHECK(ok("/urls//x").segments == Segments{"urls", "", "x"});
}

TEST_CASE("query parameters decode '+' as a space and keep '&' split as FastAPI does") {
  const auto t = ok("/urls?full_url=https://www.postgresql.org/");
  REQUIRE(t.param("full_url") != nullptr);
  CHECK(*t.param("full_url") == "https://www.postgresql.org/");
  CHECK(*ok("/urls?full_url=a+b%2Bc").param("full_url") == "a b+c");
  CHECK(*ok("/urls?x=1&full_url=https%3A%2F%2Fa.b%2F%3Fq%3D1%26r%3D2").param("full_url") ==
        "https://a.b/?q=1&r=2");
  CHECK(*ok("/urls?full_url=").param("full_url") == "");
  CHECK(*ok("/urls?full_url").param("full_url") == "");
  // A repeated parameter: the last value, as FastAPI (Starlette's QueryParams) reads it.
  CHECK(*ok("/urls?full_url=a&full_url=b").param("full_url") == "b");
  CHECK(*ok("/urls?full_url=a&x=1&full_url=&y").param("full_url") == "");
  CHECK(ok("/urls?full_url=a&full_url=b").query.size() == 2);
  CHECK(ok("/urls?&&").query.empty());
  CHECK(ok("/urls").param("full_url") == nullptr);
}

TEST_CASE("unservable targets are refused with a reason") {
  using Catch::Matchers::Contains;
  CHECK_THAT(rejected("urls"), Contains("start with '/'"));
  CHECK_THAT(rejected("*"), Contains("only allowed with OPTIONS"));
  CHECK_THAT(rejected("/urls/%zz"), Contains("percent-escape"));
  CHECK_THAT(rejected("/urls/%4"), Contains("percent-escape"));
  CHECK_THAT(rejected("/urls/a%00b"), Contains("control character"));
  CHECK_THAT(rejected("/urls/a%0D%0Ab"), Contains("control character"));
  CHECK(*ok("/urls?full_url=a%0Ab").param("full_url") == "a\nb");  // URL validation refuses it
  CHECK_THAT(rejected("/urls?a%0Ab=1"), Contains("control character"));
  CHECK_THAT(rejected("/urls/%FF"), Contains("UTF-8"));
  CHECK_THAT(rejected("/urls/%C0%AF"), Contains("UTF-8"));                 // overlong '/'
  CHECK_THAT(rejected("/urls/%ED%A0%80"), Contains("UTF-8"));              // a surrogate
  CHECK_THAT(rejected("/urls?full_url=%F4%90%80%80"), Contains("UTF-8"));  // above U+10FFFF
}

TEST_CASE("utf-8 validation") {
  CHECK(shardurl::is_utf8(""));
  CHECK(shardurl::is_utf8("plain"));
  CHECK(shardurl::is_utf8("\xf0\x9f\x99\x82"));  // U+1F642
  CHECK_FALSE(shardurl::is_utf8("\xf0\x9f\x99"));
  CHECK_FALSE(shardurl::is_utf8("\x80"));
}

TEST_CASE("a '%' starting no escape stays as it is in a query, as Python's parse_qsl keeps it") {
  using Catch::Matchers::Contains;
  CHECK(*ok("/urls?full_url=%G0").param("full_url") == "%G0");
  CHECK(*ok("/urls?full_url=https://x.com/100%").param("full_url") == "https://x.com/100%");
  CHECK(*ok("/urls?full_url=a%2").param("full_url") == "a%2");
  CHECK(*ok("/urls?full_url=%%41%4g").param("full_url") == "%A%4g");
  CHECK(*ok("/urls?full_url=https://a.b/&junk=%zz").param("full_url") == "https://a.b/");
  CHECK(*ok("/urls?%zz=1").param("%zz") == "1");
  // Decoded bytes that are not UTF-8 are refused (Python would put U+FFFD in their place).
  CHECK_THAT(rejected("/urls?full_url=%ff"), Contains("UTF-8"));
  CHECK_THAT(rejected("/urls?full_url=%C3"), Contains("UTF-8"));
  // The path stays strict: an id never holds '%', and a bad escape there is a malformed target.
  CHECK_THAT(rejected("/urls/100%"), Contains("percent-escape"));
}

TEST_CASE("absolute-form targets are served by their path and query (RFC 9112 3.2.2)") {
  CHECK(ok("http://localhost:5001/urls/abc").segments == Segments{"urls", "abc"});
  CHECK(ok("https://localhost:5001/urls/abc").segments == Segments{"urls", "abc"});
  CHECK(ok("HTTP://EXAMPLE.COM/healthz").segments == Segments{"healthz"});
  CHECK(ok("http://127.0.0.1/urls/ab%2Fcd").segments == Segments{"urls", "ab/cd"});
  CHECK(ok("http://[::1]:5001/urls/x+y").segments == Segments{"urls", "x+y"});
  const auto t = ok("http://localhost:5001/urls?full_url=https://www.postgresql.org/");
  CHECK(t.segments == Segments{"urls"});
  CHECK(*t.param("full_url") == "https://www.postgresql.org/");
  // No path is "/".
  CHECK(ok("http://localhost:5001").segments.empty());
  CHECK(*ok("http://localhost:5001?full_url=u").param("full_url") == "u");
  CHECK(ok("http://localhost:/x").segments == Segments{"x"});  // an empty port, as RFC 3986 allows
}

TEST_CASE("absolute-form targets that cannot be served are refused with a reason") {
  using Catch::Matchers::Contains;
  CHECK_THAT(rejected("ftp://x.com/urls"), Contains("http or https"));
  CHECK_THAT(rejected("httpx://x.com/urls"), Contains("http or https"));
  CHECK_THAT(rejected("http:///urls"), Contains("host"));
  CHECK_THAT(rejected("http://:5001/urls"), Contains("host"));
  CHECK_THAT(rejected("http://user@x.com/urls"), Contains("user information"));
  CHECK_THAT(rejected("http://user:pw@x.com/urls"), Contains("user information"));
  CHECK_THAT(rejected("http://x.com:8x/urls"), Contains("not valid"));
  CHECK_THAT(rejected("http://x com/urls"), Contains("not valid"));
  CHECK_THAT(rejected("http://[::1/urls"), Contains("not valid"));
  CHECK_THAT(rejected("http://x.com/urls/%zz"), Contains("percent-escape"));
  // Authority-form belongs to CONNECT, asterisk-form to OPTIONS (RFC 9112 3.2.3, 3.2.4).
  CHECK_THAT(rejected("x.com:443"), Contains("only allowed with CONNECT"));
  CHECK_THAT(rejected("[::1]:443"), Contains("only allowed with CONNECT"));
  CHECK_THAT(rejected("*"), Contains("only allowed with OPTIONS"));
  CHECK_THAT(rejected("http:x.com"), Contains("start with '/'"));
  CHECK_THAT(rejected("urls?full_url=https://x.com/"), Contains("start with '/'"));
  CHECK_THAT(rejected(""), Contains("start with '/'"));
}

TEST_CASE("host[:port] as RFC 3986 allows it") {
  using shardurl::is_host_and_port;
  for (const auto good : {"", "localhost", "localhost:5001", "127.0.0.1:80", "[::1]", "[::1]:5001",
                          "[v1.x]", "a-b.c_d~e", "a%2Eb", "x:", "a,b;c=d!$&'()*+"}) {
    INFO(good);
    CHECK(is_host_and_port(good));
  }
  for (const auto bad : {"a b", "a/b", "a@b", "a:b", "a:1:2", "[::1", "[]", "[::1]x", "[::1]:x",
                         "a%2", "a%zz", "\xc3\xa9", "a?b", "a#b", "a\\b", "\"a\"", "a\tb"}) {
    INFO(bad);
    CHECK_FALSE(is_host_and_port(bad));
  }
}
