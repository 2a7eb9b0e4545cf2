// The consistent-hash ring that maps every short id to the shard that stores it.
//
// Why a ring: with `hash(key) % n`, adding an (n+1)th shard moves almost every key. A ring gives
// each shard many points ("virtual nodes") on a circle of hash values; a key belongs to the first
// point after its own hash. Adding a shard only takes over the arcs in front of its new points, so
// about 1/(n+1) of the keys move, and they all move onto the new shard.
//
// Compatibility is the whole contract: a Ring places every key on exactly the node that Python's
// uhashring 2.x (`HashRing(nodes=...)`) picks for the same node names, weights and vnodes, in both
// of its modes, so rows written by the tutorial app stay reachable:
//
//   Hash::md5 (uhashring's default)
//     A node has vnodes * weight points (vnodes defaults to 160). Point i of node N is
//     MD5("N-i") read as one 128-bit big-endian integer; a key's position is MD5(key) likewise.
//   Hash::ketama (uhashring's `hash_fn="ketama"`)
//     A node has vnodes * nodes * weight / total_weight labels (integer division; vnodes defaults
//     to 40). Each label "N-i" yields four points, the four little-endian 32-bit words of its MD5;
//     a key's position is the first such word of MD5(key).
//   In both: the owner is the first point strictly greater than the key's position, wrapping to
//   the first point; when two labels land on the same point, the node written last (the later one
//   in the node list) owns it. Keys and names are hashed as their bytes (UTF-8 text, any length,
//   the empty string included).
//
// A Ring is immutable after construction and safe to share between threads without locking.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace shardurl::ring {

enum class Hash { md5, ketama };

/// "md5" or "ketama"; std::nullopt for anything else.
std::optional<Hash> parse_hash(std::string_view name) noexcept;
std::string_view to_string(Hash hash) noexcept;

/// uhashring's default vnodes per node: 160 for md5, 40 for ketama.
int default_vnodes(Hash hash) noexcept;

/// The most points one ring may hold (bounds memory and build time: about 20 bytes a point).
inline constexpr std::size_t max_points = std::size_t{1} << 24;

/// A position on the ring. md5 uses all 128 bits (hi holds the most significant half); ketama
/// positions are 32-bit and live in `lo` with `hi` zero, so one ordering serves both modes.
struct Position {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
  friend constexpr auto operator<=>(const Position&, const Position&) = default;
};

/// One node as configured. `vnodes` 0 means the ring's default.
struct NodeSpec {
  std::string name;
  int weight = 1;
  int vnodes = 0;
};

/// One node of a built ring, with its settings resolved. `vnodes` and `weight` are what uhashring
/// reports in its node dict (`{"hostname": name, ..., "vnodes": V, "weight": W}`).
struct Node {
  std::string name;
  int weight = 1;
  int vnodes = 0;
};

class Ring {
 public:
  /// Builds the ring once. Throws std::invalid_argument when `nodes` is empty, a name is empty or
  /// repeated, a weight or vnodes is below 1 (vnodes 0 in a NodeSpec means "the default"), or the
  /// ring would exceed max_points. `default_vnodes_per_node` 0 means uhashring's default for
  /// `hash`.
  explicit Ring(std::vector<NodeSpec> nodes, Hash hash = Hash::md5,
                int default_vnodes_per_node = 0);

  /// Index into nodes() of the node that owns `key`. O(log points); allocates nothing.
  [[nodiscard]] std::size_t owner_of(std::string_view key) const noexcept;

  /// The node that owns `key`.
  [[nodiscard]] const Node& node_of(std::string_view key) const noexcept {
    return nodes_[owner_of(key)];
  }

  /// The ring position of `key` under this ring's hash.
  [[nodiscard]] Position position_of(std::string_view key) const noexcept;

  /// The owner of a position already computed with position_of().
  [[nodiscard]] std::size_t owner_at(Position position) const noexcept;

  [[nodiscard]] std::span<const Node> nodes() const noexcept { return nodes_; }
  [[nodiscard]] Hash hash() const noexcept { return hash_; }

  /// The distinct points, sorted ascending; owners()[i] owns points()[i].
  [[nodiscard]] std::span<const Position> points() const noexcept { return points_; }
  [[nodiscard]] std::span<const std::uint32_t> owners() const noexcept { return owners_; }

 private:
  Hash hash_;
  std::vector<Node> nodes_;
  std::vector<Position> points_;
  std::vector<std::uint32_t> owners_;
};

/// A share of the key space that changes owner between two rings of the same hash: what
/// `from.node_of(key)` and `to.node_of(key)` are, by name, for that share of all positions.
struct Move {
  std::string from;  // a node name of the first ring
  std::string to;    // a node name of the second ring (another name: a key that stays is no Move)
  double share = 0;  // of all positions, 0 < share <= 1
};

/// Every (from, to) pair of node names whose owner differs between `from` and `to`, with the
/// share of positions that moves: the ring's own prediction of which keys a change of nodes,
/// weights or vnodes moves, and of how many. Sorted by (from, to). Both rings must use the same
/// Hash (their positions are different numbers otherwise): throws std::invalid_argument if not.
std::vector<Move> moves(const Ring& from, const Ring& to);

/// The big-endian bytes of a position as the ring orders it: 16 for md5 (hi then lo), 4 for ketama
/// (the 32-bit word). Comparing these byte strings (memcmp) orders positions as the ring does.
std::string position_bytes(Position position, Hash hash);

}  // namespace shardurl::ring
