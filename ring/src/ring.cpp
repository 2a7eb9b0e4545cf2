#include "ring/ring.hpp"

#include "md5.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <utility>

namespace shardurl::ring {
namespace {

using detail::Digest;
using detail::md5;

std::uint64_t big_endian64(const unsigned char* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

std::uint32_t little_endian32(const unsigned char* p) noexcept {
  return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 |
         std::uint32_t{p[3]} << 24;
}

Position md5_position(const Digest& d) noexcept {
  return {big_endian64(d.data()), big_endian64(d.data() + 8)};
}

Position ketama_position(const Digest& d, int word) noexcept {
  return {0, little_endian32(d.data() + 4 * word)};
}

struct Labelled {
  Position position;
  std::uint32_t owner;
};

std::string label(const std::string& name, long long i) {
  return name + '-' + std::to_string(i);
}

void check_budget(std::size_t points) {
  if (points > max_points) {
    throw std::invalid_argument("ring would have " + std::to_string(points) +
                                " points, more than the limit of " + std::to_string(max_points) +
                                " (lower vnodes or weight)");
  }
}

// Emits every point in the order uhashring writes them: node by node, label by label.
std::vector<Labelled> md5_points(const std::vector<Node>& nodes) {
  std::size_t total = 0;
  for (const auto& n : nodes) total += static_cast<std::size_t>(n.vnodes) * n.weight;
  check_budget(total);
  std::vector<Labelled> points;
  points.reserve(total);
  for (std::uint32_t owner = 0; owner < nodes.size(); ++owner) {
    const Node& n = nodes[owner];
    const long long labels = static_cast<long long>(n.vnodes) * n.weight;
    for (long long i = 0; i < labels; ++i) {
      points.push_back({md5_position(md5(label(n.name, i))), owner});
    }
  }
  return points;
}

std::vector<Labelled> ketama_points(const std::vector<Node>& nodes) {
  long long weight_sum = 0;
  for (const auto& n : nodes) weight_sum += n.weight;
  const auto node_count = static_cast<long long>(nodes.size());
  auto labels_of = [&](const Node& n) {
    return static_cast<long long>(n.vnodes) * node_count * n.weight / weight_sum;
  };
  std::size_t total = 0;
  for (const auto& n : nodes) total += 4 * static_cast<std::size_t>(labels_of(n));
  check_budget(total);
  std::vector<Labelled> points;
  points.reserve(total);
  for (std::uint32_t owner = 0; owner < nodes.size(); ++owner) {
    const Node& n = nodes[owner];
    const long long labels = labels_of(n);
    for (long long i = 0; i < labels; ++i) {
      const Digest d = md5(label(n.name, i));
      for (int word = 0; word < 4; ++word) points.push_back({ketama_position(d, word), owner});
    }
  }
  return points;
}

std::vector<Node> resolve(std::vector<NodeSpec> specs, Hash hash, int default_vnodes_per_node) {
  if (specs.empty()) throw std::invalid_argument("a ring needs at least one node");
  if (default_vnodes_per_node < 0) throw std::invalid_argument("vnodes must be at least 1");
  const int fallback_vnodes =
      default_vnodes_per_node == 0 ? default_vnodes(hash) : default_vnodes_per_node;
  std::unordered_set<std::string_view> seen;
  std::vector<Node> nodes;
  nodes.reserve(specs.size());
  for (auto& spec : specs) {
    if (spec.name.empty()) throw std::invalid_argument("a node name must not be empty");
    if (spec.weight < 1) throw std::invalid_argument("node " + spec.name + ": weight must be >= 1");
    if (spec.vnodes < 0) throw std::invalid_argument("node " + spec.name + ": vnodes must be >= 1");
    nodes.push_back(
        {std::move(spec.name), spec.weight, spec.vnodes == 0 ? fallback_vnodes : spec.vnodes});
  }
  for (const auto& n : nodes) {
    if (!seen.insert(n.name).second) throw std::invalid_argument("duplicate node name " + n.name);
  }
  return nodes;
}

}  // namespace

std::optional<Hash> parse_hash(std::string_view name) noexcept {
  if (name == "md5") return Hash::md5;
  if (name == "ketama") return Hash::ketama;
  return std::nullopt;
}

std::string_view to_string(Hash hash) noexcept {
  return hash == Hash::md5 ? "md5" : "ketama";
}

int default_vnodes(Hash hash) noexcept {
  return hash == Hash::md5 ? 160 : 40;
}

Ring::Ring(std::vector<NodeSpec> nodes, Hash hash, int default_vnodes_per_node)
    : hash_(hash), nodes_(resolve(std::move(nodes), hash, default_vnodes_per_node)) {
  std::vector<Labelled> all = hash_ == Hash::md5 ? md5_points(nodes_) : ketama_points(nodes_);
  // uhashring keeps its points in a dict, so a label that lands on an existing point replaces
  // its owner: after a stable sort, the last of each run of equal positions is the one that wins.
  std::stable_sort(all.begin(), all.end(),
                   [](const Labelled& a, const Labelled& b) { return a.position < b.position; });
  points_.reserve(all.size());
  owners_.reserve(all.size());
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (i + 1 < all.size() && all[i + 1].position == all[i].position) continue;
    points_.push_back(all[i].position);
    owners_.push_back(all[i].owner);
  }
}

Position Ring::position_of(std::string_view key) const noexcept {
  const Digest d = md5(key);
  return hash_ == Hash::md5 ? md5_position(d) : ketama_position(d, 0);
}

std::size_t Ring::owner_at(Position position) const noexcept {
  const auto it = std::upper_bound(points_.begin(), points_.end(), position);
  return owners_[it == points_.end() ? 0 : static_cast<std::size_t>(it - points_.begin())];
}

std::size_t Ring::owner_of(std::string_view key) const noexcept {
  return owner_at(position_of(key));
}

namespace {

// A position as a number of the key space, for measuring shares (long double keeps 64 bits of
// mantissa: plenty for a share).
long double as_number(Position p) noexcept {
  return static_cast<long double>(p.hi) * 18446744073709551616.0L + static_cast<long double>(p.lo);
}

}  // namespace

std::vector<Move> moves(const Ring& from, const Ring& to) {
  if (from.hash() != to.hash()) {
    throw std::invalid_argument("the rings use different hashes (" +
                                std::string(to_string(from.hash())) + ", " +
                                std::string(to_string(to.hash())) + "): their positions differ");
  }
  // Every point of either ring bounds a stretch on which both owners are constant: on
  // [b[i], b[i+1]) a ring's owner is the one of its first point above b[i], owner_at(b[i]).
  std::vector<Position> bounds(from.points().begin(), from.points().end());
  bounds.insert(bounds.end(), to.points().begin(), to.points().end());
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  const long double space =
      from.hash() == Hash::md5 ? 340282366920938463463374607431768211456.0L : 4294967296.0L;
  std::map<std::pair<std::string, std::string>, long double> moved;
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    // The last stretch wraps round to the first bound.
    const long double length = i + 1 < bounds.size()
                                   ? as_number(bounds[i + 1]) - as_number(bounds[i])
                                   : space - as_number(bounds[i]) + as_number(bounds.front());
    const auto& a = from.nodes()[from.owner_at(bounds[i])].name;
    const auto& b = to.nodes()[to.owner_at(bounds[i])].name;
    if (a != b) moved[{a, b}] += length;
  }
  std::vector<Move> out;
  for (const auto& [pair, length] : moved) {
    out.push_back(Move{pair.first, pair.second, static_cast<double>(length / space)});
  }
  return out;
}

std::string position_bytes(Position position, Hash hash) {
  std::string out;
  const auto put = [&out](std::uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xff);
  };
  if (hash == Hash::md5) {
    put(position.hi, 8);
    put(position.lo, 8);
  } else {
    put(position.lo, 4);
  }
  return out;
}

}  // namespace shardurl::ring
