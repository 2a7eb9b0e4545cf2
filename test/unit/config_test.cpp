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

TEST_CASE("every section of the service's config parses, with documented defaults") {
  const auto defaults = parse_config(R"({"shards": [{"name": "a"}]})");
  CHECK(defaults.redirect_status == 302);
  CHECK(defaults.max_url_length == 2048);
  CHECK(defaults.api_keys.empty());
  CHECK(defaults.http.max_connections == 10000);
  CHECK(defaults.http.read_timeout_ms == 10000);
  CHECK(defaults.timeouts.connect_ms == 1000);
  CHECK(defaults.timeouts.query_ms == 2000);
  CHECK(defaults.timeouts.pool_wait_ms == 1000);
  CHECK(defaults.timeouts.shutdown_ms == 10000);
  CHECK(defaults.pool.size == 1);
  CHECK(defaults.pool.max_waiters == 256);
  CHECK(defaults.pool.max_batch == 64);
  CHECK(defaults.health.interval_up_ms == 1000);
  CHECK(defaults.health.interval_down_ms == 200);
  CHECK(defaults.cache.entries == 100000);
  CHECK(defaults.cache.ttl_s == 60);
  CHECK(defaults.log.format == shardurl::log::Format::text);
  CHECK_FALSE(defaults.log.access);

  const auto c = parse_config(R"({"shards": [{"name": "a"}], "redirect_status": 308,
    "max_url_length": 4096, "api_keys": ["0123456789abcdef"],
    "http": {"max_connections": 5, "header_limit_bytes": 4096, "body_limit_bytes": 2048,
             "read_timeout_ms": 500},
    "timeouts": {"connect_ms": 100, "query_ms": 200, "pool_wait_ms": 0, "shutdown_ms": 300},
    "pool": {"size": 2, "max_waiters": 3, "max_batch": 5},
    "health": {"interval_up_ms": 400, "interval_down_ms": 50},
    "cache": {"entries": 0, "ttl_s": 5}, "log": {"format": "json", "access": true}})");
  CHECK(c.redirect_status == 308);
  CHECK(c.max_url_length == 4096);
  CHECK(c.api_keys.size() == 1);
  CHECK(c.http.max_connections == 5);
  CHECK(c.http.header_limit_bytes == 4096);
  CHECK(c.http.body_limit_bytes == 2048);
  CHECK(c.http.read_timeout_ms == 500);
  CHECK(c.timeouts.connect_ms == 100);
  CHECK(c.timeouts.query_ms == 200);
  CHECK(c.timeouts.pool_wait_ms == 0);
  CHECK(c.timeouts.shutdown_ms == 300);
  CHECK(c.pool.size == 2);
  CHECK(c.pool.max_waiters == 3);
  CHECK(c.pool.max_batch == 5);
  CHECK(c.health.interval_up_ms == 400);
  CHECK(c.health.interval_down_ms == 50);
  CHECK(c.cache.entries == 0);
  CHECK(c.cache.ttl_s == 5);
  CHECK(c.log.format == shardurl::log::Format::json);
  CHECK(c.log.access);
  const auto text = parse_config(R"({"shards": [{"name": "a"}], "log": {"format": "text"}})");
  CHECK(text.log.format == shardurl::log::Format::text);
  CHECK_FALSE(text.log.access);
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
  CHECK(field_of(R"({"shards": [{"name": "a"}], "redirect_status": 303})") == "redirect_status");
  CHECK(field_of(R"({"shards": [{"name": "a"}], "api_keys": ["short"]})") == "api_keys[0]");
  CHECK(field_of(R"({"shards": [{"name": "a"}], "http": {"max_conns": 1}})") == "http.max_conns");
  CHECK(field_of(R"({"shards": [{"name": "a"}], "timeouts": {"query_ms": 0}})") ==
        "timeouts.query_ms");
  CHECK(field_of(R"({"shards": [{"name": "a"}], "pool": {"size": 0}})") == "pool.size");
  CHECK(field_of(R"({"shards": [{"name": "a"}], "pool": {"max_batch": 0}})") == "pool.max_batch");
  CHECK(field_of(R"({"shards": [{"name": "a"}], "health": {"every": 1}})") == "health.every");
  CHECK(field_of(R"({"shards": [{"name": "a"}], "cache": {"ttl_s": 0}})") == "cache.ttl_s");
  CHECK(field_of(R"({"shards": [{"name": "a"}], "log": "json"})") == "log");
  CHECK(field_of(R"({"shards": [{"name": "a"}], "log": {"format": "yaml"}})") == "log.format");
  CHECK(field_of(R"({"shards": [{"name": "a"}], "log": {"format": "JSON"}})") == "log.format");
  CHECK(field_of(R"({"shards": [{"name": "a"}], "log": {"access": "yes"}})") == "log.access");
  CHECK(field_of(R"({"shards": [{"name": "a"}], "log": {"access": 1}})") == "log.access");
  CHECK(field_of(R"({"shards": [{"name": "a"}], "log": {"level": "info"}})") == "log.level");
}

TEST_CASE("messages say what is wrong, in one line") {
  using Catch::Matchers::Contains;
  CHECK_THAT(message_of(R"({"shards": [{"name": "a"}, {"name": "a"}]})"),
             Contains("duplicate shard name \"a\"") && Contains("shards[0]"));
  CHECK_THAT(message_of(R"({"shards": [{"name": "a", "weight": 0}]})"),
             Contains("shards[0].weight: must be a whole number from 1"));
  CHECK_THAT(message_of(R"({"ring": {"hash": "crc"}, "shards": [{"name": "a"}]})"),
             Contains("md5") && Contains("ketama"));
  CHECK(message_of(R"({"shards": [{"name": "a"}], "log": {"format": "yaml"}})") ==
        R"(log.format: must be "text" or "json")");
  const auto syntax = message_of("{\"shards\": [\n  {\"name\": \"a\",}]}");
  CHECK_THAT(syntax, Contains("not valid JSON at line 2"));
  CHECK(syntax.find('\n') == std::string::npos);
}

TEST_CASE("tls: both files or none") {
  const auto config = parse_config(
      R"({"tls": {"cert_file": "/etc/shardurl/cert.pem", "key_file": "/etc/shardurl/key.pem"},
          "shards": [{"name": "a"}]})");
  CHECK(config.tls.enabled());
  CHECK(config.tls.cert_file == "/etc/shardurl/cert.pem");
  CHECK(config.tls.key_file == "/etc/shardurl/key.pem");
  CHECK_FALSE(parse_config(R"({"shards": [{"name": "a"}]})").tls.enabled());
  CHECK(field_of(R"({"tls": {"cert_file": "c"}, "shards": [{"name": "a"}]})") == "tls.key_file");
  CHECK(field_of(R"({"tls": {"key_file": "k"}, "shards": [{"name": "a"}]})") == "tls.cert_file");
  CHECK(field_of(R"({"tls": {"cert_file": "", "key_file": "k"}, "shards": [{"name": "a"}]})") ==
        "tls.cert_file");
  CHECK(field_of(R"({"tls": {"cert_file": 1, "key_file": "k"}, "shards": [{"name": "a"}]})") ==
        "tls.cert_file");
  CHECK(field_of(R"({"tls": {"cert_file": "c", "key_file": "k", "ca_file": "x"},
                     "shards": [{"name": "a"}]})") == "tls.ca_file");
  CHECK(field_of(R"({"tls": true, "shards": [{"name": "a"}]})") == "tls");
}
