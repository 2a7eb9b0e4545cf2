#include "ring_command.hpp"

#include <istream>
#include <ostream>
#include <string>

namespace shardurl {

void print_owners(const ring::Ring& ring, std::istream& in, std::ostream& out) {
  std::string key;
  std::string batch;
  constexpr std::size_t flush_at = 64 * 1024;
  while (std::getline(in, key)) {
    batch.append(key).append(1, '\t').append(ring.node_of(key).name).append(1, '\n');
    if (batch.size() >= flush_at || in.rdbuf()->in_avail() <= 0) {
      out.write(batch.data(), static_cast<std::streamsize>(batch.size())).flush();
      batch.clear();
    }
  }
  out.write(batch.data(), static_cast<std::streamsize>(batch.size())).flush();
}

}  // namespace shardurl
