#include "topology.hpp"

#include <libpq-fe.h>

#include <boost/json.hpp>

#include <memory>

namespace shardurl {
namespace json = boost::json;

namespace {

// libpq's own quoting for a keyword/value conninfo: values in single quotes, \ and ' escaped.
std::string quote_value(std::string_view value) {
  std::string out = "'";
  for (const char c : value) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

}  // namespace

std::string without_password(const std::string& conninfo) {
  char* error = nullptr;
  std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> options(
      PQconninfoParse(conninfo.c_str(), &error), &PQconninfoFree);
  if (error != nullptr) PQfreemem(error);
  if (!options) return conninfo;
  std::string out;
  for (const PQconninfoOption* o = options.get(); o->keyword != nullptr; ++o) {
    const std::string_view key = o->keyword;
    // sslpassword unlocks the client key (sslkey): as secret as the password itself.
    if (o->val == nullptr || key == "password" || key == "sslpassword") continue;
    if (!out.empty()) out += ' ';
    out += o->keyword;
    out += '=';
    out += quote_value(o->val);
  }
  return out;
}

Topology::Topology(std::uint64_t version, const Config& config)
    : version_(version), config_(config), ring_(make_ring(config)) {}

std::string Topology::to_json() const {
  json::array shards;
  for (const auto& s : config_.shards) {
    json::object shard{{"name", s.name},
                       {"conninfo", without_password(s.conninfo)},
                       {"weight", s.weight}};
    if (s.vnodes != 0) shard["vnodes"] = s.vnodes;
    if (s.pool_mode == PoolMode::transaction) shard["pool_mode"] = "transaction";
    if (!s.listen_conninfo.empty()) shard["listen_conninfo"] = without_password(s.listen_conninfo);
    if (!s.replication_conninfo.empty()) {
      shard["replication_conninfo"] = without_password(s.replication_conninfo);
    }
    shards.push_back(std::move(shard));
  }
  json::object ring{{"hash", ring::to_string(config_.hash)}};
  if (config_.vnodes != 0) ring["vnodes"] = config_.vnodes;
  return json::serialize(json::object{{"ring", std::move(ring)}, {"shards", std::move(shards)}});
}

Topology topology_from_json(std::uint64_t version, std::string_view text, const Config& local) {
  Config config = parse_config(text);
  // Everything but the ring itself is this instance's own.
  Config merged = local;
  merged.hash = config.hash;
  merged.vnodes = config.vnodes;
  merged.shards = config.shards;
  for (auto& shard : merged.shards) {
    for (const auto& mine : local.shards) {
      if (mine.name != shard.name) continue;
      shard.conninfo = mine.conninfo;
      shard.pool_mode = mine.pool_mode;
      shard.listen_conninfo = mine.listen_conninfo;
    }
  }
  return Topology(version, merged);
}

}  // namespace shardurl
