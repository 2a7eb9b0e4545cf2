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
  CHECK(ok("/urls?full_url=a&full_url=b").param("full_url")->front() == 'a');
  CHECK(ok("/urls?&&").query.empty());
  CHECK(ok("/urls").param("full_url") == nullptr);
}

TEST_CASE("unservable targets are refused with a reason") {
  using Catch::Matchers::Contains;
  CHECK_THAT(rejected("urls"), Contains("start with '/'"));
  CHECK_THAT(rejected("*"), Contains("start with '/'"));
  CHECK_THAT(rejected("/urls/%zz"), Contains("percent-escape"));
  CHECK_THAT(rejected("/urls/%4"), Contains("percent-escape"));
  CHECK_THAT(rejected("/urls?full_url=%G0"), Contains("percent-escape"));
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
