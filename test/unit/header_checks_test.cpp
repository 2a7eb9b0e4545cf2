#include <catch2/catch.hpp>

#include "header_checks.hpp"

using shardurl::header_problem;

TEST_CASE("ordinary headers pass") {
  CHECK_FALSE(header_problem("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 100));
  CHECK_FALSE(header_problem("\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 100));
  CHECK_FALSE(header_problem("GET / HTTP/1.1\r\n\r\n", 100));
  CHECK_FALSE(header_problem("GET / HTTP/1.1\r\nA: b c\r\nD:\te\r\n\r\n", 100));
}

TEST_CASE("obs-fold is refused with 400") {
  const auto p = header_problem("GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n  b\r\n\r\n", 100);
  REQUIRE(p);
  CHECK(p->status == 400);
  CHECK(header_problem("GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", 100)->status == 400);
  CHECK(header_problem("GET / HTTP/1.1\r\n Host: x\r\n\r\n", 100)->status == 400);
}

TEST_CASE("too many header fields is 431") {
  std::string block = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 100; ++i) block += "X-" + std::to_string(i) + ": v\r\n";
  CHECK_FALSE(header_problem(block + "\r\n", 100));
  const auto p = header_problem(block + "X-One-More: v\r\n\r\n", 100);
  REQUIRE(p);
  CHECK(p->status == 431);
}
