// AVX2+FMA codebook GEMM: the 6 rows of a panel are decoded through their tables (with
// row_scale folded in, as the dense weight is defined) into a per-thread packed panel of
// 6 x K floats, then multiplied by the 6x16 f32-gemm microkernel. Only one panel exists at a
// time per thread; the dense weight matrix is never materialised.
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "kernels/cb-gemm/cb-gemm.h"
#include "kernels/f32-gemm/f32-gemm.h"

namespace edgefit {

namespace {

// One pixel (a classifier, batch 1) with 4-bit codes: decoding dominates, so decode 8 codes per
// step with the row's 16-entry table held in two registers (permute + blend on bit 3).
void cb_gemv_4bit(size_t m0, size_t mr, const cb_weights* w, const float* bias, const float* x,
                  float* y, size_t ldy, const f32_minmax* params) {
  const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
  const __m256i low4 = _mm256_set1_epi32(15);
  const size_t k = w->k;
  for (size_t i = 0; i < mr; ++i) {
    const size_t row = m0 + i;
    const uint8_t* codes = w->packed + row * w->row_bytes;
    const float* table = w->table + size_t(w->group[row]) * 16;
    const __m256 tlo = _mm256_loadu_ps(table), thi = _mm256_loadu_ps(table + 8);
    __m256 acc = _mm256_setzero_ps();
    size_t kk = 0;
    for (; kk + 8 <= k; kk += 8) {
      uint32_t v;
      std::memcpy(&v, codes + kk / 2, 4);
      const __m256i idx =
          _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(int(v)), shifts), low4);
      const __m256 lo = _mm256_permutevar8x32_ps(tlo, idx);
      const __m256 hi = _mm256_permutevar8x32_ps(thi, idx);
      const __m256 wv = _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
      acc = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + kk), acc);
    }
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
    float sum = _mm_cvtss_f32(s4);
    for (; kk < k; ++kk) sum += table[(codes[kk >> 1] >> ((kk & 1) * 4)) & 15u] * x[kk];
    y[i * ldy] = f32_clamp(sum * w->row_scale[row] + (bias != nullptr ? bias[row] : 0.0f), params);
  }
}

}  // namespace

void cb_gemm_ukernel_6x16__avx2_fma(size_t m0, size_t mr, size_t n, const cb_weights* w,
                                    const float* bias, const float* x, size_t ldx, float* y,
                                    size_t ldy, const f32_minmax* params) {
  constexpr size_t MR = 6;
  if (n == 1 && w->bits == 4 && (ldx == 1 || w->k == 1)) {
    cb_gemv_4bit(m0, mr, w, bias, x, y, ldy, params);
    return;
  }
  thread_local std::vector<float> panel;
  const size_t k = w->k;
  panel.resize(MR * (k + 1));
  float* p = panel.data();
  const size_t entries = size_t(1) << w->bits;
  for (size_t i = 0; i < MR; ++i) {
    float* out = p + MR + i;
    if (i >= mr) {
      p[i] = 0.0f;
      for (size_t kk = 0; kk < k; ++kk) out[kk * MR] = 0.0f;
      continue;
    }
    const size_t row = m0 + i;
    p[i] = bias != nullptr ? bias[row] : 0.0f;
    const uint8_t* codes = w->packed + row * w->row_bytes;
    const float* table = w->table + size_t(w->group[row]) * entries;
    const float scale = w->row_scale[row];
    // The row's table scaled once: 2^bits multiplies instead of K.
    float scaled[256];
    for (size_t e = 0; e < entries; ++e) scaled[e] = table[e] * scale;
    if (w->bits == 4) {
      size_t kk = 0;
      for (; kk + 2 <= k; kk += 2) {
        const uint8_t b = codes[kk >> 1];
        out[kk * MR] = scaled[b & 15u];
        out[(kk + 1) * MR] = scaled[b >> 4];
      }
      if (kk < k) out[kk * MR] = scaled[codes[kk >> 1] & 15u];
    } else if (w->bits == 8) {
      for (size_t kk = 0; kk < k; ++kk) out[kk * MR] = scaled[codes[kk]];
    } else {
      for (size_t kk = 0; kk < k; ++kk)
        out[kk * MR] = scaled[cb_code(codes, w->row_bytes, w->bits, kk)];
    }
  }
  f32_gemm_ukernel_6x16__avx2_fma(mr, n, k, p, x, ldx, y, ldy, params);
}

}  // namespace edgefit
