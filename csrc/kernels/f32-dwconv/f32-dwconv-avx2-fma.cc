// AVX2+FMA depthwise convolution for 3x3 and 5x5 kernels at stride 1 and 2: 8 output pixels of
// a row per vector; stride 2 loads 16 inputs and keeps the even ones.
#include <immintrin.h>

#include "kernels/f32-dwconv/f32-dwconv.h"

namespace edgefit {
namespace {

inline __m256i tail_mask(size_t n) {
  alignas(32) static const int32_t kMask[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                0,  0,  0,  0,  0,  0,  0,  0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMask + 8 - n));
}

template <size_t S>
inline __m256 load_strided(const float* p) {
  if constexpr (S == 1) {
    return _mm256_loadu_ps(p);
  } else {
    const __m256 lo = _mm256_loadu_ps(p);
    const __m256 hi = _mm256_loadu_ps(p + 8);
    const __m256 ev = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), _MM_SHUFFLE(3, 1, 2, 0)));
  }
}

template <size_t K, size_t S>
void dwconv(size_t ho, size_t wo, const float* xpad, size_t stride, const float* w, float bias,
            float* y, const f32_dwconv_params* p) {
  __m256 wv[K * K];
  for (size_t i = 0; i < K * K; ++i) wv[i] = _mm256_broadcast_ss(w + i);
  const __m256 vmin = _mm256_set1_ps(p->minmax.min);
  const __m256 vmax = _mm256_set1_ps(p->minmax.max);
  const __m256 vb = _mm256_set1_ps(bias);
  for (size_t oy = 0; oy < ho; ++oy) {
    const float* rows = xpad + oy * S * stride;
    float* yrow = y + oy * wo;
    for (size_t ox = 0; ox < wo; ox += 8) {
      __m256 acc = vb;
      for (size_t ky = 0; ky < K; ++ky) {
        const float* r = rows + ky * stride + ox * S;
        for (size_t kx = 0; kx < K; ++kx)
          acc = _mm256_fmadd_ps(load_strided<S>(r + kx), wv[ky * K + kx], acc);
      }
      acc = _mm256_min_ps(_mm256_max_ps(acc, vmin), vmax);
      if (ox + 8 <= wo)
        _mm256_storeu_ps(yrow + ox, acc);
      else
        _mm256_maskstore_ps(yrow + ox, tail_mask(wo - ox), acc);
    }
  }
}

}  // namespace

void f32_dwconv_ukernel_3x3s1__avx2_fma(size_t ho, size_t wo, const float* xpad, size_t xpad_stride,
                                        const float* w, float bias, float* y,
                                        const f32_dwconv_params* p) {
  dwconv<3, 1>(ho, wo, xpad, xpad_stride, w, bias, y, p);
}
void f32_dwconv_ukernel_3x3s2__avx2_fma(size_t ho, size_t wo, const float* xpad, size_t xpad_stride,
                                        const float* w, float bias, float* y,
                                        const f32_dwconv_params* p) {
  dwconv<3, 2>(ho, wo, xpad, xpad_stride, w, bias, y, p);
}
void f32_dwconv_ukernel_5x5s1__avx2_fma(size_t ho, size_t wo, const float* xpad, size_t xpad_stride,
                                        const float* w, float bias, float* y,
                                        const f32_dwconv_params* p) {
  dwconv<5, 1>(ho, wo, xpad, xpad_stride, w, bias, y, p);
}
void f32_dwconv_ukernel_5x5s2__avx2_fma(size_t ho, size_t wo, const float* xpad, size_t xpad_stride,
                                        const float* w, float bias, float* y,
                                        const f32_dwconv_params* p) {
  dwconv<5, 2>(ho, wo, xpad, xpad_stride, w, bias, y, p);
}

}  // namespace edgefit
