// The configuration file: defaults, and an error that names the field for every way it can be
// wrong.
#include <catch2/catch.hpp>

#include <string>

#include "config.hpp"

using shardurl::ConfigError;
using shardurl::parse_config;

namespace {

std::string field_of(const std::string& text) {
  try {
    parse_config(text);
  } catch (const ConfigError& e) {
    return e.field();
  }
  return "(no error)";
}

std::string message_of(const std::string& text) {
  try {
    parse_config(text);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("the documented example parses, with uhashring's defaults") {
  const auto config = parse_config(R"({"listen": "127.0.0.1:5001",
    "ring": {"hash": "md5", "vnodes": 160},
    "shards": [{"name": "5432", "conninfo": "host=127.0.0.1 port=5432 user=postgres dbname=postgres",
                "weight": 1, "vnodes": 160}]})");
  CHECK(config.listen_host == "127.0.0.1");
  CHECK(config.listen_port == 5001);
  REQUIRE(config.shards.size() == 1);
  CHECK(config.shards[0].conninfo.starts_with("host=127.0.0.1"));

  const auto minimal = parse_config(R"({"shards": [{"name": "a"}, {"name": "b", "weight": 2}]})");
  CHECK(minimal.hash == shardurl::ring::Hash::md5);
  CHECK(minimal.listen_port == 5001);
  const auto ring = shardurl::make_ring(minimal);
  CHECK(ring.nodes()[0].vnodes == 160);
  CHECK(ring.nodes()[1].weight == 2);

  const auto ketama = parse_config(R"({"ring": {"hash": "ketama"}, "shards": [{"name": "a"}]})");
  CHECK(shardurl::make_ring(ketama).nodes()[0].vnodes == 40);

  const auto v6 = parse_config(R"({"listen": "[::1]:8080", "shards": [{"name": "a"}]})");
  CHECK(v6.listen_host == "::1");
  CHECK(v6.listen_port == 8080);
}

TEST_CASE("each mistake names its field") {
  CHECK(field_of(R"({})") == "shards");
  CHECK(field_of(R"({"shards": []})") == "shards");
  CHECK(field_of(R"({"shards": {}})") == "shards");
  CHECK(field_of(R"({"shards": [{"weight": 1}]})") == "shards[0].name");
  CHECK(field_of(R"({"shards": [{"name": ""}]})") == "shards[0].name");
  CHECK(field_of(R"({"shards": [{"name": 5432}]})") == "shards[0].name");
  CHECK(field_of(R"({"shards": [{"name": "a\tb"}]})") == "shards[0].name");
  CHECK(field_of(R"({"shards": [{"name": "a"}, {"name": "a"}]})") == "shards[1].name");
  CHECK(field_of(R"({"shards": [{"name": "a", "weight": 0}]})") == "shards[0].weight");
  CHECK(field_of(R"({"shards": [{"name": "a", "weight": -1}]})") == "shards[0].weight");
  CHECK(field_of(R"({"shards": [{"name": "a", "weight": 1.5}]})") == "shards[0].weight");
  CHECK(field_of(R"({"shards": [{"name": "a", "weight": "2"}]})") == "shards[0].weight");
  CHECK(field_of(R"({"shards": [{"name": "a", "vnodes": 0}]})") == "shards[0].vnodes");
  CHECK(field_of(R"({"shards": [{"name": "a", "wieght": 2}]})") == "shards[0].wieght");
  CHECK(field_of(R"({"shards": [{"name": "a", "conninfo": 1}]})") == "shards[0].conninfo");
  CHECK(field_of(R"({"ring": {"hash": "sha1"}, "shards": [{"name": "a"}]})") == "ring.hash");
  CHECK(field_of(R"({"ring": {"vnodes": -3}, "shards": [{"name": "a"}]})") == "ring.vnodes");
  CHECK(field_of(R"({"ring": [], "shards": [{"name": "a"}]})") == "ring");
  CHECK(field_of(R"({"listen": "5001", "shards": [{"name": "a"}]})") == "listen");
  CHECK(field_of(R"({"listen": "127.0.0.1:70000", "shards": [{"name": "a"}]})") == "listen");
  CHECK(field_of(R"({"listen": "127.0.0.1:", "shards": [{"name": "a"}]})") == "listen");
  CHECK(field_of(R"({"shard": []})") == "shard");
  CHECK(field_of(R"({"shards": [{"name": "a", "weight": 1000, "vnodes": 100000}]})") == "shards");
  CHECK(field_of(R"([1, 2])") == "");
}

TEST_CASE("messages say what is wrong, in one line") {
  using Catch::Matchers::Contains;
  CHECK_THAT(message_of(R"({"shards": [{"name": "a"}, {"name": "a"}]})"),
             Contains("duplicate shard name \"a\"") && Contains("shards[0]"));
  CHECK_THAT(message_of(R"({"shards": [{"name": "a", "weight": 0}]})"),
             Contains("shards[0].weight: must be a whole number from 1"));
  CHECK_THAT(message_of(R"({"ring": {"hash": "crc"}, "shards": [{"name": "a"}]})"),
             Contains("md5") && Contains("ketama"));
  const auto syntax = message_of("{\"shards\": [\n  {\"name\": \"a\",}]}");
  CHECK_THAT(syntax, Contains("not valid JSON at line 2"));
  CHECK(syntax.find('\n') == std::string::npos);
}
