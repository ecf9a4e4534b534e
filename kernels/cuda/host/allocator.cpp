#include "allocator.h"

#include <cstdio>
#include <cstdlib>
#include <set>

namespace lav {

std::string allocatorSelfTest() {
  size_t capacity = size_t(64) << 20, used = 0, rawCalls = 0, rawFrees = 0;
  std::unordered_map<void*, size_t> outstanding;
  CachingAllocator a(
      [&](size_t n) -> void* {
        rawCalls++;
        if (used + n > capacity) return nullptr;
        void* p = std::malloc(n);
        used += n;
        outstanding[p] = n;
        return p;
      },
      [&](void* p) {
        rawFrees++;
        used -= outstanding.at(p);
        outstanding.erase(p);
        std::free(p);
      });
  auto fail = [&](const char* what) { a.emptyCache(); return std::string(what); };
  if (CachingAllocator::roundUp(0) != 512 || CachingAllocator::roundUp(513) != 1024 || CachingAllocator::roundUp((1 << 20) + 1) != (size_t(2) << 20))
    return fail("size rounding");
  void* p = a.allocate(1000);
  a.deallocate(p);
  void* q = a.allocate(900);  // same 1024-byte class: served from the cache
  if (q != p || a.hits() != 1 || rawCalls != 1) return fail("a freed block of the same size class is reused");
  void* big = a.allocate(size_t(10) << 20);
  a.deallocate(big);
  void* small = a.allocate(size_t(1) << 20);  // 10 MiB block is far more than 1/8 oversize: fresh allocation
  if (small == big) return fail("a much larger cached block is not handed out for a small request");
  a.deallocate(small);
  a.deallocate(q);
  // out of memory: 60 MiB does not fit beside the 11 MiB cached, so the cache is released and the call retried
  void* huge = a.allocate(size_t(60) << 20);
  if (!huge || a.cached() != 0 || rawFrees < 2) return fail("the cache is released and the allocation retried on OOM");
  bool threw = false;
  try {
    a.allocate(size_t(8) << 20);
  } catch (const OutOfMemory& e) {
    threw = std::string(e.what()).find("out of device memory allocating 8.0 MiB") == 0;
  }
  if (!threw) return fail("a request that cannot fit throws OutOfMemory naming the size");
  a.deallocate(huge);
  bool dbl = false;
  try {
    a.deallocate(huge);
  } catch (const std::invalid_argument&) {
    dbl = true;
  }
  if (!dbl) return fail("a double free is reported");
  if (a.liveBlocks() != 0 || a.inUse() != 0) return fail("accounting returns to zero");
  a.emptyCache();
  if (used != 0 || !outstanding.empty()) return fail("emptyCache returns every block");
  return "";
}

}  // namespace lav
