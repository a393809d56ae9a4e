// Memory planner: one arena for all activations; buffers whose lifetimes do not overlap share
// bytes (greedy by size, first fit, as TFLite's arena planner). Aliases (reshape, in-place
// elementwise ops) are resolved by the executor before planning, so each request is one buffer.
#pragma once

#include <cstddef>
#include <vector>

namespace edgefit {

struct BufferRequest {
  size_t bytes = 0;
  int first = 0;  // index of the step that writes it first
  int last = 0;   // index of the last step that reads it (inclusive)
  // Steps before `first` and after `last` in which no other buffer may use these bytes either
  // (0: none). For a buffer that one core writes and the other reads: a core rewriting a cache
  // line that the other core has read since pays ~10x a local rewrite (tools/coherence_probe.cc),
  // unless the reader's copy has been evicted in between.
  int cool = 0;
};

struct ArenaPlan {
  std::vector<size_t> offsets;  // one per request, multiples of 64
  size_t arena_bytes = 0;
};

// Buffers with `cool` are placed after all others (in order of `first`), which keep the offsets
// they would have without them.
ArenaPlan plan_arena(const std::vector<BufferRequest>& requests);

}  // namespace edgefit
