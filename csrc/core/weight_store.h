// Memory that a runtime fills once at load and then reads on every run (packed and decoded
// weights, the activation arena), placed so that the kernel can back it with 2 MB pages.
//
// Why: a MobileNetV2 inference walks ~9 MB of packed weights and ~5 MB of activations, about
// 3,500 distinct 4 KB pages, more than the second-level TLB holds, and under virtualisation each
// TLB miss is a two-dimensional page walk. In 2 MB pages the same bytes are a handful of entries
// (measured: csrc/README.md). Only whole 2 MB ranges that are filled become huge pages, so a small
// model's resident memory does not grow to a huge page per allocation.
#pragma once

#include <cstddef>
#include <vector>

namespace edgefit {

// Anonymous zeroed memory of at least `bytes`, 2 MB aligned. huge_pages: the whole 2 MB ranges it
// spans are advised for transparent huge pages (before anything touches them; advice only, a
// no-op where the OS has none). Freed with free_pages(p, bytes).
void* alloc_pages(size_t bytes, bool huge_pages);
void free_pages(void* p, size_t bytes);

// Bump allocator of zeroed, 64-byte aligned blocks that live as long as the store. Not
// thread-safe (used while a runtime prepares, before it runs).
class WeightStore {
 public:
  WeightStore() = default;
  WeightStore(const WeightStore&) = delete;
  WeightStore& operator=(const WeightStore&) = delete;
  ~WeightStore();

  float* alloc(size_t floats);
  // Once everything is written: asks the kernel to move every whole 2 MB range that was handed out
  // into a huge page (MADV_COLLAPSE, Linux 6.1+; silently kept in small pages elsewhere).
  void seal();

 private:
  struct Chunk {
    void* base;
    size_t size, used;
  };
  std::vector<Chunk> chunks_;
};

}  // namespace edgefit
