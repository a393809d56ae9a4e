// NEON elementwise kernels (clamp, hardswish, add, per-channel affine): 8 floats per step, then 4,
// then a scalar tail with the reference formula.
#include <arm_neon.h>

#include <algorithm>
#include <cmath>

#include "kernels/f32-elementwise/f32-elementwise.h"

namespace edgefit {
namespace {

inline float32x4_t clamp(float32x4_t v, float32x4_t lo, float32x4_t hi) {
  return vminq_f32(vmaxq_f32(v, lo), hi);
}

inline float32x4_t hswish(float32x4_t v, float32x4_t three, float32x4_t six, float32x4_t zero) {
  // Divides by 6 like the reference (a multiply by 1/6 would round differently).
  return vdivq_f32(vmulq_f32(v, vminq_f32(vmaxq_f32(vaddq_f32(v, three), zero), six)), six);
}

}  // namespace

void f32_vclamp__neon(size_t n, const float* x, float* y, const f32_minmax* p) {
  const float32x4_t lo = vdupq_n_f32(p->min), hi = vdupq_n_f32(p->max);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float32x4_t a = vld1q_f32(x + i), b = vld1q_f32(x + i + 4);
    vst1q_f32(y + i, clamp(a, lo, hi));
    vst1q_f32(y + i + 4, clamp(b, lo, hi));
  }
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, clamp(vld1q_f32(x + i), lo, hi));
  for (; i < n; ++i) y[i] = f32_clamp(x[i], p);
}

void f32_vhswish__neon(size_t n, const float* x, float* y) {
  const float32x4_t three = vdupq_n_f32(3.0f), six = vdupq_n_f32(6.0f), zero = vdupq_n_f32(0.0f);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float32x4_t a = vld1q_f32(x + i), b = vld1q_f32(x + i + 4);
    vst1q_f32(y + i, hswish(a, three, six, zero));
    vst1q_f32(y + i + 4, hswish(b, three, six, zero));
  }
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, hswish(vld1q_f32(x + i), three, six, zero));
  for (; i < n; ++i) {
    const float v = x[i];
    y[i] = v * std::min(std::max(v + 3.0f, 0.0f), 6.0f) / 6.0f;
  }
}

namespace {

// y = clamp(a + b) 8 floats at a time while 8 remain; returns how many were done. Without the
// upper bound (ReLU or no activation: max = +inf) a fmin per vector is saved.
template <bool kUpper>
size_t vadd8(size_t n, const float* a, const float* b, float* y, float32x4_t lo, float32x4_t hi) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float32x4_t s0 = vaddq_f32(vld1q_f32(a + i), vld1q_f32(b + i));
    const float32x4_t s1 = vaddq_f32(vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
    vst1q_f32(y + i, kUpper ? clamp(s0, lo, hi) : vmaxq_f32(s0, lo));
    vst1q_f32(y + i + 4, kUpper ? clamp(s1, lo, hi) : vmaxq_f32(s1, lo));
  }
  return i;
}

}  // namespace

void f32_vadd__neon(size_t n, const float* a, const float* b, float* y, const f32_minmax* p) {
  const float32x4_t lo = vdupq_n_f32(p->min), hi = vdupq_n_f32(p->max);
  size_t i =
      p->max == INFINITY ? vadd8<false>(n, a, b, y, lo, hi) : vadd8<true>(n, a, b, y, lo, hi);
  for (; i + 4 <= n; i += 4)
    vst1q_f32(y + i, clamp(vaddq_f32(vld1q_f32(a + i), vld1q_f32(b + i)), lo, hi));
  for (; i < n; ++i) y[i] = f32_clamp(a[i] + b[i], p);
}

void f32_vaffine__neon(size_t channels, size_t inner, const float* x, const float* scale,
                       const float* shift, float* y, const f32_minmax* p) {
  const float32x4_t lo = vdupq_n_f32(p->min), hi = vdupq_n_f32(p->max);
  for (size_t c = 0; c < channels; ++c) {
    const float* xc = x + c * inner;
    float* yc = y + c * inner;
    const float32x4_t s = vdupq_n_f32(scale[c]), t = vdupq_n_f32(shift[c]);
    size_t i = 0;
    for (; i + 8 <= inner; i += 8) {
      vst1q_f32(yc + i, clamp(vfmaq_f32(t, vld1q_f32(xc + i), s), lo, hi));
      vst1q_f32(yc + i + 4, clamp(vfmaq_f32(t, vld1q_f32(xc + i + 4), s), lo, hi));
    }
    for (; i + 4 <= inner; i += 4)
      vst1q_f32(yc + i, clamp(vfmaq_f32(t, vld1q_f32(xc + i), s), lo, hi));
    for (; i < inner; ++i) yc[i] = f32_clamp(xc[i] * scale[c] + shift[c], p);
  }
}

}  // namespace edgefit
