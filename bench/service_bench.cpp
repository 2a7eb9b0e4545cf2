// The pure functions on every request's hot path, in items per second:
//
//   ninja -C build service_bench && build/bench/service_bench
//
// - id_digest:      SHA-256 + base64url of the URL (every POST derives its candidate ids from it)
// - parse_target:   percent-decoding the request target into segments and query parameters
//                   (every request)
// - url_problem:    validating a URL with Boost.URL (every create)
// - server_json:    rendering the owning shard's uhashring node dict (every JSON link answer)
// - location_value: the Location header of a redirect (every GET /{id})
//
// Inputs are the shapes shardurl really sees: 7-character ids, URLs of 30-100 bytes, the
// tutorial's `POST /urls?full_url=...`. Each benchmark cycles through a few inputs so that the
// branch predictor cannot learn a single one. bench/run runs this binary and copies its items/s
// into docs/performance.md.
#include <benchmark/benchmark.h>

#include <array>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "request_target.hpp"
#include "ring/ring.hpp"
#include "routes.hpp"
#include "short_id.hpp"
#include "validation.hpp"

namespace {

// URLs of the lengths a shortener stores: short home pages up to a long tracking link.
const std::vector<std::string>& urls() {
  static const std::vector<std::string> u = {
      "https://www.postgresql.org/",
      "https://www.google.com/",
      "https://www.postgresql.org/docs/15/sql-insert.html#SQL-ON-CONFLICT",
      "https://github.com/boostorg/beast/blob/develop/include/boost/beast/http/parser.hpp",
      "https://example.com/shop/item?id=123456&utm_source=newsletter&utm_medium=email&utm_campaign=x",
      "http://192.168.1.20:8080/status",
      "https://de.wikipedia.org/wiki/Stra%C3%9Fe",
      "https://bench.example/4123/1/88812/530402911",
  };
  return u;
}

// Inputs that need work from location_value: non-ASCII, spaces, a stray '%' (rows the tutorial
// stored without validation).
const std::vector<std::string>& dirty_urls() {
  static const std::vector<std::string> u = {
      "https://de.wikipedia.org/wiki/Straße",
      "https://example.com/a b/c d?q=x y",
      "https://example.com/100%/off",
      "https://example.com/\"quoted\"/<tag>",
  };
  return u;
}

template <class F>
void cycle(benchmark::State& state, const std::vector<std::string>& inputs, F&& f) {
  std::size_t i = 0;
  std::size_t bytes = 0;
  for (auto _ : state) {
    const std::string& in = inputs[i];
    bytes += in.size();
    benchmark::DoNotOptimize(f(in));
    if (++i == inputs.size()) i = 0;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}

void BM_IdDigest(benchmark::State& state) {
  cycle(state, urls(), [](const std::string& url) { return shardurl::id_digest(url); });
}
BENCHMARK(BM_IdDigest);

// What GET /urls/{id} and GET /{id} decode: a short path, no query.
void BM_ParseTarget_GetId(benchmark::State& state) {
  static const std::vector<std::string> targets = {"/urls/cSZsgRV", "/urls/0OGWoMJ",
                                                   "/urls/ab%2Fcd", "/pgdocs", "/Xk3_-9a"};
  cycle(state, targets, [](const std::string& t) { return shardurl::parse_target(t).index(); });
}
BENCHMARK(BM_ParseTarget_GetId);

// The tutorial's create: the URL travels in the query, often percent-encoded.
void BM_ParseTarget_PostQuery(benchmark::State& state) {
  static const std::vector<std::string> targets = {
      "/urls?full_url=https://www.postgresql.org/",
      "/urls?full_url=https%3A%2F%2Fwww.postgresql.org%2Fdocs%2F15%2Fsql-insert.html",
      "/urls?full_url=https://bench.example/4123/1/88812/530402911",
      "/urls?full_url=https%3A%2F%2Fexample.com%2Fshop%2Fitem%3Fid%3D123456%26utm_source%3Dnews"};
  cycle(state, targets, [](const std::string& t) { return shardurl::parse_target(t).index(); });
}
BENCHMARK(BM_ParseTarget_PostQuery);

void BM_UrlProblem(benchmark::State& state) {
  cycle(state, urls(), [](const std::string& url) { return shardurl::url_problem(url); });
}
BENCHMARK(BM_UrlProblem);

// A refused URL costs no more than an accepted one (the early checks reject it).
void BM_UrlProblem_Refused(benchmark::State& state) {
  static const std::vector<std::string> bad = {"javascript:alert(1)", "example.com/x",
                                               "https://user:pw@bank.example/", "ftp://x.org/f",
                                               "https://evil.com\\.good.com/"};
  cycle(state, bad, [](const std::string& url) { return shardurl::url_problem(url); });
}
BENCHMARK(BM_UrlProblem_Refused);

void BM_ServerJson(benchmark::State& state) {
  const std::array<shardurl::ring::Node, 3> nodes = {
      shardurl::ring::Node{"5432", 1, 160}, shardurl::ring::Node{"5433", 1, 160},
      shardurl::ring::Node{"5434", 2, 160}};
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(shardurl::server_json(nodes[i]));
    if (++i == nodes.size()) i = 0;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_ServerJson);

// The common case: a validated URL, returned byte for byte.
void BM_LocationValue_Clean(benchmark::State& state) {
  cycle(state, urls(), [](const std::string& url) { return shardurl::location_value(url); });
}
BENCHMARK(BM_LocationValue_Clean);

void BM_LocationValue_Dirty(benchmark::State& state) {
  cycle(state, dirty_urls(), [](const std::string& url) { return shardurl::location_value(url); });
}
BENCHMARK(BM_LocationValue_Dirty);

}  // namespace

BENCHMARK_MAIN();
