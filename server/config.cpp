#include "config.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <map>
#include <sstream>

namespace shardurl {
namespace json = boost::json;
namespace {

constexpr std::int64_t max_weight = 1'000'000;
constexpr std::int64_t max_vnodes = 1'000'000;

const json::object& as_object(const json::value& v, const std::string& field) {
  if (!v.is_object()) throw ConfigError(field, "must be an object");
  return v.get_object();
}

void reject_unknown(const json::object& obj, const std::string& field,
                    std::initializer_list<std::string_view> known) {
  for (const auto& [key, value] : obj) {
    if (std::find(known.begin(), known.end(), std::string_view(key)) == known.end()) {
      const std::string where = field.empty() ? std::string(key) : field + "." + std::string(key);
      throw ConfigError(where, "unknown field");
    }
  }
}

std::string string_field(const json::value& v, const std::string& field) {
  if (!v.is_string()) throw ConfigError(field, "must be a string");
  return std::string(v.get_string());
}

int int_field(const json::value& v, const std::string& field, std::int64_t min, std::int64_t max) {
  const auto n = v.if_int64();
  const auto u = v.if_uint64();
  const std::string range =
      "must be a whole number from " + std::to_string(min) + " to " + std::to_string(max);
  if (n == nullptr && u == nullptr) throw ConfigError(field, range);
  if (u != nullptr ? *u > static_cast<std::uint64_t>(max) : (*n < min || *n > max)) {
    throw ConfigError(field, range);
  }
  return static_cast<int>(u != nullptr ? static_cast<std::int64_t>(*u) : *n);
}

bool has_control_character(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

void parse_listen(const json::value& v, Config& config) {
  const std::string text = string_field(v, "listen");
  const auto colon = text.rfind(':');
  const std::string usage = "must be HOST:PORT, such as 127.0.0.1:5001 or [::1]:5001";
  if (colon == std::string::npos || colon == 0) throw ConfigError("listen", usage);
  std::string host = text.substr(0, colon);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') throw ConfigError("listen", usage);
    host = host.substr(1, host.size() - 2);
  }
  unsigned port = 0;
  const char* first = text.data() + colon + 1;
  const char* last = text.data() + text.size();
  const auto [end, ec] = std::from_chars(first, last, port);
  if (ec != std::errc{} || end != last || first == last || port == 0 || port > 65535) {
    throw ConfigError("listen", usage);
  }
  if (host == "localhost") host = "127.0.0.1";
  boost::system::error_code bad_address;
  boost::asio::ip::make_address(host, bad_address);
  if (bad_address) {
    throw ConfigError("listen", "HOST must be an IP address or localhost (no name lookups)");
  }
  config.listen_host = std::move(host);
  config.listen_port = static_cast<std::uint16_t>(port);
}

void parse_ring(const json::value& v, Config& config) {
  const auto& obj = as_object(v, "ring");
  reject_unknown(obj, "ring", {"hash", "vnodes"});
  if (const auto* hash = obj.if_contains("hash")) {
    const auto parsed = ring::parse_hash(string_field(*hash, "ring.hash"));
    if (!parsed) throw ConfigError("ring.hash", "must be \"md5\" or \"ketama\"");
    config.hash = *parsed;
  }
  if (const auto* vnodes = obj.if_contains("vnodes")) {
    config.vnodes = int_field(*vnodes, "ring.vnodes", 1, max_vnodes);
  }
}

void parse_shards(const json::value& v, Config& config) {
  if (!v.is_array()) throw ConfigError("shards", "must be an array of shard objects");
  const auto& array = v.get_array();
  if (array.empty()) throw ConfigError("shards", "must name at least one shard");
  std::map<std::string, std::size_t> seen;
  for (std::size_t i = 0; i < array.size(); ++i) {
    const std::string at = "shards[" + std::to_string(i) + "]";
    const auto& obj = as_object(array[i], at);
    reject_unknown(obj, at,
                   {"name", "conninfo", "weight", "vnodes", "pool_mode", "listen_conninfo",
                    "replication_conninfo"});
    ShardConfig shard;
    const auto* name = obj.if_contains("name");
    if (name == nullptr) throw ConfigError(at + ".name", "missing");
    shard.name = string_field(*name, at + ".name");
    if (shard.name.empty()) throw ConfigError(at + ".name", "must not be empty");
    if (has_control_character(shard.name)) {
      throw ConfigError(at + ".name", "must not contain control characters");
    }
    if (const auto [it, fresh] = seen.emplace(shard.name, i); !fresh) {
      throw ConfigError(at + ".name", "duplicate shard name \"" + shard.name + "\" (also shards[" +
                                          std::to_string(it->second) + "])");
    }
    if (const auto* conninfo = obj.if_contains("conninfo")) {
      shard.conninfo = string_field(*conninfo, at + ".conninfo");
    }
    if (const auto* weight = obj.if_contains("weight")) {
      shard.weight = int_field(*weight, at + ".weight", 1, max_weight);
    }
    if (const auto* vnodes = obj.if_contains("vnodes")) {
      shard.vnodes = int_field(*vnodes, at + ".vnodes", 1, max_vnodes);
    }
    if (const auto* mode = obj.if_contains("pool_mode")) {
      const std::string text = string_field(*mode, at + ".pool_mode");
      if (text == "session") {
        shard.pool_mode = PoolMode::session;
      } else if (text == "transaction") {
        shard.pool_mode = PoolMode::transaction;
      } else {
        throw ConfigError(at + ".pool_mode", "must be \"session\" or \"transaction\"");
      }
    }
    if (const auto* listen = obj.if_contains("listen_conninfo")) {
      shard.listen_conninfo = string_field(*listen, at + ".listen_conninfo");
    }
    if (const auto* peer = obj.if_contains("replication_conninfo")) {
      shard.replication_conninfo = string_field(*peer, at + ".replication_conninfo");
    }
    config.shards.push_back(std::move(shard));
  }
}

void parse_api_keys(const json::value& v, Config& config) {
  if (!v.is_array()) throw ConfigError("api_keys", "must be an array of strings");
  const auto& array = v.get_array();
  for (std::size_t i = 0; i < array.size(); ++i) {
    const std::string at = "api_keys[" + std::to_string(i) + "]";
    std::string key = string_field(array[i], at);
    if (key.size() < 16) throw ConfigError(at, "must be at least 16 characters");
    if (has_control_character(key)) throw ConfigError(at, "must not contain control characters");
    config.api_keys.push_back(std::move(key));
  }
}

void parse_http(const json::value& v, Config& config) {
  const auto& obj = as_object(v, "http");
  reject_unknown(obj, "http",
                 {"max_connections", "header_limit_bytes", "body_limit_bytes", "read_timeout_ms"});
  auto& http = config.http;
  if (const auto* n = obj.if_contains("max_connections")) {
    http.max_connections =
        static_cast<std::size_t>(int_field(*n, "http.max_connections", 1, 1'000'000));
  }
  if (const auto* n = obj.if_contains("header_limit_bytes")) {
    http.header_limit_bytes =
        static_cast<std::size_t>(int_field(*n, "http.header_limit_bytes", 1024, 1 << 20));
  }
  if (const auto* n = obj.if_contains("body_limit_bytes")) {
    http.body_limit_bytes =
        static_cast<std::size_t>(int_field(*n, "http.body_limit_bytes", 1024, 16 << 20));
  }
  if (const auto* n = obj.if_contains("read_timeout_ms")) {
    http.read_timeout_ms =
        static_cast<std::uint32_t>(int_field(*n, "http.read_timeout_ms", 100, 3'600'000));
  }
}

void parse_tls(const json::value& v, TlsConfig& tls) {
  const auto& obj = as_object(v, "tls");
  reject_unknown(obj, "tls", {"cert_file", "key_file"});
  for (const auto& [key, out] : {std::pair{"cert_file", &tls.cert_file},
                                 std::pair{"key_file", &tls.key_file}}) {
    const auto* file = obj.if_contains(key);
    if (file == nullptr) {
      throw ConfigError(std::string("tls.") + key, "missing: HTTPS needs both cert_file and key_file");
    }
    *out = string_field(*file, std::string("tls.") + key);
    if (out->empty()) throw ConfigError(std::string("tls.") + key, "must not be empty");
  }
}

// Fills `out` from `obj[key]` when present: a whole number within [min, max].
template <class T>
void optional_int(const json::object& obj, const std::string& parent, std::string_view key, T& out,
                  std::int64_t min, std::int64_t max) {
  if (const auto* v = obj.if_contains(key)) {
    out = static_cast<T>(int_field(*v, parent + "." + std::string(key), min, max));
  }
}

void parse_timeouts(const json::value& v, TimeoutConfig& t) {
  const auto& obj = as_object(v, "timeouts");
  reject_unknown(obj, "timeouts",
                 {"request_ms", "connect_ms", "query_ms", "pool_wait_ms", "shutdown_ms"});
  optional_int(obj, "timeouts", "request_ms", t.request_ms, 10, 600'000);
  optional_int(obj, "timeouts", "connect_ms", t.connect_ms, 10, 600'000);
  optional_int(obj, "timeouts", "query_ms", t.query_ms, 10, 600'000);
  optional_int(obj, "timeouts", "pool_wait_ms", t.pool_wait_ms, 0, 600'000);
  optional_int(obj, "timeouts", "shutdown_ms", t.shutdown_ms, 0, 600'000);
}

void parse_pool(const json::value& v, PoolSettings& p) {
  const auto& obj = as_object(v, "pool");
  reject_unknown(obj, "pool", {"size", "max_waiters", "max_batch"});
  optional_int(obj, "pool", "size", p.size, 1, 1000);
  optional_int(obj, "pool", "max_waiters", p.max_waiters, 0, 1'000'000);
  optional_int(obj, "pool", "max_batch", p.max_batch, 1, 10'000);
}

void parse_health(const json::value& v, HealthConfig& h) {
  const auto& obj = as_object(v, "health");
  reject_unknown(obj, "health", {"interval_up_ms", "interval_down_ms"});
  optional_int(obj, "health", "interval_up_ms", h.interval_up_ms, 10, 600'000);
  optional_int(obj, "health", "interval_down_ms", h.interval_down_ms, 10, 600'000);
}

void parse_log(const json::value& v, log::Settings& settings) {
  const auto& obj = as_object(v, "log");
  reject_unknown(obj, "log", {"format", "access"});
  if (const auto* format = obj.if_contains("format")) {
    const std::string text = string_field(*format, "log.format");
    if (text == "text") {
      settings.format = log::Format::text;
    } else if (text == "json") {
      settings.format = log::Format::json;
    } else {
      throw ConfigError("log.format", "must be \"text\" or \"json\"");
    }
  }
  if (const auto* access = obj.if_contains("access")) {
    if (!access->is_bool()) throw ConfigError("log.access", "must be true or false");
    settings.access = access->get_bool();
  }
}

// "line L, column C" of a byte offset, for syntax errors a person can find.
std::string location(std::string_view text, std::size_t offset) {
  offset = std::min(offset, text.size());
  const auto line = 1 + std::count(text.begin(), text.begin() + static_cast<long>(offset), '\n');
  const auto line_start = text.rfind('\n', offset == 0 ? 0 : offset - 1);
  const auto column =
      offset - (line_start == std::string_view::npos || offset == 0 ? 0 : line_start + 1) + 1;
  return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

}  // namespace

Config parse_config(std::string_view json_text) {
  json::stream_parser parser;
  boost::system::error_code ec;
  const std::size_t consumed = parser.write(json_text.data(), json_text.size(), ec);
  if (!ec) parser.finish(ec);
  if (ec) {
    throw ConfigError("",
                      "not valid JSON at " + location(json_text, consumed) + ": " + ec.message());
  }
  const json::value doc = parser.release();
  const auto& root = as_object(doc, "");
  reject_unknown(root, "",
                 {"listen", "ring", "shards", "redirect_status", "max_url_length", "api_keys",
                  "http", "tls", "timeouts", "pool", "health", "cache", "workers", "log"});

  Config config;
  if (const auto* listen = root.if_contains("listen")) parse_listen(*listen, config);
  if (const auto* ring = root.if_contains("ring")) parse_ring(*ring, config);
  const auto* shards = root.if_contains("shards");
  if (shards == nullptr) throw ConfigError("shards", "missing: the config must list the shards");
  parse_shards(*shards, config);
  if (const auto* status = root.if_contains("redirect_status")) {
    const int code = int_field(*status, "redirect_status", 301, 308);
    if (code != 301 && code != 302 && code != 307 && code != 308) {
      throw ConfigError("redirect_status", "must be 301, 302, 307 or 308");
    }
    config.redirect_status = static_cast<unsigned>(code);
  }
  if (const auto* length = root.if_contains("max_url_length")) {
    config.max_url_length =
        static_cast<std::size_t>(int_field(*length, "max_url_length", 16, 1 << 20));
  }
  if (const auto* keys = root.if_contains("api_keys")) parse_api_keys(*keys, config);
  if (const auto* http = root.if_contains("http")) parse_http(*http, config);
  if (const auto* tls = root.if_contains("tls")) parse_tls(*tls, config.tls);
  if (const auto* workers = root.if_contains("workers")) {
    config.workers = static_cast<unsigned>(int_field(*workers, "workers", 0, 256));
  }
  if (const auto* t = root.if_contains("timeouts")) parse_timeouts(*t, config.timeouts);
  if (const auto* p = root.if_contains("pool")) parse_pool(*p, config.pool);
  if (const auto* h = root.if_contains("health")) parse_health(*h, config.health);
  if (const auto* c = root.if_contains("cache")) {
    const auto& obj = as_object(*c, "cache");
    reject_unknown(obj, "cache", {"entries", "ttl_s"});
    optional_int(obj, "cache", "entries", config.cache.entries, 0, 100'000'000);
    optional_int(obj, "cache", "ttl_s", config.cache.ttl_s, 1, 86'400);
  }
  if (const auto* l = root.if_contains("log")) parse_log(*l, config.log);
  try {
    (void)make_ring(config);  // the ring's own limits, such as its total number of points
  } catch (const std::invalid_argument& e) {
    throw ConfigError("shards", e.what());
  }
  return config;
}

Config load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError("", "cannot open the file: " + std::string(std::strerror(errno)));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ConfigError("", "cannot read the file");
  return parse_config(text.str());
}

ring::Ring make_ring(const Config& config) {
  std::vector<ring::NodeSpec> nodes;
  nodes.reserve(config.shards.size());
  for (const auto& s : config.shards) nodes.push_back({s.name, s.weight, s.vnodes});
  return ring::Ring(std::move(nodes), config.hash, config.vnodes);
}

}  // namespace shardurl
