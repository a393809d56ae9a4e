// Greedy-by-size arena planning: place big buffers first, each at the lowest offset that does
// not collide with an already placed buffer whose lifetime overlaps. Buffers that ask for a
// cooling window go last, so that the rest of the plan is what it would be without them.
#include "core/planner.h"

#include <algorithm>
#include <numeric>

namespace edgefit {

namespace {

constexpr size_t kAlign = 64;

size_t aligned(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

// The lowest offset where `r`, its lifetime widened by its cooling window, meets no placed buffer.
size_t first_fit(const std::vector<BufferRequest>& requests, const std::vector<size_t>& placed,
                 const std::vector<size_t>& offsets, const BufferRequest& r) {
  const int first = r.first - r.cool, last = r.last + r.cool;
  std::vector<std::pair<size_t, size_t>> taken;  // sorted by offset
  for (size_t p : placed) {
    const BufferRequest& q = requests[p];
    if (q.last < first || last < q.first) continue;
    taken.emplace_back(offsets[p], offsets[p] + aligned(q.bytes));
  }
  std::sort(taken.begin(), taken.end());
  size_t offset = 0;
  for (const auto& t : taken) {
    if (offset + aligned(r.bytes) <= t.first) break;
    offset = std::max(offset, t.second);
  }
  return offset;
}

}  // namespace

ArenaPlan plan_arena(const std::vector<BufferRequest>& requests) {
  ArenaPlan plan;
  plan.offsets.assign(requests.size(), 0);
  std::vector<size_t> order(requests.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const bool ca = requests[a].cool > 0, cb = requests[b].cool > 0;
    if (ca != cb) return cb;
    return ca ? requests[a].first < requests[b].first : requests[a].bytes > requests[b].bytes;
  });
  std::vector<size_t> placed;
  for (size_t idx : order) {
    const size_t offset = first_fit(requests, placed, plan.offsets, requests[idx]);
    plan.offsets[idx] = offset;
    plan.arena_bytes = std::max(plan.arena_bytes, offset + aligned(requests[idx].bytes));
    placed.push_back(idx);
  }
  return plan;
}

}  // namespace edgefit
