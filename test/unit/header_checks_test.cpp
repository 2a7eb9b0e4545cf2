#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <utility>

#include "header_checks.hpp"
#include "routes.hpp"

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

namespace {
using shardurl::RequestHead;

// A RequestHead fed field by field, read back as the status problem() decides.
struct Head {
  RequestHead head;
  explicit Head(unsigned version = 11, std::string_view method = "GET",
                std::string_view target = "/urls/abc")
      : head(version, method, target) {}
  Head& host(std::string_view v) { return head.host(v), *this; }
  Head& te(std::string_view v) { return head.transfer_encoding(v), *this; }
  Head& ce(std::string_view v) { return head.content_encoding(v), *this; }
  Head& expect(std::string_view v) { return head.expect(v), *this; }
  // The status problem() decides, 0 for none.
  unsigned status(bool chunked = false, bool body_follows = false) const {
    const auto p = head.problem(chunked, body_follows);
    return p ? p->status : 0;
  }
};
}  // namespace

TEST_CASE("Host: required in HTTP/1.1, once, and a valid host[:port] (RFC 9112 3.2)") {
  CHECK(Head().host("localhost:5001").status() == 0);
  CHECK(Head().host("127.0.0.1").status() == 0);
  CHECK(Head().host("[::1]:5001").status() == 0);
  CHECK(Head().host("").status() == 0);  // valid: a target URI without an authority
  CHECK(Head().status() == 400);
  CHECK(Head(10).status() == 0);  // HTTP/1.0 may leave it out
  CHECK(Head().host("a").host("a").status() == 400);
  CHECK(Head(10).host("a").host("b").status() == 400);
  for (const auto bad : {"a b", "a/b", "user@host", "host:port", "[::1", "[::1]x", "a:1:2",
                         "\xc3\xa9", "a?b", "a#b", "%zz", "a\\b", "\"a\""}) {
    INFO(bad);
    CHECK(Head().host(bad).status() == 400);
    CHECK(Head(10).host(bad).status() == 400);
  }
  const auto p = Head().head.problem(false, false);
  REQUIRE(p);
  CHECK_THAT(p->detail, Catch::Matchers::Contains("Host"));
}

TEST_CASE("Transfer-Encoding: chunked last is read, other codings are 501, bad framing 400") {
  CHECK(Head().host("x").te("chunked").status(true, true) == 0);
  CHECK(Head().host("x").te("Chunked").status(true, true) == 0);
  // Beast says the final coding is not chunked: the body's end is unknown.
  CHECK(Head().host("x").te("gzip").status(false, false) == 400);
  CHECK(Head().host("x").te("chunked, gzip").status(false, false) == 400);
  for (const auto coding : {"gzip, chunked", "deflate, chunked", "compress, chunked", "br, chunked",
                            "x-custom, chunked", "identity, chunked", "gzip;q=1, chunked"}) {
    INFO(coding);
    const auto p = Head().host("x").te(coding).head.problem(true, true);
    REQUIRE(p);
    CHECK(p->status == 501);
    CHECK_THAT(p->detail, Catch::Matchers::Contains("chunked"));
  }
  // Two field lines are one list: "gzip" then "chunked" is "gzip, chunked".
  CHECK(Head().host("x").te("gzip").te("chunked").status(true, true) == 501);
  // HTTP/1.0 has no Transfer-Encoding (RFC 9112 6.1): faulty framing.
  CHECK(Head(10).te("chunked").status(true, true) == 400);
}

TEST_CASE("OPTIONS * and CONNECT host:port are 405 with the server's methods") {
  for (const auto& [method, target] : {std::pair{"OPTIONS", "*"}, std::pair{"CONNECT", "x:443"},
                                       std::pair{"CONNECT", "[::1]:443"}}) {
    INFO(method << " " << target);
    const auto p = Head(11, method, target).host("x").head.problem(false, false);
    REQUIRE(p);
    CHECK(p->status == 405);
    CHECK(p->header == "Allow: GET, HEAD, POST, DELETE");
  }
  // The other pairings are parse_target's to refuse (400); routes answer OPTIONS /path with 405.
  CHECK(Head(11, "GET", "*").host("x").status() == 0);
  CHECK(Head(11, "GET", "x:443").host("x").status() == 0);
  CHECK(Head(11, "OPTIONS", "/urls").host("x").status() == 0);
  CHECK(Head(11, "OPTIONS", "http://x/urls").host("x").status() == 0);
}

TEST_CASE("Expect: 100-continue is honoured when a body follows, anything else is 417") {
  CHECK(Head().host("x").expect("100-continue").head.expects_continue(true));
  CHECK(Head().host("x").expect("100-Continue").head.expects_continue(true));
  CHECK(Head().host("x").expect(" 100-continue , ").head.expects_continue(true));
  CHECK_FALSE(Head().host("x").expect("100-continue").head.expects_continue(false));  // no body
  CHECK_FALSE(Head().host("x").head.expects_continue(true));
  CHECK(Head().host("x").expect("100-continue").status(false, true) == 0);
  for (const auto other : {"foo", "100-continue, foo", "100-continue;x=1", "200-ok"}) {
    INFO(other);
    CHECK(Head().host("x").expect(other).status(false, true) == 417);
    CHECK(Head().host("x").expect(other).status(false, false) == 417);
  }
  CHECK(Head().host("x").expect("").status(false, true) == 0);
  // HTTP/1.0 requests' Expect is ignored (RFC 9110 10.1.1).
  CHECK(Head(10).expect("foo").status(false, true) == 0);
  CHECK_FALSE(Head(10).expect("100-continue").head.expects_continue(true));
  // A head that already decides the answer: that answer, not 100 (the server asks problem() first).
  CHECK(Head().host("x").expect("100-continue").te("gzip, chunked").status(true, true) == 501);
}

TEST_CASE("Content-Encoding on a body is 415 with Accept-Encoding: identity") {
  for (const auto coding : {"gzip", "br", "deflate", "identity, gzip", "x-custom"}) {
    INFO(coding);
    const auto p = Head(11, "POST", "/urls").host("x").ce(coding).head.problem(false, true);
    REQUIRE(p);
    CHECK(p->status == 415);
    CHECK(p->header == "Accept-Encoding: identity");
  }
  CHECK(Head(11, "POST", "/urls").host("x").ce("identity").status(false, true) == 0);
  CHECK(Head(11, "POST", "/urls").host("x").ce("").status(false, true) == 0);
  // No body, nothing coded: ignored.
  CHECK(Head().host("x").ce("gzip").status(false, false) == 0);
}

TEST_CASE("the checks come in order: Host, framing, server-wide forms, Expect, Content-Encoding") {
  CHECK(Head().te("gzip, chunked").expect("foo").status(true, true) == 400);
  CHECK(Head().host("x").te("gzip, chunked").expect("foo").status(true, true) == 501);
  CHECK(Head(11, "OPTIONS", "*").host("x").expect("foo").status() == 405);
  CHECK(Head().host("x").expect("foo").ce("gzip").status(false, true) == 417);
}

TEST_CASE("server_methods is every method of the route table") {
  const auto add = [](std::set<std::string>& to, std::string_view methods) {
    while (!methods.empty()) {
      const auto comma = methods.find(", ");
      to.emplace(methods.substr(0, comma));
      methods.remove_prefix(comma == std::string_view::npos ? methods.size() : comma + 2);
    }
  };
  std::set<std::string> table;
  for (const auto& route : shardurl::Routes::table()) add(table, route.methods);
  std::set<std::string> server;
  add(server, shardurl::server_methods);
  CHECK(server == table);
}
