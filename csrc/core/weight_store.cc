#include "core/weight_store.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace edgefit {

namespace {

constexpr size_t kHugePage = size_t(2) << 20, kPage = 4096;
// Chunks of at least this size: most layers' packed weights are far smaller than a huge page,
// and the ranges between them should fill whole huge pages.
constexpr size_t kChunkBytes = size_t(32) << 20;
#if defined(__linux__)
// Not in glibc 2.36's headers (Debian 12); the kernel's value (asm-generic/mman-common.h).
constexpr int kMadvCollapse = 25;
#endif

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

}  // namespace

void* alloc_pages(size_t bytes, bool huge_pages) {
  const size_t size = round_up(std::max<size_t>(bytes, 1), kPage);
#if defined(__linux__)
  // Over-reserve by one huge page and trim, so the block starts on a 2 MB boundary (the kernel
  // only backs aligned 2 MB ranges with huge pages).
  const size_t reserve = size + kHugePage;
  void* raw = mmap(nullptr, reserve, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = round_up(start, kHugePage);
  if (aligned > start) munmap(raw, aligned - start);
  const size_t tail = reserve - (aligned - start) - size;
  if (tail > 0) munmap(reinterpret_cast<void*>(aligned + size), tail);
  void* p = reinterpret_cast<void*>(aligned);
#ifdef MADV_HUGEPAGE
  const size_t whole = size / kHugePage * kHugePage;  // a partial last range stays small pages
  if (huge_pages && whole > 0) madvise(p, whole, MADV_HUGEPAGE);
#endif
  return p;
#else
  (void)huge_pages;
  void* p = std::aligned_alloc(kHugePage, round_up(size, kHugePage));
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, size);
  return p;
#endif
}

void free_pages(void* p, size_t bytes) {
  if (p == nullptr) return;
#if defined(__linux__)
  munmap(p, round_up(std::max<size_t>(bytes, 1), kPage));
#else
  (void)bytes;
  std::free(p);
#endif
}

WeightStore::~WeightStore() {
  for (const Chunk& c : chunks_) free_pages(c.base, c.size);
}

float* WeightStore::alloc(size_t floats) {
  const size_t bytes = round_up(std::max<size_t>(floats, 1) * sizeof(float), 64);
  if (chunks_.empty() || chunks_.back().used + bytes > chunks_.back().size) {
    const size_t size = round_up(std::max(bytes, kChunkBytes), kPage);
    chunks_.push_back(Chunk{alloc_pages(size, /*huge_pages=*/false), size, 0});
  }
  Chunk& c = chunks_.back();
  float* p = reinterpret_cast<float*>(static_cast<char*>(c.base) + c.used);
  c.used += bytes;
  return p;
}

void WeightStore::seal() {
#if defined(__linux__)
  for (const Chunk& c : chunks_) {
    const size_t whole = c.used / kHugePage * kHugePage;
    if (whole > 0) (void)madvise(c.base, whole, kMadvCollapse);  // EINVAL on older kernels: fine
  }
#endif
}

}  // namespace edgefit
