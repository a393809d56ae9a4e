// AVX2+FMA f32 GEMM (6 rows x 16 columns, 12 accumulators) and GEMV (4 rows, 8 lanes).
// Built with -mavx2 -mfma; only called when CpuInfo reports both.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

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

namespace {

// One 6x16 tile of the packed-B kernel: b is one strip ([k][16], zero past nr), c starts at the
// tile's first column; nr < 16 masks the loads of c and the stores.
template <bool kTail>
inline void packed_tile(size_t mr, size_t nr, size_t k, const float* w, const float* bias,
                        const float* b, float* c, size_t ldc, const f32_minmax* params) {
  const __m256i m0 = kTail ? tail_mask(nr < 8 ? nr : 8) : _mm256_set1_epi32(-1);
  const __m256i m1 = kTail ? tail_mask(nr > 8 ? nr - 8 : 0) : _mm256_set1_epi32(-1);
  auto ld = [&](const float* p, __m256i m) {
    return kTail ? _mm256_maskload_ps(p, m) : _mm256_loadu_ps(p);
  };
  // Rows past mr start from (and are never stored to) row mr - 1 of c, so nothing outside the
  // tile is read.
  const size_t r1 = mr > 1 ? 1 : 0, r2 = mr > 2 ? 2 : r1, r3 = mr > 3 ? 3 : r2,
               r4 = mr > 4 ? 4 : r3, r5 = mr > 5 ? 5 : r4;
  __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
  if (bias != nullptr) {
    c00 = _mm256_broadcast_ss(bias + 0), c01 = c00;
    c10 = _mm256_broadcast_ss(bias + 1), c11 = c10;
    c20 = _mm256_broadcast_ss(bias + 2), c21 = c20;
    c30 = _mm256_broadcast_ss(bias + 3), c31 = c30;
    c40 = _mm256_broadcast_ss(bias + 4), c41 = c40;
    c50 = _mm256_broadcast_ss(bias + 5), c51 = c50;
  } else {
    c00 = ld(c, m0), c01 = ld(c + 8, m1);
    c10 = ld(c + r1 * ldc, m0), c11 = ld(c + r1 * ldc + 8, m1);
    c20 = ld(c + r2 * ldc, m0), c21 = ld(c + r2 * ldc + 8, m1);
    c30 = ld(c + r3 * ldc, m0), c31 = ld(c + r3 * ldc + 8, m1);
    c40 = ld(c + r4 * ldc, m0), c41 = ld(c + r4 * ldc + 8, m1);
    c50 = ld(c + r5 * ldc, m0), c51 = ld(c + r5 * ldc + 8, m1);
  }
  for (size_t kk = 0; kk < k; ++kk) {
    const __m256 b0 = _mm256_loadu_ps(b);
    const __m256 b1 = _mm256_loadu_ps(b + 8);
    b += 16;
    __m256 wv = _mm256_broadcast_ss(w + 0);
    c00 = _mm256_fmadd_ps(wv, b0, c00);
    c01 = _mm256_fmadd_ps(wv, b1, c01);
    wv = _mm256_broadcast_ss(w + 1);
    c10 = _mm256_fmadd_ps(wv, b0, c10);
    c11 = _mm256_fmadd_ps(wv, b1, c11);
    wv = _mm256_broadcast_ss(w + 2);
    c20 = _mm256_fmadd_ps(wv, b0, c20);
    c21 = _mm256_fmadd_ps(wv, b1, c21);
    wv = _mm256_broadcast_ss(w + 3);
    c30 = _mm256_fmadd_ps(wv, b0, c30);
    c31 = _mm256_fmadd_ps(wv, b1, c31);
    wv = _mm256_broadcast_ss(w + 4);
    c40 = _mm256_fmadd_ps(wv, b0, c40);
    c41 = _mm256_fmadd_ps(wv, b1, c41);
    wv = _mm256_broadcast_ss(w + 5);
    c50 = _mm256_fmadd_ps(wv, b0, c50);
    c51 = _mm256_fmadd_ps(wv, b1, c51);
    w += 6;
  }
  if (params != nullptr) {
    const __m256 vmin = _mm256_set1_ps(params->min), vmax = _mm256_set1_ps(params->max);
    auto cl = [&](__m256& v) { v = _mm256_min_ps(_mm256_max_ps(v, vmin), vmax); };
    cl(c00), cl(c01), cl(c10), cl(c11), cl(c20), cl(c21);
    cl(c30), cl(c31), cl(c40), cl(c41), cl(c50), cl(c51);
  }
  auto st = [&](float* p, __m256 v0, __m256 v1) {
    if (kTail) {
      _mm256_maskstore_ps(p, m0, v0);
      _mm256_maskstore_ps(p + 8, m1, v1);
    } else {
      _mm256_storeu_ps(p, v0);
      _mm256_storeu_ps(p + 8, v1);
    }
  };
  // An if-chain, not a loop over an array of the accumulators (which GCC puts on the stack).
  st(c, c00, c01);
  if (mr > 1) st(c + ldc, c10, c11);
  if (mr > 2) st(c + 2 * ldc, c20, c21);
  if (mr > 3) st(c + 3 * ldc, c30, c31);
  if (mr > 4) st(c + 4 * ldc, c40, c41);
  if (mr > 5) st(c + 5 * ldc, c50, c51);
}

// A tail strip of at most 8 columns: only the strip's first half is computed (6 accumulators),
// so e.g. 7x7 images (49 = 3 x 16 + 1 pixels) do not pay a whole 16-column tile for 1 column.
inline void packed_tile_half(size_t mr, size_t nr, size_t k, const float* w, const float* bias,
                             const float* b, float* c, size_t ldc, const f32_minmax* params) {
  const __m256i m0 = tail_mask(nr);
  const size_t r1 = mr > 1 ? 1 : 0, r2 = mr > 2 ? 2 : r1, r3 = mr > 3 ? 3 : r2,
               r4 = mr > 4 ? 4 : r3, r5 = mr > 5 ? 5 : r4;
  __m256 c0, c1, c2, c3, c4, c5;
  if (bias != nullptr) {
    c0 = _mm256_broadcast_ss(bias + 0), c1 = _mm256_broadcast_ss(bias + 1);
    c2 = _mm256_broadcast_ss(bias + 2), c3 = _mm256_broadcast_ss(bias + 3);
    c4 = _mm256_broadcast_ss(bias + 4), c5 = _mm256_broadcast_ss(bias + 5);
  } else {
    c0 = _mm256_maskload_ps(c, m0), c1 = _mm256_maskload_ps(c + r1 * ldc, m0);
    c2 = _mm256_maskload_ps(c + r2 * ldc, m0), c3 = _mm256_maskload_ps(c + r3 * ldc, m0);
    c4 = _mm256_maskload_ps(c + r4 * ldc, m0), c5 = _mm256_maskload_ps(c + r5 * ldc, m0);
  }
  for (size_t kk = 0; kk < k; ++kk) {
    const __m256 b0 = _mm256_loadu_ps(b);
    b += 16;
    c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + 0), b0, c0);
    c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + 1), b0, c1);
    c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + 2), b0, c2);
    c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + 3), b0, c3);
    c4 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + 4), b0, c4);
    c5 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + 5), b0, c5);
    w += 6;
  }
  if (params != nullptr) {
    const __m256 vmin = _mm256_set1_ps(params->min), vmax = _mm256_set1_ps(params->max);
    auto cl = [&](__m256& v) { v = _mm256_min_ps(_mm256_max_ps(v, vmin), vmax); };
    cl(c0), cl(c1), cl(c2), cl(c3), cl(c4), cl(c5);
  }
  _mm256_maskstore_ps(c, m0, c0);
  if (mr > 1) _mm256_maskstore_ps(c + ldc, m0, c1);
  if (mr > 2) _mm256_maskstore_ps(c + 2 * ldc, m0, c2);
  if (mr > 3) _mm256_maskstore_ps(c + 3 * ldc, m0, c3);
  if (mr > 4) _mm256_maskstore_ps(c + 4 * ldc, m0, c4);
  if (mr > 5) _mm256_maskstore_ps(c + 5 * ldc, m0, c5);
}

}  // namespace

void f32_gemm_packed_ukernel_6x16__avx2_fma(size_t mr, size_t n, size_t k, const float* w,
                                            const float* bias, const float* b, float* c, size_t ldc,
                                            const f32_minmax* params) {
  size_t j = 0;
  for (; j + 16 <= n; j += 16, b += k * 16)
    packed_tile<false>(mr, 16, k, w, bias, b, c + j, ldc, params);
  if (j + 8 < n)
    packed_tile<true>(mr, n - j, k, w, bias, b, c + j, ldc, params);
  else if (j < n)
    packed_tile_half(mr, n - j, k, w, bias, b, c + j, ldc, params);
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
    // The next four rows' line at the same column is asked for (into L2, prefetcht2) while these
    // are summed: the weights are read once (a classifier's 5-8 MB from DRAM) as four interleaved
    // streams the hardware prefetcher follows poorly. Zen 4, weights cycled past L3, best of 40,
    // binaries alternating: 1000x1280 1.5-2.5x faster (343-354 -> 231-242 us on a busy machine,
    // 271-314 -> 113-144 on a quiet one), 1000x2048 1.3x; prefetchnta / t0 were slower than none.
    // Addresses as integers: no pointer is formed past the matrix.
    const uintptr_t row_bytes = k * sizeof(float);
    const uintptr_t next = reinterpret_cast<uintptr_t>(r0) + 4 * row_bytes;
    const bool more = i + 8 <= m;
    size_t kk = 0;
    for (; kk + 8 <= k; kk += 8) {
      if (more && kk % 16 == 0) {
        const uintptr_t at = next + kk * sizeof(float);
        __builtin_prefetch(reinterpret_cast<const void*>(at), 0, 1);
        __builtin_prefetch(reinterpret_cast<const void*>(at + row_bytes), 0, 1);
        __builtin_prefetch(reinterpret_cast<const void*>(at + 2 * row_bytes), 0, 1);
        __builtin_prefetch(reinterpret_cast<const void*>(at + 3 * row_bytes), 0, 1);
      }
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

namespace {

// R pixel rows (R <= 6) x 16 output channels of the transposed tile. A pixel tail gets a short
// tile (R < 6), not a full one with repeated rows: 49 pixels cost 8 x 6 + 1 row, not 9 x 6.
// Pixel i's column of B starts at b + i, or at b + offs[i] for the offsets tile (kIx).
template <size_t R, bool kIx>
inline void t_tile(size_t k, const float* b, size_t ldb, const size_t* offs, const float* w,
                   float* ct, size_t ldct, bool accumulate) {
  const auto at = [offs](size_t i) -> size_t { return kIx ? offs[i] : i; };  // first R only
  const size_t o0 = at(0), o1 = R > 1 ? at(1) : 0, o2 = R > 2 ? at(2) : 0;
  const size_t o3 = R > 3 ? at(3) : 0, o4 = R > 4 ? at(4) : 0, o5 = R > 5 ? at(5) : 0;
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  if (accumulate) {
    c00 = _mm256_loadu_ps(ct), c01 = _mm256_loadu_ps(ct + 8);
    if constexpr (R > 1) c10 = _mm256_loadu_ps(ct + ldct), c11 = _mm256_loadu_ps(ct + ldct + 8);
    if constexpr (R > 2)
      c20 = _mm256_loadu_ps(ct + 2 * ldct), c21 = _mm256_loadu_ps(ct + 2 * ldct + 8);
    if constexpr (R > 3)
      c30 = _mm256_loadu_ps(ct + 3 * ldct), c31 = _mm256_loadu_ps(ct + 3 * ldct + 8);
    if constexpr (R > 4)
      c40 = _mm256_loadu_ps(ct + 4 * ldct), c41 = _mm256_loadu_ps(ct + 4 * ldct + 8);
    if constexpr (R > 5)
      c50 = _mm256_loadu_ps(ct + 5 * ldct), c51 = _mm256_loadu_ps(ct + 5 * ldct + 8);
  }
  for (size_t kk = 0; kk < k; ++kk) {
    const __m256 w0 = _mm256_loadu_ps(w);
    const __m256 w1 = _mm256_loadu_ps(w + 8);
    w += 16;
    __m256 bv = _mm256_broadcast_ss(b + o0);
    c00 = _mm256_fmadd_ps(bv, w0, c00);
    c01 = _mm256_fmadd_ps(bv, w1, c01);
    if constexpr (R > 1) {
      bv = _mm256_broadcast_ss(b + o1);
      c10 = _mm256_fmadd_ps(bv, w0, c10);
      c11 = _mm256_fmadd_ps(bv, w1, c11);
    }
    if constexpr (R > 2) {
      bv = _mm256_broadcast_ss(b + o2);
      c20 = _mm256_fmadd_ps(bv, w0, c20);
      c21 = _mm256_fmadd_ps(bv, w1, c21);
    }
    if constexpr (R > 3) {
      bv = _mm256_broadcast_ss(b + o3);
      c30 = _mm256_fmadd_ps(bv, w0, c30);
      c31 = _mm256_fmadd_ps(bv, w1, c31);
    }
    if constexpr (R > 4) {
      bv = _mm256_broadcast_ss(b + o4);
      c40 = _mm256_fmadd_ps(bv, w0, c40);
      c41 = _mm256_fmadd_ps(bv, w1, c41);
    }
    if constexpr (R > 5) {
      bv = _mm256_broadcast_ss(b + o5);
      c50 = _mm256_fmadd_ps(bv, w0, c50);
      c51 = _mm256_fmadd_ps(bv, w1, c51);
    }
    b += ldb;
  }
  _mm256_storeu_ps(ct, c00), _mm256_storeu_ps(ct + 8, c01);
  if constexpr (R > 1) _mm256_storeu_ps(ct + ldct, c10), _mm256_storeu_ps(ct + ldct + 8, c11);
  if constexpr (R > 2)
    _mm256_storeu_ps(ct + 2 * ldct, c20), _mm256_storeu_ps(ct + 2 * ldct + 8, c21);
  if constexpr (R > 3)
    _mm256_storeu_ps(ct + 3 * ldct, c30), _mm256_storeu_ps(ct + 3 * ldct + 8, c31);
  if constexpr (R > 4)
    _mm256_storeu_ps(ct + 4 * ldct, c40), _mm256_storeu_ps(ct + 4 * ldct + 8, c41);
  if constexpr (R > 5)
    _mm256_storeu_ps(ct + 5 * ldct, c50), _mm256_storeu_ps(ct + 5 * ldct + 8, c51);
}

inline void transpose8x8(__m256& r0, __m256& r1, __m256& r2, __m256& r3, __m256& r4, __m256& r5,
                         __m256& r6, __m256& r7) {
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r0 = _mm256_permute2f128_ps(u0, u4, 0x20), r4 = _mm256_permute2f128_ps(u0, u4, 0x31);
  r1 = _mm256_permute2f128_ps(u1, u5, 0x20), r5 = _mm256_permute2f128_ps(u1, u5, 0x31);
  r2 = _mm256_permute2f128_ps(u2, u6, 0x20), r6 = _mm256_permute2f128_ps(u2, u6, 0x31);
  r3 = _mm256_permute2f128_ps(u3, u7, 0x20), r7 = _mm256_permute2f128_ps(u3, u7, 0x31);
}

}  // namespace

namespace {

template <bool kIx>
void t_tiles(size_t mr, size_t k, const float* b, size_t ldb, const size_t* offs, const float* w,
             float* ct, size_t ldct, bool accumulate) {
  switch (mr) {
    case 1:
      return t_tile<1, kIx>(k, b, ldb, offs, w, ct, ldct, accumulate);
    case 2:
      return t_tile<2, kIx>(k, b, ldb, offs, w, ct, ldct, accumulate);
    case 3:
      return t_tile<3, kIx>(k, b, ldb, offs, w, ct, ldct, accumulate);
    case 4:
      return t_tile<4, kIx>(k, b, ldb, offs, w, ct, ldct, accumulate);
    case 5:
      return t_tile<5, kIx>(k, b, ldb, offs, w, ct, ldct, accumulate);
    default:
      return t_tile<6, kIx>(k, b, ldb, offs, w, ct, ldct, accumulate);
  }
}

}  // namespace

void f32_gemm_t_ukernel_6x16__avx2_fma(size_t mr, size_t k, const float* b, size_t ldb,
                                       const float* w, float* ct, size_t ldct, bool accumulate) {
  t_tiles<false>(mr, k, b, ldb, nullptr, w, ct, ldct, accumulate);
}

void f32_gemm_t_ix_ukernel_6x16__avx2_fma(size_t mr, size_t k, const float* b, size_t ldb,
                                          const size_t* offs, const float* w, float* ct,
                                          size_t ldct, bool accumulate) {
  t_tiles<true>(mr, k, b, ldb, offs, w, ct, ldct, accumulate);
}

// 8 pixels x 8 channels at a time: 8 rows of ct transposed in registers, so each channel's 8
// pixels leave as one store.
void f32_gemm_t_store__avx2(size_t p, size_t rows, size_t nr, const float* ct, const float* bias,
                            float* c, size_t ldc, const f32_minmax* params) {
  const __m256 vmin = _mm256_set1_ps(params != nullptr ? params->min : -INFINITY);
  const __m256 vmax = _mm256_set1_ps(params != nullptr ? params->max : INFINITY);
  for (size_t j0 = 0; j0 < rows; j0 += 8) {
    const size_t nj = rows - j0 < 8 ? rows - j0 : 8;
    for (size_t i0 = 0; i0 < p; i0 += 8) {
      const size_t ni = p - i0 < 8 ? p - i0 : 8;
      const float* src = ct + i0 * nr + j0;
      __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + nr);
      __m256 r2 = _mm256_loadu_ps(src + 2 * nr), r3 = _mm256_loadu_ps(src + 3 * nr);
      __m256 r4 = _mm256_loadu_ps(src + 4 * nr), r5 = _mm256_loadu_ps(src + 5 * nr);
      __m256 r6 = _mm256_loadu_ps(src + 6 * nr), r7 = _mm256_loadu_ps(src + 7 * nr);
      transpose8x8(r0, r1, r2, r3, r4, r5, r6, r7);
      const __m256i mask = tail_mask(ni);
      float* dst = c + j0 * ldc + i0;
      auto put = [&](size_t j, __m256 v) {
        if (j >= nj) return;
        if (bias != nullptr) v = _mm256_add_ps(v, _mm256_broadcast_ss(bias + j0 + j));
        v = _mm256_min_ps(_mm256_max_ps(v, vmin), vmax);
        if (ni == 8)
          _mm256_storeu_ps(dst + j * ldc, v);
        else
          _mm256_maskstore_ps(dst + j * ldc, mask, v);
      };
      put(0, r0), put(1, r1), put(2, r2), put(3, r3), put(4, r4), put(5, r5), put(6, r6),
          put(7, r7);
    }
  }
}

}  // namespace edgefit
