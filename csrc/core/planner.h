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
};

struct ArenaPlan {
  std::vector<size_t> offsets;  // one per request, multiples of 64
  size_t arena_bytes = 0;
};

ArenaPlan plan_arena(const std::vector<BufferRequest>& requests);

}  // namespace edgefit
