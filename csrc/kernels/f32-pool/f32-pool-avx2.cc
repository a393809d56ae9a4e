// AVX2 global average pooling (the spatial MEAN before a classifier) and max pooling by rows.
#include <immintrin.h>

#include "kernels/f32-pool/f32-maxpool-rows.h"
#include "kernels/f32-pool/f32-pool.h"

namespace edgefit {

void f32_global_avgpool__avx2(size_t channels, size_t pixels, const float* x, float* y) {
  for (size_t c = 0; c < channels; ++c) {
    const float* xc = x + c * pixels;
    __m256 acc = _mm256_setzero_ps();
    size_t p = 0;
    for (; p + 8 <= pixels; p += 8) acc = _mm256_add_ps(acc, _mm256_loadu_ps(xc + p));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    float sum = _mm_cvtss_f32(s);
    for (; p < pixels; ++p) sum += xc[p];
    y[c] = sum / float(pixels);
  }
}

void f32_maxpool2d__avx2(const pool2d_geometry* g, const float* x, float* y) {
  maxpool_rows::run(g, x, y);
}

}  // namespace edgefit
