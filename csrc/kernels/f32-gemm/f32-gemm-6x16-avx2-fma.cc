// AVX2+FMA f32 GEMM (6 rows x 16 columns, 12 accumulators) and GEMV (4 rows, 8 lanes).
// Built with -mavx2 -mfma; only called when CpuInfo reports both.
#include <immintrin.h>

#include "kernels/f32-gemm/f32-gemm.h"

namespace edgefit {

namespace {

inline __m256i tail_mask(size_t n) {
  alignas(32) static const int32_t kMask[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                0,  0,  0,  0,  0,  0,  0,  0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMask + 8 - n));
}

// Twelve named accumulators: GCC 12 spills accumulator arrays to the stack (DESIGN.md), so the
// 6x16 tile is spelled out. LOAD(p, half) reads 8 columns (masked in the tail variant).
#define EDGEFIT_GEMM_6x16_TILE(LOAD0, LOAD1, STORE0, STORE1)                            \
  __m256 c00 = _mm256_broadcast_ss(panel + 0), c01 = c00;                               \
  __m256 c10 = _mm256_broadcast_ss(panel + 1), c11 = c10;                               \
  __m256 c20 = _mm256_broadcast_ss(panel + 2), c21 = c20;                               \
  __m256 c30 = _mm256_broadcast_ss(panel + 3), c31 = c30;                               \
  __m256 c40 = _mm256_broadcast_ss(panel + 4), c41 = c40;                               \
  __m256 c50 = _mm256_broadcast_ss(panel + 5), c51 = c50;                               \
  const float* w = panel + 6;                                                           \
  for (size_t kk = 0; kk < k; ++kk) {                                                   \
    const __m256 b0 = LOAD0(b);                                                         \
    const __m256 b1 = LOAD1(b + 8);                                                     \
    b += ldb;                                                                           \
    __m256 wv = _mm256_broadcast_ss(w + 0);                                             \
    c00 = _mm256_fmadd_ps(wv, b0, c00);                                                 \
    c01 = _mm256_fmadd_ps(wv, b1, c01);                                                 \
    wv = _mm256_broadcast_ss(w + 1);                                                    \
    c10 = _mm256_fmadd_ps(wv, b0, c10);                                                 \
    c11 = _mm256_fmadd_ps(wv, b1, c11);                                                 \
    wv = _mm256_broadcast_ss(w + 2);                                                    \
    c20 = _mm256_fmadd_ps(wv, b0, c20);                                                 \
    c21 = _mm256_fmadd_ps(wv, b1, c21);                                                 \
    wv = _mm256_broadcast_ss(w + 3);                                                    \
    c30 = _mm256_fmadd_ps(wv, b0, c30);                                                 \
    c31 = _mm256_fmadd_ps(wv, b1, c31);                                                 \
    wv = _mm256_broadcast_ss(w + 4);                                                    \
    c40 = _mm256_fmadd_ps(wv, b0, c40);                                                 \
    c41 = _mm256_fmadd_ps(wv, b1, c41);                                                 \
    wv = _mm256_broadcast_ss(w + 5);                                                    \
    c50 = _mm256_fmadd_ps(wv, b0, c50);                                                 \
    c51 = _mm256_fmadd_ps(wv, b1, c51);                                                 \
    w += 6;                                                                             \
  }                                                                                     \
  const __m256 accs[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51}; \
  for (size_t i = 0; i < mr; ++i) {                                                     \
    STORE0(c + i * ldc, _mm256_min_ps(_mm256_max_ps(accs[2 * i], vmin), vmax));         \
    STORE1(c + i * ldc + 8, _mm256_min_ps(_mm256_max_ps(accs[2 * i + 1], vmin), vmax)); \
  }

inline void tile_full(size_t k, const float* panel, const float* b, size_t ldb, float* c,
                      size_t ldc, size_t mr, __m256 vmin, __m256 vmax) {
#define LD(p) _mm256_loadu_ps(p)
#define ST(p, v) _mm256_storeu_ps(p, v)
  EDGEFIT_GEMM_6x16_TILE(LD, LD, ST, ST)
#undef LD
#undef ST
}

inline void tile_tail(size_t nr, size_t k, const float* panel, const float* b, size_t ldb, float* c,
                      size_t ldc, size_t mr, __m256 vmin, __m256 vmax) {
  const __m256i m0 = tail_mask(nr < 8 ? nr : 8);
  const __m256i m1 = tail_mask(nr > 8 ? nr - 8 : 0);
#define LD0(p) _mm256_maskload_ps(p, m0)
#define LD1(p) _mm256_maskload_ps(p, m1)
#define ST0(p, v) _mm256_maskstore_ps(p, m0, v)
#define ST1(p, v) _mm256_maskstore_ps(p, m1, v)
  EDGEFIT_GEMM_6x16_TILE(LD0, LD1, ST0, ST1)
#undef LD0
#undef LD1
#undef ST0
#undef ST1
}

}  // namespace

void f32_gemm_ukernel_6x16__avx2_fma(size_t mr, size_t n, size_t k, const float* panel,
                                     const float* b, size_t ldb, float* c, size_t ldc,
                                     const f32_minmax* params) {
  const __m256 vmin = _mm256_set1_ps(params->min);
  const __m256 vmax = _mm256_set1_ps(params->max);
  size_t j = 0;
  for (; j + 16 <= n; j += 16) tile_full(k, panel, b + j, ldb, c + j, ldc, mr, vmin, vmax);
  if (j < n) tile_tail(n - j, k, panel, b + j, ldb, c + j, ldc, mr, vmin, vmax);
}

void f32_gemv_ukernel_4x8__avx2_fma(size_t m, size_t k, const float* w, const float* bias,
                                    const float* x, float* y, const f32_minmax* params) {
  auto hsum = [](__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  };
  size_t i = 0;
  for (; i + 4 <= m; i += 4) {
    const float* r0 = w + i * k;
    const float* r1 = r0 + k;
    const float* r2 = r1 + k;
    const float* r3 = r2 + k;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t kk = 0;
    for (; kk + 8 <= k; kk += 8) {
      const __m256 xv = _mm256_loadu_ps(x + kk);
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(r0 + kk), xv, a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(r1 + kk), xv, a1);
      a2 = _mm256_fmadd_ps(_mm256_loadu_ps(r2 + kk), xv, a2);
      a3 = _mm256_fmadd_ps(_mm256_loadu_ps(r3 + kk), xv, a3);
    }
    float s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
    for (; kk < k; ++kk) {
      s0 += r0[kk] * x[kk];
      s1 += r1[kk] * x[kk];
      s2 += r2[kk] * x[kk];
      s3 += r3[kk] * x[kk];
    }
    const float b0 = bias ? bias[i] : 0.f, b1 = bias ? bias[i + 1] : 0.f;
    const float b2 = bias ? bias[i + 2] : 0.f, b3 = bias ? bias[i + 3] : 0.f;
    y[i] = f32_clamp(s0 + b0, params);
    y[i + 1] = f32_clamp(s1 + b1, params);
    y[i + 2] = f32_clamp(s2 + b2, params);
    y[i + 3] = f32_clamp(s3 + b3, params);
  }
  for (; i < m; ++i) {
    const float* r = w + i * k;
    __m256 a = _mm256_setzero_ps();
    size_t kk = 0;
    for (; kk + 8 <= k; kk += 8)
      a = _mm256_fmadd_ps(_mm256_loadu_ps(r + kk), _mm256_loadu_ps(x + kk), a);
    float s = hsum(a);
    for (; kk < k; ++kk) s += r[kk] * x[kk];
    y[i] = f32_clamp(s + (bias ? bias[i] : 0.f), params);
  }
}

}  // namespace edgefit
