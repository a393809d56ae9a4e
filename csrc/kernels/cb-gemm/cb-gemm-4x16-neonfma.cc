// NEON+FMA codebook GEMM, 4 rows x 16 pixels. Per chunk of KC codes the 4 rows are decoded into a
// k-major [KC][4] tile on the stack (4 KiB; the dense matrix never exists), then multiplied with
// vfmaq_laneq_f32 like a packed f32-gemm panel; partial sums over chunks accumulate in y.
// 4-bit codes decode 16 at a time in registers: the row's 16-entry table is held as 4 byte planes
// (vld4q_u8), vqtbl1q_u8 looks up each byte of the 16 floats and zips rebuild them. Other widths
// decode through cb_code (generic n-bit path) into the same tile.
#include <arm_neon.h>

#include "kernels/cb-gemm/cb-gemm.h"

namespace edgefit {
namespace {

constexpr size_t MR = 4;
constexpr size_t KC = 256;  // a multiple of 16, so every chunk of 4-bit codes starts on a byte

inline float32x4_t clamp(float32x4_t v, float32x4_t lo, float32x4_t hi) {
  return vminq_f32(vmaxq_f32(v, lo), hi);
}

// 16 floats table[codes[i]]: 4 lookups of one byte plane each, then bytes re-interleaved.
inline void lookup16(const uint8x16x4_t& planes, uint8x16_t codes, float32x4_t out[4]) {
  const uint8x16_t b0 = vqtbl1q_u8(planes.val[0], codes);
  const uint8x16_t b1 = vqtbl1q_u8(planes.val[1], codes);
  const uint8x16_t b2 = vqtbl1q_u8(planes.val[2], codes);
  const uint8x16_t b3 = vqtbl1q_u8(planes.val[3], codes);
  const uint16x8_t lo01 = vreinterpretq_u16_u8(vzip1q_u8(b0, b1));
  const uint16x8_t hi01 = vreinterpretq_u16_u8(vzip2q_u8(b0, b1));
  const uint16x8_t lo23 = vreinterpretq_u16_u8(vzip1q_u8(b2, b3));
  const uint16x8_t hi23 = vreinterpretq_u16_u8(vzip2q_u8(b2, b3));
  out[0] = vreinterpretq_f32_u16(vzip1q_u16(lo01, lo23));
  out[1] = vreinterpretq_f32_u16(vzip2q_u16(lo01, lo23));
  out[2] = vreinterpretq_f32_u16(vzip1q_u16(hi01, hi23));
  out[3] = vreinterpretq_f32_u16(vzip2q_u16(hi01, hi23));
}

// Codes [k0, k0 + kc) of rows m0..m0+mr into wbuf[k][MR]; rows >= mr are zero.
void decode(const cb_weights* w, size_t m0, size_t mr, size_t k0, size_t kc, float* wbuf) {
  const size_t entries = size_t(1) << w->bits;
  size_t kk = 0;
  if (w->bits == 4) {
    uint8x16x4_t planes[MR];
    const uint8_t* codes[MR];
    for (size_t i = 0; i < MR; ++i) {
      const size_t row = m0 + (i < mr ? i : 0);
      planes[i] =
          vld4q_u8(reinterpret_cast<const uint8_t*>(w->table + size_t(w->group[row]) * entries));
      codes[i] = w->packed + row * w->row_bytes + k0 / 2;
    }
    const uint8x8_t nibble = vdup_n_u8(15);
    for (; kk + 16 <= kc; kk += 16) {
      float32x4_t d[MR][4];
      for (size_t i = 0; i < MR; ++i) {
        // 8 bytes = 16 codes, low nibble first: zip(lo, hi) puts them in k order.
        const uint8x8_t packed = vld1_u8(codes[i] + kk / 2);
        const uint8x8_t lo = vand_u8(packed, nibble);
        const uint8x8_t hi = vshr_n_u8(packed, 4);
        lookup16(planes[i], vcombine_u8(vzip1_u8(lo, hi), vzip2_u8(lo, hi)), d[i]);
        if (i >= mr)
          for (size_t q = 0; q < 4; ++q) d[i][q] = vdupq_n_f32(0.0f);
      }
      // vst4q_f32 interleaves the 4 rows: exactly the k-major [k][MR] layout.
      for (size_t q = 0; q < 4; ++q) {
        const float32x4x4_t t = {{d[0][q], d[1][q], d[2][q], d[3][q]}};
        vst4q_f32(wbuf + (kk + 4 * q) * MR, t);
      }
    }
  }
  for (size_t i = 0; i < MR; ++i) {
    if (i >= mr) {
      for (size_t k = kk; k < kc; ++k) wbuf[k * MR + i] = 0.0f;
      continue;
    }
    const size_t row = m0 + i;
    const uint8_t* codes = w->packed + row * w->row_bytes;
    const float* table = w->table + size_t(w->group[row]) * entries;
    for (size_t k = kk; k < kc; ++k)
      wbuf[k * MR + i] = table[cb_code(codes, w->row_bytes, w->bits, k0 + k)];
  }
}

// 1..3 pixels into the low lanes (the rest zero) and back.
inline float32x4_t load_partial(const float* p, size_t n) {
  float32x4_t v = vld1q_lane_f32(p, vdupq_n_f32(0.0f), 0);
  if (n > 1) v = vld1q_lane_f32(p + 1, v, 1);
  if (n > 2) v = vld1q_lane_f32(p + 2, v, 2);
  return v;
}

inline void store_partial(float* p, float32x4_t v, size_t n) {
  vst1q_lane_f32(p, v, 0);
  if (n > 1) vst1q_lane_f32(p + 1, v, 1);
  if (n > 2) vst1q_lane_f32(p + 2, v, 2);
}

// NV vectors of 4 pixels (full) or one vector of `rem` < 4 pixels (partial), all kc codes.
// One accumulator array per row, indexed only by the unrolled pixel vector: an [MR][NV] array
// indexed by a run-time row in the store loop made GCC 12 keep it on the stack and store all 16
// accumulators every k step.
template <size_t NV, bool partial>
inline void tile(size_t mr, size_t rem, size_t kc, const float* wbuf, const float* x, size_t ldx,
                 float* y, size_t ldy, bool first, bool last, const float* scale,
                 const float* bias4, float32x4_t vmin, float32x4_t vmax) {
  float32x4_t a0[NV], a1[NV], a2[NV], a3[NV];
  auto init = [&](float32x4_t* a, size_t i) {
#pragma GCC unroll 4
    for (size_t v = 0; v < NV; ++v) {
      const float* yp = y + i * ldy + 4 * v;
      if (first || i >= mr)
        a[v] = vdupq_n_f32(0.0f);
      else
        a[v] = partial ? load_partial(yp, rem) : vld1q_f32(yp);
    }
  };
  init(a0, 0);
  init(a1, 1);
  init(a2, 2);
  init(a3, 3);
  for (size_t kk = 0; kk < kc; ++kk) {
    const float32x4_t wv = vld1q_f32(wbuf + kk * MR);
    const float* xp = x + kk * ldx;
#pragma GCC unroll 4
    for (size_t v = 0; v < NV; ++v) {
      const float32x4_t xv = partial ? load_partial(xp, rem) : vld1q_f32(xp + 4 * v);
      a0[v] = vfmaq_laneq_f32(a0[v], xv, wv, 0);
      a1[v] = vfmaq_laneq_f32(a1[v], xv, wv, 1);
      a2[v] = vfmaq_laneq_f32(a2[v], xv, wv, 2);
      a3[v] = vfmaq_laneq_f32(a3[v], xv, wv, 3);
    }
  }
  auto store = [&](const float32x4_t* a, size_t i) {
#pragma GCC unroll 4
    for (size_t v = 0; v < NV; ++v) {
      float32x4_t o = a[v];
      if (last) o = clamp(vfmaq_n_f32(vdupq_n_f32(bias4[i]), o, scale[i]), vmin, vmax);
      float* yp = y + i * ldy + 4 * v;
      if (partial)
        store_partial(yp, o, rem);
      else
        vst1q_f32(yp, o);
    }
  };
  store(a0, 0);
  if (mr > 1) store(a1, 1);
  if (mr > 2) store(a2, 2);
  if (mr > 3) store(a3, 3);
}

}  // namespace

void cb_gemm_ukernel_4x16__neonfma(size_t m0, size_t mr, size_t n, const cb_weights* w,
                                   const float* bias, const float* x, size_t ldx, float* y,
                                   size_t ldy, const f32_minmax* params) {
  alignas(16) float wbuf[KC * MR];
  const float32x4_t vmin = vdupq_n_f32(params->min);
  const float32x4_t vmax = vdupq_n_f32(params->max);
  float scale[MR], bias4[MR];
  for (size_t i = 0; i < MR; ++i) {
    scale[i] = i < mr ? w->row_scale[m0 + i] : 0.0f;
    bias4[i] = i < mr && bias != nullptr ? bias[m0 + i] : 0.0f;
  }
  for (size_t k0 = 0; k0 < w->k || k0 == 0; k0 += KC) {
    const size_t kc = w->k - k0 < KC ? w->k - k0 : KC;
    const bool first = k0 == 0, last = k0 + kc == w->k;
    decode(w, m0, mr, k0, kc, wbuf);
    const float* xk = x + k0 * ldx;
    size_t j = 0;
    for (; j + 16 <= n; j += 16)
      tile<4, false>(mr, 0, kc, wbuf, xk + j, ldx, y + j, ldy, first, last, scale, bias4, vmin,
                     vmax);
    for (; j + 4 <= n; j += 4)
      tile<1, false>(mr, 0, kc, wbuf, xk + j, ldx, y + j, ldy, first, last, scale, bias4, vmin,
                     vmax);
    if (j < n)
      tile<1, true>(mr, n - j, kc, wbuf, xk + j, ldx, y + j, ldy, first, last, scale, bias4, vmin,
                    vmax);
    if (last) break;
  }
}

}  // namespace edgefit
