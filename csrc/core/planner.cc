// Greedy-by-size arena planning: place big buffers first, each at the lowest offset that does
// not collide with an already placed buffer whose lifetime overlaps.
#include "core/planner.h"

#include <algorithm>
#include <numeric>

namespace edgefit {

ArenaPlan plan_arena(const std::vector<BufferRequest>& requests) {
  constexpr size_t kAlign = 64;
  ArenaPlan plan;
  plan.offsets.assign(requests.size(), 0);
  std::vector<size_t> order(requests.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return requests[a].bytes > requests[b].bytes; });
  std::vector<size_t> placed;
  for (size_t idx : order) {
    const BufferRequest& r = requests[idx];
    const size_t bytes = (r.bytes + kAlign - 1) / kAlign * kAlign;
    // Intervals taken by live-overlapping buffers, sorted by offset.
    std::vector<std::pair<size_t, size_t>> taken;
    for (size_t p : placed) {
      const BufferRequest& q = requests[p];
      if (q.last < r.first || r.last < q.first) continue;
      const size_t qb = (q.bytes + kAlign - 1) / kAlign * kAlign;
      taken.emplace_back(plan.offsets[p], plan.offsets[p] + qb);
    }
    std::sort(taken.begin(), taken.end());
    size_t offset = 0;
    for (const auto& t : taken) {
      if (offset + bytes <= t.first) break;
      offset = std::max(offset, t.second);
    }
    plan.offsets[idx] = offset;
    plan.arena_bytes = std::max(plan.arena_bytes, offset + bytes);
    placed.push_back(idx);
  }
  return plan;
}

}  // namespace edgefit
