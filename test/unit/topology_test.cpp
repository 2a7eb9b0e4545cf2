// Connection strings in the topology that shards keep for every instance (and in messages): the
// secrets are left out, every TLS option is kept as written.
#include <catch2/catch.hpp>

#include <string>

#include "config.hpp"
#include "topology.hpp"

using shardurl::parse_config;
using shardurl::Topology;
using shardurl::topology_from_json;
using shardurl::without_password;

TEST_CASE("without_password drops password and sslpassword and keeps the ssl options") {
  const std::string tls =
      "host=db1.internal port=5432 dbname=links user=shardurl password=s3cret sslmode=verify-full "
      "sslrootcert=/etc/shardurl/ca.crt sslcert=/etc/shardurl/client.crt "
      "sslkey=/etc/shardurl/client.key sslpassword=k3y sslcrl=/etc/shardurl/ca.crl";
  const std::string out = without_password(tls);
  CHECK(out.find("s3cret") == std::string::npos);
  CHECK(out.find("k3y") == std::string::npos);
  CHECK(out.find("password") == std::string::npos);
  for (const char* kept :
       {"host='db1.internal'", "sslmode='verify-full'", "sslrootcert='/etc/shardurl/ca.crt'",
        "sslcert='/etc/shardurl/client.crt'", "sslkey='/etc/shardurl/client.key'",
        "sslcrl='/etc/shardurl/ca.crl'"}) {
    INFO(kept);
    CHECK(out.find(kept) != std::string::npos);
  }
  // The URI form, too.
  const std::string uri = without_password(
      "postgresql://shardurl:s3cret@db1.internal/links?sslmode=verify-ca&sslrootcert=/ca.crt");
  CHECK(uri.find("s3cret") == std::string::npos);
  CHECK(uri.find("sslmode='verify-ca'") != std::string::npos);
  CHECK(uri.find("sslrootcert='/ca.crt'") != std::string::npos);
}

TEST_CASE("a shard that only the shared topology names is reached with its TLS options") {
  const auto config = parse_config(R"({"shards": [
      {"name": "a", "conninfo": "host=a.internal sslmode=verify-full sslrootcert=/ca.crt password=x"},
      {"name": "b", "conninfo": "host=b.internal sslmode=verify-full sslrootcert=/ca.crt sslpassword=y"}]})");
  const std::string shared = Topology(1, config).to_json();
  CHECK(shared.find("password") == std::string::npos);
  // An instance whose own file names only shard a learns b from the shards.
  const auto local = parse_config(
      R"({"shards": [{"name": "a", "conninfo": "host=a.internal sslmode=verify-full sslrootcert=/mine.crt"}]})");
  const Topology learnt = topology_from_json(2, shared, local);
  REQUIRE(learnt.shards().size() == 2);
  CHECK(learnt.shards()[0].conninfo == local.shards[0].conninfo);  // its own, as written
  const std::string& b = learnt.shards()[1].conninfo;
  CHECK(b.find("host='b.internal'") != std::string::npos);
  CHECK(b.find("sslmode='verify-full'") != std::string::npos);
  CHECK(b.find("sslrootcert='/ca.crt'") != std::string::npos);
}
