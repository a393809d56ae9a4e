// AVX-512 tiles of the channel-blocked convolution (f32-nchwc.h): P output pixels (<= 6) x OB
// output blocks (<= 4, 64 channels) in P * OB zmm accumulators, 4 weight vectors and one
// broadcast: 29 of the 32 registers at 6 x 4.
#include <immintrin.h>

#include <algorithm>

#include "kernels/f32-nchwc/f32-nchwc.h"

namespace edgefit {

namespace {

constexpr size_t kC = kNchwcBlock;

// Pixel i reads x + offs[i] (+ the tap's offset); its results go to y + i * 16 of each block.
// first: start from the bias, else from y (an earlier pass); last: clamp.
template <size_t P, size_t OB>
void tile(const float* x, const size_t* offs, size_t block_stride, size_t row_stride, size_t nib,
          size_t kh, size_t kw, const float* w, const float* bias, float* y, size_t y_stride,
          bool first, bool last, const f32_minmax* mm) {
  size_t o[P];
#pragma GCC unroll 6
  for (size_t i = 0; i < P; ++i) o[i] = offs[i];
  __m512 acc[P][OB];
#pragma GCC unroll 4
  for (size_t b = 0; b < OB; ++b) {
    const __m512 init = bias != nullptr ? _mm512_loadu_ps(bias + b * kC) : _mm512_setzero_ps();
#pragma GCC unroll 6
    for (size_t i = 0; i < P; ++i)
      acc[i][b] = first ? init : _mm512_loadu_ps(y + b * y_stride + i * kC);
  }
  for (size_t ib = 0; ib < nib; ++ib)
    for (size_t ky = 0; ky < kh; ++ky)
      for (size_t kx = 0; kx < kw; ++kx) {
        const float* xb = x + ib * block_stride + ky * row_stride + kx * kC;
#pragma GCC unroll 4
        for (size_t c = 0; c < kC; ++c) {
          __m512 wv[OB];
#pragma GCC unroll 4
          for (size_t b = 0; b < OB; ++b) wv[b] = _mm512_loadu_ps(w + b * kC);
          w += OB * kC;
#pragma GCC unroll 6
          for (size_t i = 0; i < P; ++i) {
            const __m512 v = _mm512_set1_ps(xb[o[i] + c]);
#pragma GCC unroll 4
            for (size_t b = 0; b < OB; ++b) acc[i][b] = _mm512_fmadd_ps(v, wv[b], acc[i][b]);
          }
        }
      }
  const __m512 lo = _mm512_set1_ps(mm->min), hi = _mm512_set1_ps(mm->max);
#pragma GCC unroll 4
  for (size_t b = 0; b < OB; ++b)
#pragma GCC unroll 6
    for (size_t i = 0; i < P; ++i) {
      __m512 v = acc[i][b];
      // maskz: the plain min / max pass GCC 12 an undefined source it warns about here.
      if (last) v = _mm512_maskz_min_ps(0xFFFF, _mm512_maskz_max_ps(0xFFFF, v, lo), hi);
      _mm512_storeu_ps(y + b * y_stride + i * kC, v);
    }
}

typedef void (*tile_fn)(const float*, const size_t*, size_t, size_t, size_t, size_t, size_t,
                        const float*, const float*, float*, size_t, bool, bool, const f32_minmax*);

template <size_t OB>
constexpr tile_fn kRow[6] = {tile<1, OB>, tile<2, OB>, tile<3, OB>,
                             tile<4, OB>, tile<5, OB>, tile<6, OB>};
constexpr const tile_fn* kTiles[4] = {kRow<1>, kRow<2>, kRow<3>, kRow<4>};

}  // namespace

void f32_nchwc_conv__avx512f(const f32_nchwc_conv_params* cp, const float* x, const float* packed,
                             const float* bias, float* y, size_t group, size_t p0, size_t p1,
                             const f32_minmax* params) {
  const conv2d_geometry& g = cp->g;
  const size_t taps = g.kh * g.kw, p = g.ho * g.wo, nib = cp->ic / kC;
  const size_t o0 = group * kC * kNchwcGroupBlocks;
  const size_t width = std::min(kC * kNchwcGroupBlocks, cp->oc - o0), ob = width / kC;
  const float* w = packed + o0 * cp->ic * taps;
  float* yg = y + o0 * p;
  const float* bg = bias != nullptr ? bias + o0 : nullptr;
  const size_t block_stride = cp->hp * cp->wp * kC, row_stride = cp->wp * kC;
  const tile_fn* row = kTiles[ob - 1];
  for (size_t ib0 = 0; ib0 < nib; ib0 += cp->pass_blocks) {
    const size_t nb = std::min(cp->pass_blocks, nib - ib0);
    const bool first = ib0 == 0, last = ib0 + nb == nib;
    const float* xb = x + ib0 * block_stride;
    const float* wb = w + ib0 * taps * kC * width;
    for (size_t px = p0; px < p1; px += 6) {
      const size_t n = std::min<size_t>(6, p1 - px);
      row[n - 1](xb, cp->offs + px, block_stride, row_stride, nb, g.kh, g.kw, wb, bg, yg + px * kC,
                 p * kC, first, last, params);
    }
  }
}

}  // namespace edgefit
