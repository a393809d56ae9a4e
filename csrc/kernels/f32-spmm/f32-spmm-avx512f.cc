// AVX-512 sparse x dense: 64 pixels x 4 output channels (16 accumulators, 4 pixel vectors, one
// broadcast weight), 64 x 1 / 64 x 2 likewise. Against the AVX2 24x4 tile each weight block (its
// column index, pointer arithmetic, 4 broadcasts) feeds 16 zmm FMAs instead of 12 ymm ones, and a
// 7x7 or 14x14 layer (49 / 196 pixels) takes one or four passes over its weights instead of three
// or nine. Pixel tails: one masked vector (a k-mask costs nothing extra on AVX-512).
#include <immintrin.h>

// GCC 12's own AVX-512 intrinsics pass an undefined source (_mm512_undefined_ps) to their
// builtins and then warn that it "may be used uninitialized" once inlined here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "kernels/f32-spmm/f32-spmm.h"

namespace edgefit {
namespace {

inline __mmask16 tail_mask(size_t n) { return __mmask16((1u << n) - 1u); }

// NV vectors of 16 pixels x B channels; the last vector holds `last` pixels (1..16).
template <size_t B, size_t NV>
inline void tile(size_t p0, size_t last, size_t block_rows, const int32_t* row_ptr,
                 const int32_t* col_idx, const float* values, const float* bias, const float* x,
                 size_t x_stride, float* y, size_t y_stride, __m512 vmin, __m512 vmax) {
  const __mmask16 mask = tail_mask(last);
  for (size_t r = 0; r < block_rows; ++r) {
    __m512 acc[B][NV];
#pragma GCC unroll 4
    for (size_t b = 0; b < B; ++b) {
      const __m512 init = _mm512_set1_ps(bias != nullptr ? bias[r * B + b] : 0.0f);
#pragma GCC unroll 4
      for (size_t v = 0; v < NV; ++v) acc[b][v] = init;
    }
    const int32_t end = row_ptr[r + 1];
    for (int32_t j = row_ptr[r]; j < end; ++j) {
      const float* xr = x + size_t(col_idx[j]) * x_stride + p0;
      __m512 xv[NV];
#pragma GCC unroll 4
      for (size_t v = 0; v < NV; ++v)
        xv[v] =
            v + 1 < NV ? _mm512_loadu_ps(xr + 16 * v) : _mm512_maskz_loadu_ps(mask, xr + 16 * v);
      const float* vals = values + size_t(j) * B;
#pragma GCC unroll 4
      for (size_t b = 0; b < B; ++b) {
        const __m512 wv = _mm512_set1_ps(vals[b]);
#pragma GCC unroll 4
        for (size_t v = 0; v < NV; ++v) acc[b][v] = _mm512_fmadd_ps(wv, xv[v], acc[b][v]);
      }
    }
#pragma GCC unroll 4
    for (size_t b = 0; b < B; ++b) {
      float* yr = y + (r * B + b) * y_stride + p0;
#pragma GCC unroll 4
      for (size_t v = 0; v < NV; ++v) {
        const __m512 o = _mm512_min_ps(_mm512_max_ps(acc[b][v], vmin), vmax);
        if (v + 1 < NV)
          _mm512_storeu_ps(yr + 16 * v, o);
        else
          _mm512_mask_storeu_ps(yr + 16 * v, mask, o);
      }
    }
  }
}

// Full 64-pixel tiles, then the remainder as one tile of 1-4 vectors, the last one masked.
template <size_t B>
void spmm(size_t pixels, size_t block_rows, const int32_t* row_ptr, const int32_t* col_idx,
          const float* values, const float* bias, const float* x, size_t x_stride, float* y,
          size_t y_stride, const f32_minmax* params) {
  const __m512 vmin = _mm512_set1_ps(params->min);
  const __m512 vmax = _mm512_set1_ps(params->max);
  size_t p = 0;
  for (; p + 64 <= pixels; p += 64)
    tile<B, 4>(p, 16, block_rows, row_ptr, col_idx, values, bias, x, x_stride, y, y_stride, vmin,
               vmax);
  const size_t rem = pixels - p;
  if (rem == 0) return;
  const size_t nv = (rem + 15) / 16, last = rem - 16 * (nv - 1);
  switch (nv) {
    case 1:
      tile<B, 1>(p, last, block_rows, row_ptr, col_idx, values, bias, x, x_stride, y, y_stride,
                 vmin, vmax);
      return;
    case 2:
      tile<B, 2>(p, last, block_rows, row_ptr, col_idx, values, bias, x, x_stride, y, y_stride,
                 vmin, vmax);
      return;
    case 3:
      tile<B, 3>(p, last, block_rows, row_ptr, col_idx, values, bias, x, x_stride, y, y_stride,
                 vmin, vmax);
      return;
    default:
      tile<B, 4>(p, last, block_rows, row_ptr, col_idx, values, bias, x, x_stride, y, y_stride,
                 vmin, vmax);
      return;
  }
}

}  // namespace

#define EDGEFIT_DEFINE_SPMM(name, B)                                                               \
  void name(size_t pixels, size_t block_rows, const int32_t* row_ptr, const int32_t* col_idx,      \
            const float* values, const float* bias, const float* x, size_t x_stride, float* y,     \
            size_t y_stride, const f32_minmax* params) {                                           \
    spmm<B>(pixels, block_rows, row_ptr, col_idx, values, bias, x, x_stride, y, y_stride, params); \
  }

EDGEFIT_DEFINE_SPMM(f32_spmm_ukernel_64x1__avx512f, 1)
EDGEFIT_DEFINE_SPMM(f32_spmm_ukernel_64x2__avx512f, 2)
EDGEFIT_DEFINE_SPMM(f32_spmm_ukernel_64x4__avx512f, 4)

}  // namespace edgefit
