// MD5 (RFC 1321), for placing keys on the ring: not for security, only for agreeing with
// uhashring bit for bit. The ring has its own because owner_of() must not allocate, and OpenSSL 3's
// EVP interface allocates a fresh provider context on every EVP_DigestInit (one allocation per
// lookup, measured by test/unit/ring_alloc_test.cpp). test/unit/md5_test.cpp checks it against EVP.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace shardurl::ring::detail {

using Digest = std::array<unsigned char, 16>;

Digest md5(std::string_view bytes) noexcept;

}  // namespace shardurl::ring::detail
