#include <catch2/catch.hpp>

#include "short_id.hpp"

using shardurl::id_digest;
using shardurl::tutorial_id;

TEST_CASE("ids are base64url SHA-256 prefixes; the tutorial's were standard base64") {
  // Reference values from Python: base64.urlsafe_b64encode(hashlib.sha256(url).digest()).
  CHECK(id_digest("https://www.google.com/") == "0OGWoMJdNd0KhFk8uuDzgzOqWFKZNkROomRT6rKN_IY");
  CHECK(id_digest("https://www.postgresql.org/") == "cSZsgRV994Z2yk5sHDTQEc3_7QJvaAVSbVR9ykbV1BU");
  CHECK(id_digest("") == "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
  CHECK(tutorial_id("https://www.google.com/") == "0OGWo");  // the tutorial's own example
  CHECK(tutorial_id("https://www.dev.to/") == "Vlk97");
}

TEST_CASE("ids never hold '+', '/' or '='") {
  for (int i = 0; i < 2000; ++i) {
    const auto id = id_digest("https://example.com/" + std::to_string(i));
    REQUIRE(id.size() == shardurl::max_derived_id_length);
    REQUIRE(id.find_first_of("+/=") == std::string::npos);
  }
}
