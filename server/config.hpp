// The service's configuration file: one JSON document shared by `shardurl serve` and `shardurl
// ring`.
//
//   {"listen": "127.0.0.1:5001",
//    "ring": {"hash": "md5", "vnodes": 160},
//    "shards": [{"name": "5432", "conninfo": "host=127.0.0.1 port=5432 user=postgres
//    dbname=postgres",
//                "weight": 1, "vnodes": 160}]}
//
// Every field but `shards` is optional; docs/configuration.md lists the defaults. Parsing is
// strict: an unknown field, a wrong type or an out-of-range value is an error that names the field,
// so a typo can never silently fall back to a default.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "ring/ring.hpp"

namespace shardurl {

struct ShardConfig {
  std::string name;
  std::string conninfo;  // libpq connection string; empty when the file gave none
  int weight = 1;
  int vnodes = 0;  // 0: the ring's default
};

struct Config {
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 5001;
  ring::Hash hash = ring::Hash::md5;
  int vnodes = 0;  // 0: uhashring's default for `hash` (160 md5, 40 ketama)
  std::vector<ShardConfig> shards;
};

/// A configuration the service cannot use. `field` is a path such as `shards[1].weight`.
class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string field, const std::string& message)
      : std::runtime_error(field.empty() ? message : field + ": " + message),
        field_(std::move(field)) {}
  [[nodiscard]] const std::string& field() const noexcept { return field_; }

 private:
  std::string field_;
};

/// The configuration used when no --config is given: the tutorial's cluster, three local shards
/// named "5432", "5433" and "5434" on those ports, serving on 127.0.0.1:5001.
inline constexpr std::string_view default_config_json = R"({
  "listen": "127.0.0.1:5001",
  "ring": {"hash": "md5", "vnodes": 160},
  "shards": [
    {"name": "5432", "conninfo": "host=127.0.0.1 port=5432 user=postgres dbname=postgres"},
    {"name": "5433", "conninfo": "host=127.0.0.1 port=5433 user=postgres dbname=postgres"},
    {"name": "5434", "conninfo": "host=127.0.0.1 port=5434 user=postgres dbname=postgres"}]})";

/// Parses and validates a configuration document. Throws ConfigError.
Config parse_config(std::string_view json_text);

/// Reads and parses the file at `path`. Throws ConfigError; the caller names the file.
Config load_config(const std::string& path);

/// The ring the configuration describes, its nodes in the order of `shards`.
ring::Ring make_ring(const Config& config);

}  // namespace shardurl
