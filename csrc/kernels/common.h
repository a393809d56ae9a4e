// Shared types of every kernel family: output clamping and the ISA levels kernels are built for.
#pragma once

#include <cstddef>
#include <cstdint>

namespace edgefit {

// Fused activations relu/relu6 are a clamp of the result; "none" is [-inf, inf]. Hardswish is
// applied by the executor as a separate elementwise pass after the kernel.
struct f32_minmax {
  float min;
  float max;
};

// Blocks of b needed to cover a (tiles, panels, strips, tasks).
inline size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }

inline float f32_clamp(float v, const f32_minmax* p) {
  return v < p->min ? p->min : (v > p->max ? p->max : v);
}

}  // namespace edgefit
