// The ring against uhashring's own answers (test/vectors/ring_vectors.json, made by generate.py),
// and the property that makes a ring worth having: a new shard takes keys only for itself.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "ring/ring.hpp"

namespace json = boost::json;
using shardurl::ring::Hash;
using shardurl::ring::NodeSpec;
using shardurl::ring::Position;
using shardurl::ring::Ring;

namespace {

json::value load_vectors() {
  std::ifstream in(SHARDURL_RING_VECTORS);
  REQUIRE(in);
  std::stringstream text;
  text << in.rdbuf();
  return json::parse(text.str());
}

Ring ring_of(const json::object& c) {
  std::vector<NodeSpec> nodes;
  for (const auto& n : c.at("nodes").as_array()) {
    const auto& o = n.as_object();
    NodeSpec spec{std::string(o.at("name").as_string())};
    if (const auto* w = o.if_contains("weight")) spec.weight = static_cast<int>(w->as_int64());
    if (const auto* v = o.if_contains("vnodes")) spec.vnodes = static_cast<int>(v->as_int64());
    nodes.push_back(std::move(spec));
  }
  const auto hash = *shardurl::ring::parse_hash(c.at("hash").as_string());
  const auto* vnodes = c.if_contains("vnodes");
  return Ring(std::move(nodes), hash, vnodes ? static_cast<int>(vnodes->as_int64()) : 0);
}

std::vector<std::string> sample_keys(std::size_t count) {
  std::vector<std::string> keys;
  keys.reserve(count);
  for (std::size_t i = 0; i < count; ++i) keys.push_back("key-" + std::to_string(i * 7919));
  return keys;
}

std::vector<NodeSpec> named(int count, int first = 0) {
  std::vector<NodeSpec> nodes;
  for (int i = first; i < first + count; ++i) nodes.push_back({"shard-" + std::to_string(i)});
  return nodes;
}

}  // namespace

TEST_CASE("every key lands where uhashring puts it") {
  const auto doc = load_vectors();
  const auto& cases = doc.at("cases").as_array();
  REQUIRE(cases.size() >= 30);
  std::size_t checked = 0;
  for (const auto& value : cases) {
    const auto& c = value.as_object();
    INFO("ring: " << c.at("title").as_string());
    const Ring ring = ring_of(c);
    CHECK(ring.points().size() == static_cast<std::size_t>(c.at("point_count").as_int64()));
    const auto& keys = c.at("keys").as_array();
    const auto& owners = c.at("owners").as_array();
    REQUIRE(keys.size() == owners.size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const std::string_view key = keys[i].as_string();
      INFO("key #" << i << " (" << key.size() << " bytes)");
      REQUIRE(ring.node_of(key).name == std::string_view(owners[i].as_string()));
      ++checked;
    }
    // What the tutorial's JSON shows as "server": uhashring's node dict.
    for (const auto& [name, server] : c.at("servers").as_object()) {
      const auto& s = server.as_object();
      const auto& nodes = ring.nodes();
      const auto it = std::find_if(nodes.begin(), nodes.end(),
                                   [&](const auto& n) { return n.name == std::string_view(name); });
      REQUIRE(it != nodes.end());
      CHECK(it->vnodes == s.at("vnodes").as_int64());
      CHECK(it->weight == s.at("weight").as_int64());
    }
  }
  CHECK(checked > 5000);
}

TEST_CASE("a point written by two labels belongs to the node written last") {
  const auto doc = load_vectors();
  std::size_t collisions = 0;
  for (const auto& value : doc.at("cases").as_array()) {
    const auto& c = value.as_object();
    const Ring ring = ring_of(c);
    for (const auto& collision : c.at("collisions").as_array()) {
      const auto& o = collision.as_object();
      const auto position = std::stoull(std::string(o.at("position").as_string()));
      // Just below the point, the owner is whoever owns the point itself.
      const auto owner = ring.owner_at(Position{0, position - 1});
      CHECK(ring.nodes()[owner].name == std::string_view(o.at("owner").as_string()));
      ++collisions;
    }
  }
  CHECK(collisions >= 1);  // the vectors include a ketama ring large enough to collide
}

TEST_CASE("adding a shard moves keys only onto the new shard, about 1/(n+1) of them") {
  const auto keys = sample_keys(20000);
  for (const Hash hash : {Hash::md5, Hash::ketama}) {
    for (int n = 1; n <= 8; ++n) {
      INFO(shardurl::ring::to_string(hash) << " ring of " << n);
      const Ring before(named(n), hash);
      const Ring after(named(n + 1), hash);
      const std::string newcomer = "shard-" + std::to_string(n);
      std::size_t moved = 0;
      for (const auto& key : keys) {
        const auto& was = before.node_of(key).name;
        const auto& now = after.node_of(key).name;
        if (was != now) {
          REQUIRE(now == newcomer);
          ++moved;
        }
      }
      const double share = static_cast<double>(moved) / static_cast<double>(keys.size());
      const double expected = 1.0 / (n + 1);
      CHECK(share > expected * 0.6);
      CHECK(share < expected * 1.4);
    }
  }
}

TEST_CASE("removing a shard moves only that shard's keys") {
  const auto keys = sample_keys(20000);
  for (const Hash hash : {Hash::md5, Hash::ketama}) {
    const Ring full(named(6), hash);
    for (int gone = 0; gone < 6; ++gone) {
      auto rest = named(6);
      rest.erase(rest.begin() + gone);
      const Ring smaller(std::move(rest), hash);
      const std::string removed = "shard-" + std::to_string(gone);
      for (const auto& key : keys) {
        const auto& was = full.node_of(key).name;
        if (was != removed) REQUIRE(smaller.node_of(key).name == was);
      }
    }
  }
}

TEST_CASE("weight multiplies a node's share") {
  const Ring ring({{"light", 1}, {"heavy", 3}});
  std::size_t heavy = 0;
  const auto keys = sample_keys(20000);
  for (const auto& key : keys) heavy += ring.node_of(key).name == "heavy";
  const double share = static_cast<double>(heavy) / static_cast<double>(keys.size());
  CHECK(share > 0.65);
  CHECK(share < 0.85);
  CHECK(ring.points().size() == 160 * 4);
}

TEST_CASE("invalid rings are refused") {
  using Catch::Matchers::Contains;
  CHECK_THROWS_WITH(Ring({}), Contains("at least one node"));
  CHECK_THROWS_WITH(Ring({{"a"}, {"a"}}), Contains("duplicate"));
  CHECK_THROWS_WITH(Ring({{""}}), Contains("empty"));
  CHECK_THROWS_WITH(Ring({{"a", 0}}), Contains("weight"));
  CHECK_THROWS_WITH(Ring({{"a", -2}}), Contains("weight"));
  CHECK_THROWS_WITH(Ring({{"a", 1, -1}}), Contains("vnodes"));
  CHECK_THROWS_WITH(Ring({{"a", 1000, 100000}}), Contains("limit"));
}

TEST_CASE("hash names") {
  CHECK(shardurl::ring::parse_hash("md5") == Hash::md5);
  CHECK(shardurl::ring::parse_hash("ketama") == Hash::ketama);
  CHECK_FALSE(shardurl::ring::parse_hash("MD5"));
  CHECK_FALSE(shardurl::ring::parse_hash("sha1"));
  CHECK(shardurl::ring::default_vnodes(Hash::md5) == 160);
  CHECK(shardurl::ring::default_vnodes(Hash::ketama) == 40);
}

TEST_CASE("moves: adding a node moves keys only onto it, about its share, as sampling shows") {
  for (const Hash hash : {Hash::md5, Hash::ketama}) {
    const Ring three({{"5432", 1, 0}, {"5433", 1, 0}, {"5434", 1, 0}}, hash);
    const Ring four({{"5432", 1, 0}, {"5433", 1, 0}, {"5434", 1, 0}, {"5435", 1, 0}}, hash);
    const auto moved = shardurl::ring::moves(three, four);
    REQUIRE(moved.size() == 3);
    double total = 0;
    for (const auto& m : moved) {
      CHECK(m.to == "5435");
      total += m.share;
    }
    CHECK(total == Approx(0.25).margin(0.06));
    // The prediction is the share of positions: 200,000 keys move in the same proportions.
    std::map<std::pair<std::string, std::string>, int> sampled;
    const int keys = 200000;
    for (int i = 0; i < keys; ++i) {
      const std::string key = "k" + std::to_string(i);
      const auto& a = three.node_of(key).name;
      const auto& b = four.node_of(key).name;
      if (a != b) ++sampled[{a, b}];
    }
    for (const auto& m : moved) {
      INFO(shardurl::ring::to_string(hash) << " " << m.from << " -> " << m.to);
      CHECK(static_cast<double>(sampled[{m.from, m.to}]) / keys == Approx(m.share).margin(0.005));
    }
    CHECK(sampled.size() == moved.size());
  }
}

TEST_CASE("moves: removing a node moves only its keys; the same ring moves nothing") {
  const Ring four({{"a", 1, 0}, {"b", 2, 0}, {"c", 1, 0}, {"d", 1, 0}});
  const Ring three({{"a", 1, 0}, {"b", 2, 0}, {"d", 1, 0}});
  double total = 0;
  for (const auto& m : shardurl::ring::moves(four, three)) {
    CHECK(m.from == "c");
    total += m.share;
  }
  CHECK(total == Approx(0.2).margin(0.05));
  CHECK(shardurl::ring::moves(four, four).empty());
  CHECK_THROWS_AS(shardurl::ring::moves(four, Ring({{"a", 1, 0}}, Hash::ketama)),
                  std::invalid_argument);
}
