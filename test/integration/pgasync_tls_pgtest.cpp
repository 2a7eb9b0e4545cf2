// pgasync over TLS against real PostgreSQL 15 servers that take TLS only.
//
// test/integration/tls_shards.py starts what this needs and runs it (CTest test "pgasync_tls"):
//   SHARDURL_TLS_CERTS             directory with ca.crt (the CA that signed the servers'
//                                  certificates), other-ca.crt (a CA that signed none of them),
//                                  certuser.crt / certuser.key (a client certificate)
//   SHARDURL_TLS_PORT              a server on 127.0.0.1 whose certificate is for DNS:localhost
//   SHARDURL_TLS_WRONG_NAME_PORT   a server whose certificate (same CA) is for another name
//   SHARDURL_TLS_RELAY_PORT        a TLS relay in front of the first server that writes the
//                                  server's replies in full 16 KiB TLS records (see TlsRelay in
//                                  tls_shards.py): the peer that makes libpq leave reply bytes
//                                  inside OpenSSL while the socket is quiet
// Both servers refuse TCP sessions without TLS (pg_hba: hostssl only), and the role "certuser"
// logs in with a client certificate only. A missing variable fails the test.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <libpq-fe.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "pgasync/connection.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using shardurl::pgasync::Clock;
using shardurl::pgasync::Connection;
using shardurl::pgasync::Errc;
using shardurl::pgasync::Param;
using shardurl::pgasync::params;
using shardurl::pgasync::PipelineCall;

namespace {

std::string required_env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    FAIL(name << " is not set: run this through test/integration/tls_shards.py (see the comment "
                 "at the top of test/integration/pgasync_tls_pgtest.cpp)");
  }
  return value;
}

std::string cert_file(const char* name) {
  return required_env("SHARDURL_TLS_CERTS") + "/" + name;
}

// host=localhost on `port_var`'s server, user postgres, then `extra` (libpq's later keys win).
std::string tls_conninfo(const char* port_var, const std::string& extra) {
  return "host=localhost port=" + required_env(port_var) + " user=postgres dbname=postgres " +
         extra;
}

std::string verify_full(const char* port_var = "SHARDURL_TLS_PORT") {
  return tls_conninfo(port_var, "sslmode=verify-full sslrootcert=" + cert_file("ca.crt"));
}

Clock::time_point in(std::chrono::milliseconds ms) {
  return Clock::now() + ms;
}

void run(asio::io_context& ioc, const std::function<asio::awaitable<void>()>& body) {
  std::exception_ptr failure;
  asio::co_spawn(ioc, body(), [&](std::exception_ptr e) { failure = std::move(e); });
  ioc.restart();
  ioc.run();
  if (failure) std::rethrow_exception(failure);
}

template <class R>
void require_ok(const R& res) {
  INFO((res ? std::string() : res.error().describe()));
  REQUIRE(res.has_value());
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A connect that must fail: its error, and how long it took.
struct Refusal {
  shardurl::pgasync::Error error;
  Clock::duration took;
};

asio::awaitable<Refusal> refused(const std::string& info) {
  const auto start = Clock::now();
  auto conn = co_await Connection::connect(co_await asio::this_coro::executor, info, in(10s));
  REQUIRE_FALSE(conn.has_value());
  co_return Refusal{conn.error(), Clock::now() - start};
}

}  // namespace

TEST_CASE("verify-full with host=localhost checks the certificate against the name, over TLS",
          "[tls]") {
  asio::io_context ioc;
  run(ioc, [&]() -> asio::awaitable<void> {
    auto conn = co_await Connection::connect(ioc.get_executor(), verify_full(), in(5s));
    require_ok(conn);
    // pgasync resolved the name and handed libpq the address; libpq kept the name to verify.
    CHECK(std::string(PQhost(conn->native_handle())) == "localhost");
    CHECK(std::string(PQhostaddr(conn->native_handle())) == "127.0.0.1");
    CHECK(PQsslInUse(conn->native_handle()) == 1);
    // The server's view: this session is TLS.
    auto ssl = co_await conn->query(
        "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()", {}, in(5s));
    require_ok(ssl);
    CHECK(ssl->get(0, 0) == "t");
    CHECK(ssl->get(0, 1).starts_with("TLSv1."));
  });
}

TEST_CASE("the servers refuse a session without TLS", "[tls]") {
  asio::io_context ioc;
  run(ioc, [&]() -> asio::awaitable<void> {
    auto r = co_await refused(tls_conninfo("SHARDURL_TLS_PORT", "sslmode=disable"));
    CHECK(r.error.code == Errc::connection_failed);
    CHECK(r.error.diag.sqlstate == "28000");  // invalid_authorization_specification
    CHECK(contains(r.error.describe(), "no encryption"));
  });
}

TEST_CASE("verify-full fails at once, naming both, when the certificate is for another name",
          "[tls]") {
  asio::io_context ioc;
  run(ioc, [&]() -> asio::awaitable<void> {
    auto r = co_await refused(verify_full("SHARDURL_TLS_WRONG_NAME_PORT"));
    INFO(r.error.describe());
    CHECK(r.error.code == Errc::connection_failed);
    CHECK(contains(r.error.describe(),
                   "server certificate for \"wrong.shardurl.invalid\" does not "
                   "match host name \"localhost\""));
    CHECK(r.took < 3s);  // not at the deadline
    CHECK(shardurl::pgasync::is_server_unavailable(r.error));

    // verify-ca and require check the CA (require does once sslrootcert names one), not the name.
    for (const char* mode : {"verify-ca", "require"}) {
      INFO(mode);
      auto conn = co_await Connection::connect(
          ioc.get_executor(),
          tls_conninfo("SHARDURL_TLS_WRONG_NAME_PORT",
                       std::string("sslmode=") + mode + " sslrootcert=" + cert_file("ca.crt")),
          in(5s));
      require_ok(conn);
      CHECK(PQsslInUse(conn->native_handle()) == 1);
    }
  });
}

TEST_CASE("an address as host fails verify-full: libpq checks the host as written", "[tls]") {
  asio::io_context ioc;
  run(ioc, [&]() -> asio::awaitable<void> {
    const std::string info =
        "host=127.0.0.1 port=" + required_env("SHARDURL_TLS_PORT") +
        " user=postgres dbname=postgres sslmode=verify-full sslrootcert=" + cert_file("ca.crt");
    auto r = co_await refused(info);
    CHECK(contains(r.error.describe(), "does not match host name \"127.0.0.1\""));
  });
}

TEST_CASE("verify-full fails clearly without the root certificate, or with another CA's", "[tls]") {
  asio::io_context ioc;
  run(ioc, [&]() -> asio::awaitable<void> {
    const std::string missing = cert_file("no-such-root.crt");
    auto r = co_await refused(
        tls_conninfo("SHARDURL_TLS_PORT", "sslmode=verify-full sslrootcert=" + missing));
    CHECK(r.error.code == Errc::connection_failed);
    CHECK(contains(r.error.describe(), "root certificate file \"" + missing + "\" does not exist"));
    CHECK(r.took < 3s);

    r = co_await refused(tls_conninfo(
        "SHARDURL_TLS_PORT", "sslmode=verify-full sslrootcert=" + cert_file("other-ca.crt")));
    CHECK(r.error.code == Errc::connection_failed);
    CHECK(contains(r.error.describe(), "certificate verify failed"));
    CHECK(r.took < 3s);
  });
}

TEST_CASE("a client certificate (sslcert, sslkey) logs in a role that needs one", "[tls]") {
  asio::io_context ioc;
  run(ioc, [&]() -> asio::awaitable<void> {
    const std::string base =
        "host=localhost port=" + required_env("SHARDURL_TLS_PORT") +
        " user=certuser dbname=postgres sslmode=verify-full sslrootcert=" + cert_file("ca.crt");
    auto conn = co_await Connection::connect(
        ioc.get_executor(),
        base + " sslcert=" + cert_file("certuser.crt") + " sslkey=" + cert_file("certuser.key"),
        in(5s));
    require_ok(conn);
    auto who = co_await conn->query(
        "SELECT current_user, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()", {}, in(5s));
    require_ok(who);
    CHECK(who->get(0, 0) == "certuser");
    CHECK(who->get(0, 1) == "/CN=certuser");

    // Without it the server refuses the role (pg_hba: cert). libpq would look for
    // ~/.postgresql/postgresql.crt: point it at nothing.
    auto r = co_await refused(base + " sslcert=" + cert_file("none.crt") +
                              " sslkey=" + cert_file("none.key"));
    CHECK(r.error.diag.sqlstate == "28000");
    CHECK(contains(r.error.describe(), "certificate"));
  });
}

TEST_CASE("query, prepared statements, a pipeline and notifications over verify-full", "[tls]") {
  asio::io_context ioc;
  run(ioc, [&]() -> asio::awaitable<void> {
    auto conn = co_await Connection::connect(ioc.get_executor(), verify_full(), in(5s));
    auto sender = co_await Connection::connect(ioc.get_executor(), verify_full(), in(5s));
    require_ok(conn);
    require_ok(sender);
    auto sum = co_await conn->query("SELECT $1::int + $2::int", params("2", "40"), in(5s));
    require_ok(sum);
    CHECK(sum->get(0, 0) == "42");

    require_ok(co_await conn->prepare("tls_echo", "SELECT $1::text || '!'", in(5s)));
    std::vector<std::array<Param, 1>> args;
    for (int i = 0; i < 500; ++i) args.push_back({Param{}});
    std::vector<std::string> text(500);
    std::vector<PipelineCall> calls;
    for (int i = 0; i < 500; ++i) {
      text[i] = "v" + std::to_string(i);
      args[i][0] = text[i];
      calls.push_back(PipelineCall{"tls_echo", args[i]});
    }
    auto piped = co_await conn->execute_pipeline(calls, in(10s));
    require_ok(piped);
    REQUIRE(piped->size() == 500);
    for (int i = 0; i < 500; ++i) {
      require_ok((*piped)[i]);
      REQUIRE((*piped)[i]->get(0, 0) == text[i] + "!");
    }

    require_ok(co_await conn->query("LISTEN tls_direct", {}, in(5s)));
    require_ok(co_await sender->query("SELECT pg_notify('tls_direct', 'over tls')", {}, in(5s)));
    auto notes = co_await conn->wait_notifications(in(5s));
    require_ok(notes);
    REQUIRE(notes->size() == 1);
    CHECK(notes->front().payload == "over tls");
  });
}

// Why the tests below can fail: through the relay, plain libpq in non-blocking mode does end up
// with a reply incomplete, the socket quiet, and the rest of the reply decrypted inside OpenSSL.
// A client that waits on the socket then waits for nothing (until its deadline).
TEST_CASE("premise: through 16 KiB TLS records, reply bytes wait inside OpenSSL, not the socket",
          "[tls][stall]") {
  const std::string info = verify_full("SHARDURL_TLS_RELAY_PORT");
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdb(info.c_str()), &PQfinish);
  INFO(PQerrorMessage(conn.get()));
  REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
  REQUIRE(PQsetnonblocking(conn.get(), 1) == 0);
  auto* ssl = static_cast<SSL*>(PQsslStruct(conn.get(), "OpenSSL"));
  REQUIRE(ssl != nullptr);
  int stranded = 0;
  for (int q = 0; q < 20; ++q) {
    const std::string sql =
        "SELECT repeat('x', " + std::to_string(100 + 37 * q) + ") FROM generate_series(1, 500)";
    REQUIRE(PQsendQuery(conn.get(), sql.c_str()) == 1);
    while (PQflush(conn.get()) == 1) {
    }
    bool done = false;
    while (!done) {
      while (!done && PQisBusy(conn.get()) == 0) {
        PGresult* res = PQgetResult(conn.get());
        done = res == nullptr;
        PQclear(res);
      }
      if (done) break;
      pollfd pfd{PQsocket(conn.get()), POLLIN, 0};
      if (SSL_pending(ssl) > 0) {
        if (::poll(&pfd, 1, 0) == 0) ++stranded;  // readable only through OpenSSL
      } else {
        REQUIRE(::poll(&pfd, 1, 5000) == 1);
      }
      REQUIRE(PQconsumeInput(conn.get()) == 1);
    }
  }
  CHECK(stranded > 0);
}

TEST_CASE("large results through 16 KiB TLS records complete without waiting out the deadline",
          "[tls][stall]") {
  asio::io_context ioc;
  run(ioc, [&]() -> asio::awaitable<void> {
    auto conn = co_await Connection::connect(ioc.get_executor(),
                                             verify_full("SHARDURL_TLS_RELAY_PORT"), in(5s));
    require_ok(conn);
    auto slowest = Clock::duration::zero();
    for (int q = 0; q < 40; ++q) {
      const int rows = 50 + 53 * q;
      const int width = 20 + (131 * q) % 3000;
      const auto start = Clock::now();
      // Without the look into OpenSSL, some of these end as a timeout at the deadline.
      auto res =
          co_await conn->query("SELECT i, repeat('x', $2::int) FROM generate_series(1, $1::int) i",
                               params(std::to_string(rows), std::to_string(width)), in(3s));
      INFO("query " << q << ": " << rows << " rows of " << width << " bytes");
      require_ok(res);
      REQUIRE(res->rows() == rows);
      REQUIRE(res->get(rows - 1, 0) == std::to_string(rows));
      REQUIRE(res->get(rows - 1, 1).size() == static_cast<std::size_t>(width));
      slowest = std::max(slowest, Clock::now() - start);
    }
    // Each answer takes milliseconds; a stall is the deadline's 3 s.
    CHECK(slowest < 1500ms);
  });
}

TEST_CASE("pipelines of many small statements through 16 KiB TLS records never stall",
          "[tls][stall]") {
  asio::io_context ioc;
  run(ioc, [&]() -> asio::awaitable<void> {
    auto conn = co_await Connection::connect(ioc.get_executor(),
                                             verify_full("SHARDURL_TLS_RELAY_PORT"), in(5s));
    require_ok(conn);
    for (int round = 0; round < 12; ++round) {
      const int count = 150 + 173 * round;
      std::vector<std::string> text(count);
      std::vector<std::array<Param, 1>> args(count);
      std::vector<PipelineCall> calls;
      for (int i = 0; i < count; ++i) {
        text[i] = std::to_string(i);
        args[i][0] = text[i];
        calls.push_back(PipelineCall{{}, args[i], "SELECT $1::int * 2"});
      }
      auto piped = co_await conn->execute_pipeline(calls, in(3s));
      INFO("pipeline of " << count);
      require_ok(piped);
      REQUIRE(piped->size() == static_cast<std::size_t>(count));
      for (int i = 0; i < count; ++i) {
        require_ok((*piped)[i]);
        REQUIRE((*piped)[i]->get(0, 0) == std::to_string(2 * i));
      }
    }
  });
}

TEST_CASE("bursts of many small notifications through 16 KiB TLS records arrive whole",
          "[tls][stall]") {
  asio::io_context ioc;
  run(ioc, [&]() -> asio::awaitable<void> {
    auto listener = co_await Connection::connect(ioc.get_executor(),
                                                 verify_full("SHARDURL_TLS_RELAY_PORT"), in(5s));
    auto sender = co_await Connection::connect(ioc.get_executor(), verify_full(), in(5s));
    require_ok(listener);
    require_ok(sender);
    require_ok(co_await listener->query("LISTEN tls_burst", {}, in(5s)));
    for (int burst = 0; burst < 6; ++burst) {
      // One transaction: every notification at once, back to back in the same TLS records.
      const int count = 700 + 611 * burst;
      require_ok(co_await sender->query(
          "SELECT count(pg_notify('tls_burst', i::text || repeat('n', $2::int))) "
          "FROM generate_series(1, $1::int) i",
          params(std::to_string(count), std::to_string(burst * 7)), in(5s)));
      int got = 0;
      const auto give_up = in(3s);
      while (got < count) {
        auto notes = co_await listener->wait_notifications(give_up);
        INFO("burst " << burst << ": " << got << " of " << count);
        require_ok(notes);
        REQUIRE_FALSE(notes->empty());  // empty: the deadline passed with some still missing
        for (const auto& n : *notes) {
          REQUIRE(n.payload == std::to_string(++got) + std::string(burst * 7, 'n'));
        }
      }
    }
    // The session's own notifications come back with its reply, however many.
    auto echo = co_await listener->query(
        "SELECT count(pg_notify('tls_burst', 'own ' || i)) FROM generate_series(1, 3000) i", {},
        in(3s));
    require_ok(echo);
    auto own = listener->take_notifications();
    REQUIRE(own.size() == 3000U);
    CHECK(own.back().payload == "own 3000");
  });
}
