// Ring lookups per second, against the floor: std::upper_bound over the same sorted points.
//
//   ninja -C build ring_bench && build/bench/ring_bench
//
// owner_of = position_of (MD5 of the key) + owner_at (the binary search). BM_UpperBoundFloor is
// owner_at's work done by hand on a plain vector, so owner_at / floor is the ring's own overhead,
// and position_of shows what the hash costs on top.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <string>
#include <vector>

#include "ring/ring.hpp"

namespace {

using shardurl::ring::Hash;
using shardurl::ring::Position;
using shardurl::ring::Ring;

Ring make_ring(Hash hash, int shards) {
  std::vector<shardurl::ring::NodeSpec> nodes;
  for (int i = 0; i < shards; ++i) nodes.push_back({std::to_string(5432 + i)});
  return Ring(std::move(nodes), hash);
}

// Seven-character ids, the shape shardurl mints.
const std::vector<std::string>& keys() {
  static const std::vector<std::string> k = [] {
    std::vector<std::string> out;
    const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned state = 12345;
    for (int i = 0; i < 4096; ++i) {
      std::string id;
      for (int j = 0; j < 7; ++j) {
        state = state * 1103515245u + 12345u;
        id += alphabet[(state >> 16) % alphabet.size()];
      }
      out.push_back(id);
    }
    return out;
  }();
  return k;
}

std::vector<Position> positions(const Ring& ring) {
  std::vector<Position> out;
  for (const auto& k : keys()) out.push_back(ring.position_of(k));
  return out;
}

void BM_OwnerOf(benchmark::State& state) {
  const Ring ring = make_ring(static_cast<Hash>(state.range(0)), static_cast<int>(state.range(1)));
  const auto& k = keys();
  std::size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(ring.owner_of(k[i++ & 4095]));
  state.SetItemsProcessed(state.iterations());
}

void BM_PositionOf(benchmark::State& state) {
  const Ring ring = make_ring(static_cast<Hash>(state.range(0)), static_cast<int>(state.range(1)));
  const auto& k = keys();
  std::size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(ring.position_of(k[i++ & 4095]));
  state.SetItemsProcessed(state.iterations());
}

void BM_OwnerAt(benchmark::State& state) {
  const Ring ring = make_ring(static_cast<Hash>(state.range(0)), static_cast<int>(state.range(1)));
  const auto p = positions(ring);
  std::size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(ring.owner_at(p[i++ & 4095]));
  state.SetItemsProcessed(state.iterations());
}

void BM_UpperBoundFloor(benchmark::State& state) {
  const Ring ring = make_ring(static_cast<Hash>(state.range(0)), static_cast<int>(state.range(1)));
  const std::vector<Position> points(ring.points().begin(), ring.points().end());
  const std::vector<std::uint32_t> owners(ring.owners().begin(), ring.owners().end());
  const auto p = positions(ring);
  std::size_t i = 0;
  for (auto _ : state) {
    const auto it = std::upper_bound(points.begin(), points.end(), p[i++ & 4095]);
    benchmark::DoNotOptimize(owners[it == points.end() ? 0 : it - points.begin()]);
  }
  state.SetItemsProcessed(state.iterations());
}

// {hash, shards}: the tutorial's 3 shards and a 12-shard ring, in both modes.
void rings(benchmark::internal::Benchmark* b) {
  for (int hash : {0, 1}) {
    for (int shards : {3, 12}) b->Args({hash, shards});
  }
  b->ArgNames({"ketama", "shards"});
}

BENCHMARK(BM_OwnerOf)->Apply(rings);
BENCHMARK(BM_PositionOf)->Apply(rings);
BENCHMARK(BM_OwnerAt)->Apply(rings);
BENCHMARK(BM_UpperBoundFloor)->Apply(rings);

}  // namespace

BENCHMARK_MAIN();
