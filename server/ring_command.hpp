// `shardurl ring`: the operator's "where does this key live" tool.
#pragma once

#include <iosfwd>

#include "ring/ring.hpp"

namespace shardurl {

/// Reads keys one per line from `in` (a line ends at '\n'; every other byte, '\r' included, is
/// part of the key) and writes `key<TAB>shard-name` for each, in order. Streams: memory stays
/// constant however many keys arrive, and output is flushed whenever input would block, so an
/// interactive caller sees each answer at once.
void print_owners(const ring::Ring& ring, std::istream& in, std::ostream& out);

}  // namespace shardurl
