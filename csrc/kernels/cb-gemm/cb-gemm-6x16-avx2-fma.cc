// AVX2+FMA codebook GEMM: the 6 rows of a panel are decoded through their tables (with
// row_scale folded in, as the dense weight is defined) into a per-thread packed panel of
// 6 x K floats, then multiplied by the 6x16 f32-gemm microkernel. Only one panel exists at a
// time per thread; the dense weight matrix is never materialised.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cb-gemm/cb-gemm.h"
#include "kernels/f32-gemm/f32-gemm.h"

namespace edgefit {

namespace {

// 8 consecutive 4-bit codes of a row (4 bytes at `codes`) through its scaled 16-entry table,
// held in two registers: a permute per half, blended on the code's bit 3.
inline __m256 decode8(const uint8_t* codes, __m256 tlo, __m256 thi) {
  const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
  uint32_t v;
  std::memcpy(&v, codes, 4);
  const __m256i idx =
      _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(int(v)), shifts), _mm256_set1_epi32(15));
  return _mm256_blendv_ps(_mm256_permutevar8x32_ps(tlo, idx), _mm256_permutevar8x32_ps(thi, idx),
                          _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}

// One pixel (a classifier, batch 1) with 4-bit codes: decoding dominates, so decode 8 codes per
// step with the row's 16-entry table held in two registers (permute + blend on bit 3).
void cb_gemv_4bit(size_t m0, size_t mr, const cb_weights* w, const float* bias, const float* x,
                  float* y, size_t ldy, const f32_minmax* params) {
  const size_t k = w->k;
  for (size_t i = 0; i < mr; ++i) {
    const size_t row = m0 + i;
    const uint8_t* codes = w->packed + row * w->row_bytes;
    const float* table = w->table + size_t(w->group[row]) * 16;
    const __m256 tlo = _mm256_loadu_ps(table), thi = _mm256_loadu_ps(table + 8);
    __m256 acc = _mm256_setzero_ps();
    size_t kk = 0;
    for (; kk + 8 <= k; kk += 8) {
      acc = _mm256_fmadd_ps(decode8(codes + kk / 2, tlo, thi), _mm256_loadu_ps(x + kk), acc);
    }
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
    float sum = _mm_cvtss_f32(s4);
    for (; kk < k; ++kk) sum += table[(codes[kk >> 1] >> ((kk & 1) * 4)) & 15u] * x[kk];
    y[i * ldy] = f32_clamp(sum * w->row_scale[row] + (bias != nullptr ? bias[row] : 0.0f), params);
  }
}

// Row i < n of a decode block starting at m0 (rows real ones): its 16-entry table scaled by
// row_scale in two registers and its codes; rows past `rows` repeat the last one with scale 0,
// so they decode to zeros.
inline void scaled_tables(size_t m0, size_t rows, size_t n, const cb_weights* w, __m256* tlo,
                          __m256* thi, const uint8_t** codes) {
  for (size_t i = 0; i < n; ++i) {
    const size_t row = m0 + std::min(i, rows - 1);
    const __m256 scale = _mm256_set1_ps(i < rows ? w->row_scale[row] : 0.0f);
    const float* table = w->table + size_t(w->group[row]) * 16;
    tlo[i] = _mm256_mul_ps(_mm256_loadu_ps(table), scale);
    thi[i] = _mm256_mul_ps(_mm256_loadu_ps(table + 8), scale);
    codes[i] = w->packed + row * w->row_bytes;
  }
}

// r[i] = row i's 8 values -> r[j] = column j's 8 rows.
inline void transpose8x8(__m256* r) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20), r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20), r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20), r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20), r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

}  // namespace

void cb_gemm_decode_strip_16__avx2(size_t m0, size_t rows, const cb_weights* w, float* strip) {
  constexpr size_t NR = 16;
  const size_t k = w->k;
  if (w->bits != 4) {
    // Other widths: the generic decode of 16 rows, whose panel is the strip after its 16 biases.
    thread_local std::vector<float> panel;
    panel.resize(NR * (k + 1));
    cb_gemm_decode_panel(m0, rows, NR, w, nullptr, panel.data());
    std::memcpy(strip, panel.data() + NR, k * NR * sizeof(float));
    return;
  }
  __m256 tlo[NR], thi[NR];
  const uint8_t* codes[NR];
  scaled_tables(m0, rows, NR, w, tlo, thi, codes);
  size_t kk = 0;
  // 8 codes of each of the 16 rows, two 8x8 transposes: columns kk..kk+7 of the strip, rows 0-7
  // in the first 8 floats of each, rows 8-15 in the last (rows past `rows` decode to zero: their
  // table was scaled by 0).
  for (; kk + 8 <= k; kk += 8) {
    __m256 a[8], b[8];
    for (size_t i = 0; i < 8; ++i) {
      a[i] = decode8(codes[i] + kk / 2, tlo[i], thi[i]);
      b[i] = decode8(codes[8 + i] + kk / 2, tlo[8 + i], thi[8 + i]);
    }
    transpose8x8(a);
    transpose8x8(b);
    float* o = strip + kk * NR;
    for (size_t j = 0; j < 8; ++j) {
      _mm256_storeu_ps(o + j * NR, a[j]);
      _mm256_storeu_ps(o + j * NR + 8, b[j]);
    }
  }
  for (; kk < k; ++kk)
    for (size_t i = 0; i < NR; ++i) {
      const size_t row = m0 + std::min(i, rows - 1);
      const float* table = w->table + size_t(w->group[row]) * 16;
      strip[kk * NR + i] =
          i < rows ? table[(codes[i][kk >> 1] >> ((kk & 1) * 4)) & 15u] * w->row_scale[row] : 0.0f;
    }
}

void cb_gemm_decode_panel_6__avx2(size_t m0, size_t mr, const cb_weights* w, const float* bias,
                                  float* panel) {
  constexpr size_t MR = 6;
  if (w->bits != 4) {
    cb_gemm_decode_panel(m0, mr, MR, w, bias, panel);
    return;
  }
  const size_t k = w->k;
  __m256 tlo[MR], thi[MR];
  const uint8_t* codes[MR];
  for (size_t i = 0; i < MR; ++i) panel[i] = i < mr && bias != nullptr ? bias[m0 + i] : 0.0f;
  scaled_tables(m0, mr, MR, w, tlo, thi, codes);
  float* out = panel + MR;
  size_t kk = 0;
  // 8 codes of each row decoded by table permutes (rows 6, 7 are zero), then an 8x8 transpose
  // gives the 8 k-columns of the panel; each 8-float store overlaps the next column by 2 floats
  // (written again right after), so the caller leaves 2 floats of slack after the panel.
  for (; kk + 8 <= k; kk += 8) {
    __m256 r[8];
    for (size_t i = 0; i < MR; ++i) r[i] = decode8(codes[i] + kk / 2, tlo[i], thi[i]);
    r[6] = r[7] = _mm256_setzero_ps();
    transpose8x8(r);
    float* o = out + kk * MR;
    for (size_t j = 0; j < 8; ++j) _mm256_storeu_ps(o + j * MR, r[j]);
  }
  for (; kk < k; ++kk)
    for (size_t i = 0; i < MR; ++i) {
      if (i >= mr) {
        out[kk * MR + i] = 0.0f;
        continue;
      }
      const size_t row = m0 + i;
      const float* table = w->table + size_t(w->group[row]) * 16;
      out[kk * MR + i] = table[(codes[i][kk >> 1] >> ((kk & 1) * 4)) & 15u] * w->row_scale[row];
    }
}

void cb_gemm_ukernel_6x16__avx2_fma(size_t m0, size_t mr, size_t n, const cb_weights* w,
                                    const float* bias, const float* x, size_t ldx, float* y,
                                    size_t ldy, const f32_minmax* params) {
  constexpr size_t MR = 6;
  if (n == 1 && w->bits == 4 && (ldx == 1 || w->k == 1)) {
    cb_gemv_4bit(m0, mr, w, bias, x, y, ldy, params);
    return;
  }
  thread_local std::vector<float> panel;
  panel.resize(MR * (w->k + 1));
  float* p = panel.data();
  cb_gemm_decode_panel(m0, mr, MR, w, bias, p);
  const size_t k = w->k;
  f32_gemm_ukernel_6x16__avx2_fma(mr, n, k, p, x, ldx, y, ldy, params);
}

}  // namespace edgefit
