// The cluster as a running server sees it: a versioned ring of named shards, which a reshard
// replaces under it (docs/resharding.md). Immutable: workers share one by pointer and swap it
// when a newer version arrives, as Envoy swaps its per-worker snapshots (a post to each worker).
//
// Version 0 is the config file's ring. A reshard writes each newer version to every shard
// (shardurl_meta: ring_version and topology), as a config document that holds only `ring` and
// `shards`, with every password taken out of the connection strings: an instance connects with its
// own passwords (its config file's conninfo for a shard it knows by name, else libpq's
// environment and passfile).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config.hpp"
#include "ring/ring.hpp"

namespace shardurl {

class Topology {
 public:
  /// The ring of `config`'s shards at `version`.
  Topology(std::uint64_t version, const Config& config);

  [[nodiscard]] std::uint64_t version() const noexcept { return version_; }
  [[nodiscard]] const ring::Ring& ring() const noexcept { return ring_; }
  /// The shards in ring order, as this instance connects to them.
  [[nodiscard]] const std::vector<ShardConfig>& shards() const noexcept { return config_.shards; }
  [[nodiscard]] const Config& config() const noexcept { return config_; }

  /// Where each ring node's shard sits among the server's shards (Shards' slots), set once when
  /// the topology is installed; owner_of() needs it.
  void set_slots(std::vector<std::size_t> slots) { slots_ = std::move(slots); }
  /// The slot of the shard that owns `id`.
  [[nodiscard]] std::size_t owner_of(std::string_view id) const noexcept {
    return slots_[ring_.owner_of(id)];
  }
  [[nodiscard]] const ring::Node& node_of(std::string_view id) const noexcept {
    return ring_.node_of(id);
  }
  /// The node and the slot of the shard that owns `id`, with one ring lookup.
  struct Placement {
    const ring::Node& node;
    std::size_t slot;
  };
  [[nodiscard]] Placement place(std::string_view id) const noexcept {
    const std::size_t i = ring_.owner_of(id);
    return {ring_.nodes()[i], slots_[i]};
  }

  /// The document shards keep for this ring: {"ring": {...}, "shards": [...]}, passwords removed.
  [[nodiscard]] std::string to_json() const;

 private:
  std::uint64_t version_;
  Config config_;
  ring::Ring ring_;
  std::vector<std::size_t> slots_;
};

/// The ring and shards of a document written by Topology::to_json (or any config file), for
/// `version`, with the conninfo of every shard that `local` also names taken from `local`
/// (where this instance keeps its passwords). Throws ConfigError when the document is not one.
Topology topology_from_json(std::uint64_t version, std::string_view json, const Config& local);

/// `conninfo` without its secrets, `password` and `sslpassword` (key=value or URI form), for
/// metadata that other processes read and for messages; every other option (sslmode,
/// sslrootcert, sslcert, ...) is kept as written. Returns it unchanged when libpq cannot parse it.
std::string without_password(const std::string& conninfo);

}  // namespace shardurl
