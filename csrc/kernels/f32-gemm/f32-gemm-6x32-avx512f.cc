// AVX-512F f32 GEMM: 6 rows x 32 columns (12 zmm accumulators), tails by lane masks.
// Built with -mavx512f; only called when CpuInfo reports AVX-512F.
#include <immintrin.h>

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

}  // namespace edgefit
