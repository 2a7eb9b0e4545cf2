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

#include "log.hpp"
#include "ring/ring.hpp"

namespace shardurl {

/// What sits between shardurl and a shard's PostgreSQL, as PgBouncer names its modes.
enum class PoolMode {
  session,      // PostgreSQL itself, or a pooler that keeps a server session per client session
  transaction,  // a pooler that may hand each transaction another server session: shardurl keeps
                // no session state (unnamed statements; LISTEN needs listen_conninfo)
};

struct ShardConfig {
  std::string name;
  std::string conninfo;  // libpq connection string; empty when the file gave none
  int weight = 1;
  int vnodes = 0;  // 0: the ring's default
  PoolMode pool_mode = PoolMode::session;
  // Where to LISTEN for other instances' changes to this shard's links; empty: `conninfo`, unless
  // pool_mode is transaction (LISTEN cannot work through transaction pooling).
  std::string listen_conninfo;
  // How the other shards reach this one, for `shardurl reshard`'s logical replication (straight
  // to PostgreSQL, as its servers see it); empty: `conninfo`.
  std::string replication_conninfo;
};

/// How the HTTP server protects itself from slow, silent or greedy clients.
struct HttpConfig {
  std::size_t max_connections = 10000;  // more are closed at once (also capped by RLIMIT_NOFILE)
  std::size_t header_limit_bytes = 8 * 1024;  // request line and headers; more is 431
  std::size_t body_limit_bytes = 64 * 1024;   // more is 413
  std::uint32_t read_timeout_ms =
      10000;  // to receive one whole request, or to sit idle between two
};

/// Deadlines for talking to shards, and for shutting down. docs/operations.md explains each.
struct TimeoutConfig {
  // The whole of one request's work on the shards: waiting in a statement queue, every statement,
  // every retry and every candidate id. A request still waiting then answers 504.
  std::uint32_t request_ms = 2000;
  std::uint32_t connect_ms = 1000;    // opening a session (TCP + startup + auth)
  std::uint32_t query_ms = 2000;      // one statement, from sending it to its last result
  std::uint32_t pool_wait_ms = 1000;  // waiting for a pooled connection when all are busy
  std::uint32_t shutdown_ms = 10000;  // SIGTERM: how long requests in flight may take to finish
};

/// One pool per shard (and per worker thread, when there are several).
struct PoolSettings {
  // Sessions per shard, each carrying one pipeline at a time. Fewer sessions make bigger batches:
  // on one machine with the shards, 1 is fastest (see docs/performance.md).
  std::size_t size = 1;
  std::size_t max_waiters = 256;  // requests queued for a session; more get 503 at once
  std::size_t max_batch = 64;     // statements sent in one pipeline (one round trip, one commit)
};

struct HealthConfig {
  std::uint32_t interval_up_ms = 1000;   // probe period of a healthy shard
  std::uint32_t interval_down_ms = 200;  // probe period of a down shard (bounds recovery time)
};

/// The in-process id -> URL cache for reads and redirects (per worker thread).
struct CacheConfig {
  std::size_t entries = 100000;  // 0 turns the cache off
  std::uint32_t ttl_s = 60;  // bounds how long a delete made through another instance can go unseen
};

/// HTTPS for the listener: both files set, or neither (plain HTTP).
struct TlsConfig {
  std::string cert_file;  // PEM: the server's certificate, then any intermediates
  std::string key_file;   // PEM: its private key, unencrypted
  [[nodiscard]] bool enabled() const noexcept { return !cert_file.empty(); }
};

struct Config {
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 5001;
  ring::Hash hash = ring::Hash::md5;
  int vnodes = 0;  // 0: uhashring's default for `hash` (160 md5, 40 ketama)
  std::vector<ShardConfig> shards;
  // Event loops, one thread each, each with its own shard sessions and cache. 0: one per core.
  unsigned workers = 0;
  unsigned redirect_status = 302;     // GET /{id}: 301, 302, 307 or 308
  std::size_t max_url_length = 2048;  // longer URLs are refused with 422
  std::vector<std::string> api_keys;  // for DELETE; also SHARDURL_API_KEYS (comma-separated)
  HttpConfig http;
  TlsConfig tls;
  TimeoutConfig timeouts;
  PoolSettings pool;
  HealthConfig health;
  CacheConfig cache;
  // "log": {"format": "text" | "json", "access": false | true}
  log::Settings log;
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
