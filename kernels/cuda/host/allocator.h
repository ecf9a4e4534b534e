// A caching device allocator: freed blocks go to a pool keyed by size and are handed out again
// (best fit within 1/8 oversize, or an exact size class), so a training step that allocates the same
// shapes every iteration stops calling cudaMalloc after the first. Single stream, so a block freed on
// the host can be reused by the next kernel without events: the stream orders the uses.
// The raw allocate/release functions are injected, so the policy is tested on the host (selfTest).
#pragma once
#include <cstddef>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <unordered_map>

namespace lav {

struct OutOfMemory : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class CachingAllocator {
 public:
  /** raw(bytes) returns a pointer or nullptr when the device is out of memory; other failures throw. */
  using RawAlloc = std::function<void*(size_t)>;
  using RawFree = std::function<void(void*)>;

  CachingAllocator(RawAlloc a, RawFree f) : raw_(std::move(a)), release_(std::move(f)) {}
  ~CachingAllocator() = default;  // the owner calls emptyCache() while the device is still there

  static size_t roundUp(size_t bytes) {
    if (bytes == 0) bytes = 1;
    const size_t small = 512, large = size_t(2) << 20;
    if (bytes <= (size_t(1) << 20)) return (bytes + small - 1) / small * small;
    return (bytes + large - 1) / large * large;
  }

  void* allocate(size_t bytes) {
    const size_t want = roundUp(bytes);
    auto it = cache_.lower_bound(want);
    if (it != cache_.end() && it->first <= want + want / 8) {
      void* p = it->second;
      size_t have = it->first;
      cache_.erase(it);
      cached_ -= have;
      live_[p] = have;
      inUse_ += have;
      hits_++;
      if (inUse_ > peak_) peak_ = inUse_;
      return p;
    }
    void* p = raw_(want);
    if (!p && !cache_.empty()) {
      emptyCache();  // give every cached block back and try once more
      p = raw_(want);
    }
    if (!p) {
      throw OutOfMemory("out of device memory allocating " + mib(want) + " (in use by lavender " + mib(inUse_) +
                        ", peak " + mib(peak_) + "; the cache was released and the allocation retried)");
    }
    live_[p] = want;
    inUse_ += want;
    reserved_ += want;
    misses_++;
    if (inUse_ > peak_) peak_ = inUse_;
    return p;
  }

  void deallocate(void* p) {
    auto it = live_.find(p);
    if (it == live_.end()) throw std::invalid_argument("free of a pointer that is not a live allocation (double free?)");
    size_t n = it->second;
    live_.erase(it);
    inUse_ -= n;
    cache_.emplace(n, p);
    cached_ += n;
  }

  void emptyCache() {
    for (auto& kv : cache_) release_(kv.second);
    reserved_ -= cached_;
    cache_.clear();
    cached_ = 0;
  }

  size_t liveBlocks() const { return live_.size(); }
  size_t inUse() const { return inUse_; }
  size_t cached() const { return cached_; }
  size_t reserved() const { return reserved_; }
  size_t peak() const { return peak_; }
  size_t hits() const { return hits_; }
  size_t misses() const { return misses_; }

  static std::string mib(size_t b) {
    char s[64];
    snprintf(s, sizeof s, "%.1f MiB", b / 1048576.0);
    return s;
  }

 private:
  RawAlloc raw_;
  RawFree release_;
  std::multimap<size_t, void*> cache_;
  std::unordered_map<void*, size_t> live_;
  size_t inUse_ = 0, cached_ = 0, reserved_ = 0, peak_ = 0, hits_ = 0, misses_ = 0;
};

/** Exercises the policy against a fake 64 MiB host "device"; returns "" on success, else what failed. */
std::string allocatorSelfTest();

}  // namespace lav
