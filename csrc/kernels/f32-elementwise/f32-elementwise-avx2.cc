// AVX2(+FMA) elementwise kernels; tails fall back to the scalar formula.
#include <immintrin.h>

#include <algorithm>

#include "kernels/f32-elementwise/f32-elementwise.h"

namespace edgefit {

void f32_vclamp__avx2(size_t n, const float* x, float* y, const f32_minmax* p) {
  const __m256 lo = _mm256_set1_ps(p->min), hi = _mm256_set1_ps(p->max);
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_min_ps(_mm256_max_ps(_mm256_loadu_ps(x + i), lo), hi));
  for (; i < n; ++i) y[i] = f32_clamp(x[i], p);
}

void f32_vhswish__avx2_fma(size_t n, const float* x, float* y) {
  const __m256 three = _mm256_set1_ps(3.0f), six = _mm256_set1_ps(6.0f);
  const __m256 zero = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 r = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(v, three), zero), six);
    // Divide (not multiply by 1/6) so results match the scalar formula bit for bit.
    _mm256_storeu_ps(y + i, _mm256_div_ps(_mm256_mul_ps(v, r), six));
  }
  for (; i < n; ++i) y[i] = x[i] * std::min(std::max(x[i] + 3.0f, 0.0f), 6.0f) / 6.0f;
}

void f32_vadd__avx2(size_t n, const float* a, const float* b, float* y, const f32_minmax* p) {
  const __m256 lo = _mm256_set1_ps(p->min), hi = _mm256_set1_ps(p->max);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 s = _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
    _mm256_storeu_ps(y + i, _mm256_min_ps(_mm256_max_ps(s, lo), hi));
  }
  for (; i < n; ++i) y[i] = f32_clamp(a[i] + b[i], p);
}

void f32_vaffine__avx2_fma(size_t channels, size_t inner, const float* x, const float* scale,
                           const float* shift, float* y, const f32_minmax* p) {
  const __m256 lo = _mm256_set1_ps(p->min), hi = _mm256_set1_ps(p->max);
  for (size_t c = 0; c < channels; ++c) {
    const __m256 s = _mm256_set1_ps(scale[c]), t = _mm256_set1_ps(shift[c]);
    const float* xc = x + c * inner;
    float* yc = y + c * inner;
    size_t i = 0;
    for (; i + 8 <= inner; i += 8)
      _mm256_storeu_ps(
          yc + i,
          _mm256_min_ps(_mm256_max_ps(_mm256_fmadd_ps(_mm256_loadu_ps(xc + i), s, t), lo), hi));
    for (; i < inner; ++i) yc[i] = f32_clamp(xc[i] * scale[c] + shift[c], p);
  }
}

}  // namespace edgefit
