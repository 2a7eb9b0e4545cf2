#include "short_id.hpp"

#include <openssl/evp.h>

#include <array>
#include <stdexcept>

namespace shardurl {
namespace {

using Sha256 = std::array<unsigned char, 32>;

Sha256 sha256(std::string_view bytes) {
  Sha256 out{};
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), out.data(), &len, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("OpenSSL SHA-256 failed");
  }
  return out;
}

std::string base64(const Sha256& digest, std::string_view alphabet) {
  std::string out;
  out.reserve(44);
  std::size_t i = 0;
  for (; i + 3 <= digest.size(); i += 3) {
    const unsigned v = digest[i] << 16 | digest[i + 1] << 8 | digest[i + 2];
    for (int shift = 18; shift >= 0; shift -= 6) out += alphabet[(v >> shift) & 63];
  }
  // 32 = 30 + 2: two bytes remain, giving three characters.
  const unsigned v = digest[i] << 16 | digest[i + 1] << 8;
  for (int shift = 18; shift >= 6; shift -= 6) out += alphabet[(v >> shift) & 63];
  return out;
}

constexpr std::string_view base64_standard =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view base64_url =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

}  // namespace

std::string id_digest(std::string_view url) {
  return base64(sha256(url), base64_url);
}

std::string tutorial_id(std::string_view url) {
  return base64(sha256(url), base64_standard).substr(0, 5);
}

}  // namespace shardurl
