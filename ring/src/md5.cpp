#include "md5.hpp"

#include <bit>
#include <cstring>
#include <utility>

namespace shardurl::ring::detail {
namespace {

constexpr std::array<std::uint32_t, 64> sines = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391};

constexpr std::array<int, 64> shifts = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                                        5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                                        4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                                        6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};

std::uint32_t load_le32(const unsigned char* p) noexcept {
  return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 |
         std::uint32_t{p[3]} << 24;
}

// One step: a = b + rotl(a + f(b, c, d) + sine + message word, shift), then rotate the registers.
template <int I>
void step(std::uint32_t& a, std::uint32_t& b, std::uint32_t& c, std::uint32_t& d,
          const std::array<std::uint32_t, 16>& m) noexcept {
  std::uint32_t f = 0;
  int g = 0;
  if constexpr (I < 16) {
    f = (b & c) | (~b & d);
    g = I;
  } else if constexpr (I < 32) {
    f = (d & b) | (~d & c);
    g = (5 * I + 1) % 16;
  } else if constexpr (I < 48) {
    f = b ^ c ^ d;
    g = (3 * I + 5) % 16;
  } else {
    f = c ^ (b | ~d);
    g = (7 * I) % 16;
  }
  const std::uint32_t rotated = std::rotl(a + f + sines[I] + m[g], shifts[I]);
  a = d;
  d = c;
  c = b;
  b += rotated;
}

template <std::size_t... I>
void rounds(std::array<std::uint32_t, 4>& state, const std::array<std::uint32_t, 16>& m,
            std::index_sequence<I...>) noexcept {
  auto [a, b, c, d] = state;
  (step<static_cast<int>(I)>(a, b, c, d, m), ...);
  state[0] += a;
  state[1] += b;
  state[2] += c;
  state[3] += d;
}

void compress(std::array<std::uint32_t, 4>& state, const unsigned char* block) noexcept {
  std::array<std::uint32_t, 16> m{};
  for (int i = 0; i < 16; ++i) m[i] = load_le32(block + 4 * i);
  // Fully unrolled at compile time: each step's round function and word index are constants.
  rounds(state, m, std::make_index_sequence<64>{});
}

}  // namespace

Digest md5(std::string_view bytes) noexcept {
  std::array<std::uint32_t, 4> state = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  std::size_t remaining = bytes.size();
  for (; remaining >= 64; remaining -= 64, data += 64) compress(state, data);

  // The tail, a 0x80 byte, zeros, and the message length in bits: one or two final blocks.
  std::array<unsigned char, 128> tail{};
  if (remaining > 0) std::memcpy(tail.data(), data, remaining);
  tail[remaining] = 0x80;
  const std::size_t tail_size = remaining < 56 ? 64 : 128;
  std::uint64_t bits = static_cast<std::uint64_t>(bytes.size()) * 8;
  for (std::size_t i = 0; i < 8; ++i)
    tail[tail_size - 8 + i] = static_cast<unsigned char>(bits >> (8 * i));
  compress(state, tail.data());
  if (tail_size == 128) compress(state, tail.data() + 64);

  Digest out{};
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) out[4 * i + j] = static_cast<unsigned char>(state[i] >> (8 * j));
  }
  return out;
}

}  // namespace shardurl::ring::detail
