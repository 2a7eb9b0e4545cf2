// The keys that may delete links. Compared in constant time: a presented key is hashed and every
// stored digest is compared with CRYPTO_memcmp, so neither the position of the first differing byte
// nor the key's length nor which key matched shows in the timing.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

namespace shardurl {

class ApiKeys {
 public:
  explicit ApiKeys(const std::vector<std::string>& keys);

  /// Keys from the environment variable's value: comma-separated, blanks ignored.
  static std::vector<std::string> parse_list(std::string_view comma_separated);

  [[nodiscard]] bool accepts(std::string_view presented) const noexcept;
  [[nodiscard]] bool empty() const noexcept { return digests_.empty(); }

 private:
  std::vector<std::array<unsigned char, 32>> digests_;
};

}  // namespace shardurl
