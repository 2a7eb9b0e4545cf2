#include <catch2/catch.hpp>

#include "link_cache.hpp"

using shardurl::LinkCache;
using namespace std::chrono_literals;

namespace {

// A cache of two shards whose feeds are current for a minute from `t`.
LinkCache fresh_cache(std::size_t capacity, std::chrono::seconds ttl, LinkCache::Clock::time_point t) {
  LinkCache cache(capacity, ttl, 2);
  cache.set_fresh_until(0, t + 60s);
  cache.set_fresh_until(1, t + 60s);
  return cache;
}

void put(LinkCache& cache, std::string_view id, std::string_view url, LinkCache::Clock::time_point t,
         std::size_t shard = 0) {
  cache.put(id, url, url, shard, cache.ticket(shard), t);
}

}  // namespace

TEST_CASE("a hit returns the URL and its Location; a miss is empty") {
  const auto t = LinkCache::Clock::now();
  auto cache = fresh_cache(10, 60s, t);
  CHECK_FALSE(cache.find("a", t));
  cache.put("a", "https://a/ b", "https://a/%20b", 0, cache.ticket(0), t);
  REQUIRE(cache.find("a", t));
  CHECK(cache.find("a", t)->url == "https://a/ b");
  CHECK(cache.find("a", t)->location == "https://a/%20b");
}

TEST_CASE("entries expire after the TTL") {
  const auto t = LinkCache::Clock::now();
  auto cache = fresh_cache(10, 5s, t);
  put(cache, "a", "https://a/", t);
  CHECK(cache.find("a", t + 4s));
  CHECK_FALSE(cache.find("a", t + 5s));
  CHECK(cache.size() == 0);
}

TEST_CASE("the least recently used entry goes when full") {
  const auto t = LinkCache::Clock::now();
  auto cache = fresh_cache(2, 60s, t);
  put(cache, "a", "1", t);
  put(cache, "b", "2", t);
  CHECK(cache.find("a", t));  // a is now the most recent
  put(cache, "c", "3", t);
  CHECK(cache.size() == 2);
  CHECK(cache.find("a", t));
  CHECK_FALSE(cache.find("b", t));
  CHECK(cache.find("c", t)->url == "3");
}

TEST_CASE("a delete evicts, and a lookup that raced it cannot put the link back") {
  const auto t = LinkCache::Clock::now();
  auto cache = fresh_cache(10, 60s, t);
  put(cache, "a", "1", t);
  const auto before_lookup = cache.ticket(0);  // a GET starts its database lookup
  cache.evict("a");                            // meanwhile the link is deleted
  CHECK_FALSE(cache.find("a", t));
  cache.put("a", "1", "1", 0, before_lookup, t);  // the GET's stale answer arrives
  CHECK_FALSE(cache.find("a", t));
  put(cache, "a", "1", t);
  CHECK(cache.find("a", t));
}

TEST_CASE("nothing is served for a shard whose feed was never current") {
  const auto t = LinkCache::Clock::now();
  LinkCache cache(10, 60s, 2);
  put(cache, "a", "1", t, 0);
  CHECK_FALSE(cache.find("a", t));
  cache.set_fresh_until(0, t + 1s);
  CHECK(cache.find("a", t));  // the entry was kept, only not vouched for
}

TEST_CASE("entries of a shard stop being served when its feed falls behind, and come back") {
  const auto t = LinkCache::Clock::now();
  LinkCache cache(10, 60s, 2);
  cache.set_fresh_until(0, t + 900ms);
  cache.set_fresh_until(1, t + 60s);
  put(cache, "a", "1", t, 0);
  put(cache, "b", "2", t, 1);
  CHECK(cache.find("a", t + 899ms));
  CHECK_FALSE(cache.find("a", t + 900ms));  // no echo since: the feed may have missed a change
  CHECK(cache.find("b", t + 900ms));        // the other shard's feed is current
  cache.set_fresh_until(0, t + 2s);
  CHECK(cache.find("a", t + 1s));
  cache.set_fresh_until(0, t + 1s);  // never moves back
  CHECK(cache.find("a", t + 1500ms));
}

TEST_CASE("a reconnected feed makes every earlier entry of its shard unusable") {
  const auto t = LinkCache::Clock::now();
  auto cache = fresh_cache(10, 60s, t);
  put(cache, "a", "1", t, 0);
  put(cache, "b", "2", t, 1);
  const auto during = cache.ticket(0);  // a lookup starts before the feed comes back
  cache.reset_shard(0);                 // changes may have gone unannounced meanwhile
  cache.set_fresh_until(0, t + 60s);
  CHECK_FALSE(cache.find("a", t));
  CHECK(cache.find("b", t));
  cache.put("c", "3", "3", 0, during, t);  // filled across the reset: not kept
  CHECK_FALSE(cache.find("c", t));
  put(cache, "a", "1", t, 0);
  CHECK(cache.find("a", t));
}

TEST_CASE("capacity 0 turns the cache off") {
  const auto t = LinkCache::Clock::now();
  auto cache = fresh_cache(0, 60s, t);
  put(cache, "a", "1", t);
  CHECK_FALSE(cache.find("a", t));
  CHECK_FALSE(cache.enabled());
}

TEST_CASE("a new ring forgets the links that moved to another shard, and only those") {
  const auto t = LinkCache::Clock::now();
  auto cache = fresh_cache(10, 60s, t);
  put(cache, "stays", "1", t, 0);
  put(cache, "moves", "2", t, 0);
  put(cache, "other", "3", t, 1);
  const auto during = cache.ticket(0);  // a read that started before the switch
  cache.forget_moved([](std::string_view id) -> std::size_t { return id == "moves" ? 1 : id == "other" ? 1 : 0; });
  CHECK(cache.find("stays", t));
  CHECK_FALSE(cache.find("moves", t));
  CHECK(cache.find("other", t));
  cache.put("late", "4", "4", 0, during, t);
  CHECK_FALSE(cache.find("late", t));  // it may have read the shard the link left
}

TEST_CASE("configure: a smaller capacity keeps the most recently used, a shorter TTL applies to "
          "entries already cached, 0 turns the cache off") {
  const auto t = LinkCache::Clock::now();
  auto cache = fresh_cache(10, 60s, t);
  for (const char* id : {"a", "b", "c", "d"}) put(cache, id, id, t);
  REQUIRE(cache.find("a", t));  // a is now the most recently used, then d, c, b

  SECTION("shrink") {
    const auto evicted = cache.stats().evicted_capacity;
    cache.configure(2, 60s, t);
    CHECK(cache.size() == 2);
    CHECK(cache.stats().evicted_capacity == evicted + 2);  // counted like a full cache's
    CHECK(cache.find("a", t));
    CHECK(cache.find("d", t));
    CHECK_FALSE(cache.find("b", t));
    put(cache, "e", "e", t);  // the new capacity holds from now on
    CHECK(cache.size() == 2);
  }
  SECTION("a shorter TTL") {
    cache.configure(10, 5s, t);
    CHECK(cache.find("b", t + 4s));
    CHECK_FALSE(cache.find("c", t + 6s));
    put(cache, "e", "e", t + 10s);
    CHECK(cache.find("e", t + 14s));
    CHECK_FALSE(cache.find("e", t + 16s));
  }
  SECTION("a longer TTL does not lengthen what is cached") {
    cache.configure(10, 600s, t);
    CHECK_FALSE(cache.find("b", t + 61s));
  }
  SECTION("off") {
    const auto ticket = cache.ticket(0);
    cache.configure(0, 60s, t);
    CHECK_FALSE(cache.enabled());
    CHECK(cache.size() == 0);
    cache.put("f", "f", "f", 0, ticket, t);
    CHECK_FALSE(cache.find("f", t));
    cache.configure(10, 60s, t);  // and on again: a lookup from before the reload is not kept
    cache.put("f", "f", "f", 0, ticket, t);
    CHECK_FALSE(cache.find("f", t));
    put(cache, "f", "f", t);
    CHECK(cache.find("f", t));
  }
}
