#include <catch2/catch.hpp>

#include "link_cache.hpp"

using shardurl::LinkCache;
using namespace std::chrono_literals;

TEST_CASE("a hit returns the URL; a miss is empty") {
  LinkCache cache(10, 60s);
  const auto t = LinkCache::Clock::now();
  CHECK_FALSE(cache.find("a", t));
  cache.put("a", "https://a/", cache.generation(), t);
  REQUIRE(cache.find("a", t));
  CHECK(*cache.find("a", t) == "https://a/");
}

TEST_CASE("entries expire after the TTL") {
  LinkCache cache(10, 5s);
  const auto t = LinkCache::Clock::now();
  cache.put("a", "https://a/", cache.generation(), t);
  CHECK(cache.find("a", t + 4s));
  CHECK_FALSE(cache.find("a", t + 5s));
  CHECK(cache.size() == 0);
}

TEST_CASE("the least recently used entry goes when full") {
  LinkCache cache(2, 60s);
  const auto t = LinkCache::Clock::now();
  cache.put("a", "1", cache.generation(), t);
  cache.put("b", "2", cache.generation(), t);
  CHECK(cache.find("a", t));  // a is now the most recent
  cache.put("c", "3", cache.generation(), t);
  CHECK(cache.size() == 2);
  CHECK(cache.find("a", t));
  CHECK_FALSE(cache.find("b", t));
  CHECK(*cache.find("c", t) == "3");
}

TEST_CASE("a delete evicts, and a lookup that raced it cannot put the link back") {
  LinkCache cache(10, 60s);
  const auto t = LinkCache::Clock::now();
  cache.put("a", "1", cache.generation(), t);
  const auto before_lookup = cache.generation();  // a GET starts its database lookup
  cache.evict("a");                               // meanwhile the link is deleted
  CHECK_FALSE(cache.find("a", t));
  cache.put("a", "1", before_lookup, t);  // the GET's stale answer arrives
  CHECK_FALSE(cache.find("a", t));
  cache.put("a", "1", cache.generation(), t);
  CHECK(cache.find("a", t));
}

TEST_CASE("capacity 0 turns the cache off") {
  LinkCache cache(0, 60s);
  const auto t = LinkCache::Clock::now();
  cache.put("a", "1", cache.generation(), t);
  CHECK_FALSE(cache.find("a", t));
  CHECK_FALSE(cache.enabled());
}
