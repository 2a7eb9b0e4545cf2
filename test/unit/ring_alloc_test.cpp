// owner_of() must allocate nothing: neither through operator new nor through OpenSSL's allocator.
// Both are counted here, in a binary of its own so the hooks touch no other test.
#include <openssl/crypto.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>

#include "ring/ring.hpp"

namespace {
std::atomic<long> allocations{0};

void* counted_malloc(std::size_t n, const char*, int) {
  ++allocations;
  return std::malloc(n);
}
void* counted_realloc(void* p, std::size_t n, const char*, int) {
  ++allocations;
  return std::realloc(p, n);
}
void counted_free(void* p, const char*, int) {
  std::free(p);
}
}  // namespace

// The whole family is replaced, so every form of new pairs with a delete that frees the same way
// (std::stable_sort, for one, uses the nothrow form).
void* operator new(std::size_t n) {
  ++allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  return operator new(n);
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  ++allocations;
  return std::malloc(n == 0 ? 1 : n);
}
void* operator new[](std::size_t n, const std::nothrow_t& tag) noexcept {
  return operator new(n, tag);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}

int main() {
  // Must come before OpenSSL allocates anything.
  if (CRYPTO_set_mem_functions(counted_malloc, counted_realloc, counted_free) != 1) {
    std::puts("could not hook OpenSSL's allocator");
    return 1;
  }
  int failures = 0;
  for (const auto hash : {shardurl::ring::Hash::md5, shardurl::ring::Hash::ketama}) {
    const shardurl::ring::Ring ring({{"5432"}, {"5433"}, {"5434"}}, hash);
    const std::string long_key(5000, 'k');
    (void)ring.owner_of("warm-up");  // a thread's first hash creates its digest context
    const long before = allocations.load();
    std::size_t sum = 0;
    for (int i = 0; i < 10000; ++i) {
      sum += ring.owner_of("0OGWo");
      sum += ring.owner_of(long_key);
      sum += ring.owner_of("");
    }
    const long made = allocations.load() - before;
    std::printf("%s: %ld allocations in 30000 lookups (checksum %zu)\n",
                std::string(shardurl::ring::to_string(hash)).c_str(), made, sum);
    failures += made != 0;
  }
  std::printf("%d passed, %d failed\n", 2 - failures, failures);
  return failures == 0 ? 0 : 1;
}
