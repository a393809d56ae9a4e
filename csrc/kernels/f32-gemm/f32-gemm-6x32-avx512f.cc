// AVX-512F f32 GEMM: 6 rows x 32 columns (12 zmm accumulators), tails by lane masks.
// Built with -mavx512f; only called when CpuInfo reports AVX-512F.
#include <immintrin.h>

// GCC 12's own AVX-512 intrinsics pass an undefined source (_mm512_undefined_ps) to their
// builtins and then warn that it "may be used uninitialized" once inlined here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "kernels/f32-gemm/f32-gemm.h"

namespace edgefit {

void f32_gemm_ukernel_6x32__avx512f(size_t mr, size_t n, size_t k, const float* panel,
                                    const float* b, size_t ldb, float* c, size_t ldc,
                                    const f32_minmax* params) {
  constexpr size_t MR = 6;
  const __m512 vmin = _mm512_set1_ps(params->min);
  const __m512 vmax = _mm512_set1_ps(params->max);
  for (size_t j = 0; j < n; j += 32) {
    const size_t nr = n - j < 32 ? n - j : 32;
    const __mmask16 m0 = nr >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << nr) - 1u);
    const __mmask16 m1 =
        nr >= 32 ? __mmask16(0xFFFF) : (nr > 16 ? __mmask16((1u << (nr - 16)) - 1u) : 0);
    // Named accumulators: GCC 12 spills accumulator arrays to the stack (DESIGN.md).
    __m512 c00 = _mm512_set1_ps(panel[0]), c01 = c00, c10 = _mm512_set1_ps(panel[1]), c11 = c10;
    __m512 c20 = _mm512_set1_ps(panel[2]), c21 = c20, c30 = _mm512_set1_ps(panel[3]), c31 = c30;
    __m512 c40 = _mm512_set1_ps(panel[4]), c41 = c40, c50 = _mm512_set1_ps(panel[5]), c51 = c50;
    const float* w = panel + MR;
    const float* bp = b + j;
    for (size_t kk = 0; kk < k; ++kk) {
      const __m512 b0 = _mm512_maskz_loadu_ps(m0, bp);
      const __m512 b1 = _mm512_maskz_loadu_ps(m1, bp + 16);
      bp += ldb;
      __m512 wv = _mm512_set1_ps(w[0]);
      c00 = _mm512_fmadd_ps(wv, b0, c00);
      c01 = _mm512_fmadd_ps(wv, b1, c01);
      wv = _mm512_set1_ps(w[1]);
      c10 = _mm512_fmadd_ps(wv, b0, c10);
      c11 = _mm512_fmadd_ps(wv, b1, c11);
      wv = _mm512_set1_ps(w[2]);
      c20 = _mm512_fmadd_ps(wv, b0, c20);
      c21 = _mm512_fmadd_ps(wv, b1, c21);
      wv = _mm512_set1_ps(w[3]);
      c30 = _mm512_fmadd_ps(wv, b0, c30);
      c31 = _mm512_fmadd_ps(wv, b1, c31);
      wv = _mm512_set1_ps(w[4]);
      c40 = _mm512_fmadd_ps(wv, b0, c40);
      c41 = _mm512_fmadd_ps(wv, b1, c41);
      wv = _mm512_set1_ps(w[5]);
      c50 = _mm512_fmadd_ps(wv, b0, c50);
      c51 = _mm512_fmadd_ps(wv, b1, c51);
      w += MR;
    }
    const __m512 accs[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
    for (size_t i = 0; i < mr; ++i) {
      _mm512_mask_storeu_ps(c + i * ldc + j, m0,
                            _mm512_min_ps(_mm512_max_ps(accs[2 * i], vmin), vmax));
      _mm512_mask_storeu_ps(c + i * ldc + j + 16, m1,
                            _mm512_min_ps(_mm512_max_ps(accs[2 * i + 1], vmin), vmax));
    }
  }
}

// Packed-B variant: strips of 32 columns ([k][32], zero past n), so B loads are never masked;
// the tail strip masks only the loads of c (accumulating K blocks) and the stores.
void f32_gemm_packed_ukernel_6x32__avx512f(size_t mr, size_t n, size_t k, const float* w,
                                           const float* bias, const float* b, float* c, size_t ldc,
                                           const f32_minmax* params) {
  // Rows past mr read (and never write) row mr - 1 of c.
  const size_t r1 = mr > 1 ? 1 : 0, r2 = mr > 2 ? 2 : r1, r3 = mr > 3 ? 3 : r2,
               r4 = mr > 4 ? 4 : r3, r5 = mr > 5 ? 5 : r4;
  for (size_t j = 0; j < n; j += 32, b += k * 32) {
    const size_t nr = n - j < 32 ? n - j : 32;
    const __mmask16 m0 = nr >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << nr) - 1u);
    const __mmask16 m1 =
        nr >= 32 ? __mmask16(0xFFFF) : (nr > 16 ? __mmask16((1u << (nr - 16)) - 1u) : 0);
    float* cj = c + j;
    __m512 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    if (bias != nullptr) {
      c00 = _mm512_set1_ps(bias[0]), c01 = c00, c10 = _mm512_set1_ps(bias[1]), c11 = c10;
      c20 = _mm512_set1_ps(bias[2]), c21 = c20, c30 = _mm512_set1_ps(bias[3]), c31 = c30;
      c40 = _mm512_set1_ps(bias[4]), c41 = c40, c50 = _mm512_set1_ps(bias[5]), c51 = c50;
    } else {
      c00 = _mm512_maskz_loadu_ps(m0, cj), c01 = _mm512_maskz_loadu_ps(m1, cj + 16);
      c10 = _mm512_maskz_loadu_ps(m0, cj + r1 * ldc),
      c11 = _mm512_maskz_loadu_ps(m1, cj + r1 * ldc + 16);
      c20 = _mm512_maskz_loadu_ps(m0, cj + r2 * ldc),
      c21 = _mm512_maskz_loadu_ps(m1, cj + r2 * ldc + 16);
      c30 = _mm512_maskz_loadu_ps(m0, cj + r3 * ldc),
      c31 = _mm512_maskz_loadu_ps(m1, cj + r3 * ldc + 16);
      c40 = _mm512_maskz_loadu_ps(m0, cj + r4 * ldc),
      c41 = _mm512_maskz_loadu_ps(m1, cj + r4 * ldc + 16);
      c50 = _mm512_maskz_loadu_ps(m0, cj + r5 * ldc),
      c51 = _mm512_maskz_loadu_ps(m1, cj + r5 * ldc + 16);
    }
    const float* wp = w;
    const float* bp = b;
    for (size_t kk = 0; kk < k; ++kk) {
      const __m512 b0 = _mm512_loadu_ps(bp);
      const __m512 b1 = _mm512_loadu_ps(bp + 16);
      bp += 32;
      __m512 wv = _mm512_set1_ps(wp[0]);
      c00 = _mm512_fmadd_ps(wv, b0, c00);
      c01 = _mm512_fmadd_ps(wv, b1, c01);
      wv = _mm512_set1_ps(wp[1]);
      c10 = _mm512_fmadd_ps(wv, b0, c10);
      c11 = _mm512_fmadd_ps(wv, b1, c11);
      wv = _mm512_set1_ps(wp[2]);
      c20 = _mm512_fmadd_ps(wv, b0, c20);
      c21 = _mm512_fmadd_ps(wv, b1, c21);
      wv = _mm512_set1_ps(wp[3]);
      c30 = _mm512_fmadd_ps(wv, b0, c30);
      c31 = _mm512_fmadd_ps(wv, b1, c31);
      wv = _mm512_set1_ps(wp[4]);
      c40 = _mm512_fmadd_ps(wv, b0, c40);
      c41 = _mm512_fmadd_ps(wv, b1, c41);
      wv = _mm512_set1_ps(wp[5]);
      c50 = _mm512_fmadd_ps(wv, b0, c50);
      c51 = _mm512_fmadd_ps(wv, b1, c51);
      wp += 6;
    }
    if (params != nullptr) {
      const __m512 vmin = _mm512_set1_ps(params->min), vmax = _mm512_set1_ps(params->max);
      auto cl = [&](__m512& v) { v = _mm512_min_ps(_mm512_max_ps(v, vmin), vmax); };
      cl(c00), cl(c01), cl(c10), cl(c11), cl(c20), cl(c21);
      cl(c30), cl(c31), cl(c40), cl(c41), cl(c50), cl(c51);
    }
    auto st = [&](float* p, __m512 v0, __m512 v1) {
      _mm512_mask_storeu_ps(p, m0, v0);
      _mm512_mask_storeu_ps(p + 16, m1, v1);
    };
    st(cj, c00, c01);
    if (mr > 1) st(cj + ldc, c10, c11);
    if (mr > 2) st(cj + 2 * ldc, c20, c21);
    if (mr > 3) st(cj + 3 * ldc, c30, c31);
    if (mr > 4) st(cj + 4 * ldc, c40, c41);
    if (mr > 5) st(cj + 5 * ldc, c50, c51);
  }
}

}  // namespace edgefit
