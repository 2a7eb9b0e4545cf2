#include "api_keys.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

namespace shardurl {
namespace {

std::array<unsigned char, 32> digest(std::string_view key) noexcept {
  std::array<unsigned char, 32> out{};
  unsigned int len = 0;
  EVP_Digest(key.data(), key.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

}  // namespace

ApiKeys::ApiKeys(const std::vector<std::string>& keys) {
  for (const auto& key : keys) digests_.push_back(digest(key));
}

std::vector<std::string> ApiKeys::parse_list(std::string_view comma_separated) {
  std::vector<std::string> keys;
  while (!comma_separated.empty()) {
    const auto comma = comma_separated.find(',');
    std::string_view key = comma_separated.substr(0, comma);
    while (!key.empty() && key.front() == ' ') key.remove_prefix(1);
    while (!key.empty() && key.back() == ' ') key.remove_suffix(1);
    if (!key.empty()) keys.emplace_back(key);
    if (comma == std::string_view::npos) break;
    comma_separated.remove_prefix(comma + 1);
  }
  return keys;
}

bool ApiKeys::accepts(std::string_view presented) const noexcept {
  const auto candidate = digest(presented);
  int matches = 0;
  for (const auto& stored : digests_) {
    matches |= CRYPTO_memcmp(stored.data(), candidate.data(), stored.size()) == 0;
  }
  return matches != 0;
}

}  // namespace shardurl
