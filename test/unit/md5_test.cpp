// The ring's MD5 against RFC 1321's test suite and against OpenSSL, on every length around the
// block boundaries where padding goes wrong.
#include <openssl/evp.h>

#include <catch2/catch.hpp>

#include <cstdio>
#include <string>

#include "md5.hpp"

namespace {

std::string hex(const shardurl::ring::detail::Digest& d) {
  std::string out;
  char buf[3];
  for (unsigned char c : d) {
    std::snprintf(buf, sizeof buf, "%02x", c);
    out += buf;
  }
  return out;
}

shardurl::ring::detail::Digest openssl_md5(const std::string& s) {
  shardurl::ring::detail::Digest d{};
  unsigned int len = 0;
  REQUIRE(EVP_Digest(s.data(), s.size(), d.data(), &len, EVP_md5(), nullptr) == 1);
  return d;
}

}  // namespace

TEST_CASE("md5 matches RFC 1321's test suite") {
  using shardurl::ring::detail::md5;
  CHECK(hex(md5("")) == "d41d8cd98f00b204e9800998ecf8427e");
  CHECK(hex(md5("a")) == "0cc175b9c0f1b6a831c399e269772661");
  CHECK(hex(md5("abc")) == "900150983cd24fb0d6963f7d28e17f72");
  CHECK(hex(md5("message digest")) == "f96b697d7cb7938d525a2f31aaf161d0");
  CHECK(hex(md5("abcdefghijklmnopqrstuvwxyz")) == "c3fcd3d76192e4007dfb496cca67e13b");
  CHECK(hex(md5(
            "12345678901234567890123456789012345678901234567890123456789012345678901234567890")) ==
        "57edf4a22be3c955ac49da2e2107b67a");
}

TEST_CASE("md5 matches OpenSSL for every length up to 300 bytes") {
  std::string s;
  for (int n = 0; n <= 300; ++n) {
    INFO("length " << n);
    REQUIRE(shardurl::ring::detail::md5(s) == openssl_md5(s));
    s += static_cast<char>((n * 131 + 7) & 0xff);  // every byte value, NUL and high bytes too
  }
}
