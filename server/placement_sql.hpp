// Which rows a ring gives to a node, as SQL that PostgreSQL evaluates on its own rows: the same
// placement as ring::Ring::owner_of, so that a publication's row filter, a count or a DELETE on a
// shard selects exactly the keys the ring puts on a node (test/integration/placement_pgtest.cpp
// checks both against each other on random rings, in both hashes).
//
// The SQL uses only built-in immutable functions and constants, as a PostgreSQL 15 publication's
// row filter requires: a key's position is md5() of it, as bytes (bytea orders like the ring's
// big-endian numbers); width_bucket() finds, by binary search over the ring's sorted points,
// how many points are at or below it, which names the point that owns it (the first one strictly
// above it, wrapping round).
#pragma once

#include <string>
#include <string_view>

#include "ring/ring.hpp"

namespace shardurl {

/// The position of `column` (a text or varchar expression) on a ring of `hash`, as bytea:
///   md5:    decode(md5(c), 'hex')                       (16 bytes, the 128-bit big-endian number)
///   ketama: the first 4 bytes of md5(c) reversed        (the little-endian 32-bit word, big-endian)
std::string position_sql(ring::Hash hash, std::string_view column);

/// A boolean SQL expression, true for the rows whose `column` the ring `ring` places on its node
/// `node` (an index into ring.nodes()); false for every other row. Its size grows with the ring's
/// points (about 40 bytes a point). Assumes standard_conforming_strings (PostgreSQL's default).
std::string owned_by_sql(const ring::Ring& ring, std::size_t node,
                         std::string_view column = "url_id");

}  // namespace shardurl
