#include "placement_sql.hpp"

namespace shardurl {
namespace {

void append_hex(std::string& out, std::string_view bytes) {
  constexpr char digits[] = "0123456789abcdef";
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out += digits[b >> 4];
    out += digits[b & 15];
  }
}

}  // namespace

std::string position_sql(ring::Hash hash, std::string_view column) {
  const std::string digest = "md5(" + std::string(column) + ")";
  if (hash == ring::Hash::md5) return "decode(" + digest + ", 'hex')";
  // Byte i of the digest is hex characters 2i+1 and 2i+2; the word is bytes 3, 2, 1, 0.
  std::string out = "decode(";
  for (const int start : {7, 5, 3, 1}) {
    if (start != 7) out += " || ";
    out += "substr(" + digest + ", " + std::to_string(start) + ", 2)";
  }
  out += ", 'hex')";
  return out;
}

std::string owned_by_sql(const ring::Ring& ring, std::size_t node, std::string_view column) {
  const auto points = ring.points();
  const auto owners = ring.owners();
  // width_bucket(pos, p) is k when p[k-1] <= pos < p[k] (0 below p[0], n at or above p[n-1]);
  // the owner is the first point strictly above pos: p[k], or p[0] when k is n (wrapping round).
  std::string buckets;
  for (std::size_t k = 0; k <= points.size(); ++k) {
    const std::size_t point = k == points.size() ? 0 : k;
    if (owners[point] != node) continue;
    if (!buckets.empty()) buckets += ',';
    buckets += std::to_string(k);
  }
  if (buckets.empty()) return "false";
  std::string out = "width_bucket(" + position_sql(ring.hash(), column) + ", ARRAY[";
  for (std::size_t i = 0; i < points.size(); ++i) {
    if (i != 0) out += ',';
    out += "'\\x";
    append_hex(out, ring::position_bytes(points[i], ring.hash()));
    out += '\'';
  }
  out += "]::bytea[]) = ANY ('{" + buckets + "}'::int[])";
  return out;
}

}  // namespace shardurl
