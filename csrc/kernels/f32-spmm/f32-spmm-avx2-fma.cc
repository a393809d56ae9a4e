// AVX2+FMA sparse x dense: 32 pixels x 1 or 2 output channels, 16 pixels x 4 (so the
// accumulators stay in the 16 ymm registers); pixel tails in steps of 8, then a lane mask.
#include <immintrin.h>

#include "kernels/f32-spmm/f32-spmm.h"

namespace edgefit {
namespace {

inline __m256i tail_mask(size_t n) {
  alignas(32) static const int32_t kMask[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                0,  0,  0,  0,  0,  0,  0,  0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMask + 8 - n));
}

// NV vectors of 8 pixels x B channels; `masked` handles a last partial vector of `rem` pixels.
template <size_t B, size_t NV, bool masked>
inline void tile(size_t p0, size_t rem, size_t block_rows, const int32_t* row_ptr,
                 const int32_t* col_idx, const float* values, const float* bias, const float* x,
                 size_t x_stride, float* y, size_t y_stride, __m256 vmin, __m256 vmax) {
  const __m256i mask = tail_mask(masked ? rem : 8);
  for (size_t r = 0; r < block_rows; ++r) {
    __m256 acc[B][NV];
    for (size_t b = 0; b < B; ++b) {
      const __m256 init = _mm256_set1_ps(bias != nullptr ? bias[r * B + b] : 0.0f);
      for (size_t v = 0; v < NV; ++v) acc[b][v] = init;
    }
    const int32_t end = row_ptr[r + 1];
    for (int32_t j = row_ptr[r]; j < end; ++j) {
      const float* xr = x + size_t(col_idx[j]) * x_stride + p0;
      __m256 xv[NV];
      for (size_t v = 0; v < NV; ++v)
        xv[v] = masked ? _mm256_maskload_ps(xr + 8 * v, mask) : _mm256_loadu_ps(xr + 8 * v);
      const float* vals = values + size_t(j) * B;
      for (size_t b = 0; b < B; ++b) {
        const __m256 wv = _mm256_broadcast_ss(vals + b);
        for (size_t v = 0; v < NV; ++v) acc[b][v] = _mm256_fmadd_ps(wv, xv[v], acc[b][v]);
      }
    }
    for (size_t b = 0; b < B; ++b) {
      float* yr = y + (r * B + b) * y_stride + p0;
      for (size_t v = 0; v < NV; ++v) {
        const __m256 o = _mm256_min_ps(_mm256_max_ps(acc[b][v], vmin), vmax);
        if (masked)
          _mm256_maskstore_ps(yr + 8 * v, mask, o);
        else
          _mm256_storeu_ps(yr + 8 * v, o);
      }
    }
  }
}

template <size_t B, size_t NV>
void spmm(size_t pixels, size_t block_rows, const int32_t* row_ptr, const int32_t* col_idx,
          const float* values, const float* bias, const float* x, size_t x_stride, float* y,
          size_t y_stride, const f32_minmax* params) {
  const __m256 vmin = _mm256_set1_ps(params->min);
  const __m256 vmax = _mm256_set1_ps(params->max);
  size_t p = 0;
  for (; p + 8 * NV <= pixels; p += 8 * NV)
    tile<B, NV, false>(p, 0, block_rows, row_ptr, col_idx, values, bias, x, x_stride, y, y_stride,
                       vmin, vmax);
  for (; p + 8 <= pixels; p += 8)
    tile<B, 1, false>(p, 0, block_rows, row_ptr, col_idx, values, bias, x, x_stride, y, y_stride,
                      vmin, vmax);
  if (p < pixels)
    tile<B, 1, true>(p, pixels - p, block_rows, row_ptr, col_idx, values, bias, x, x_stride, y,
                     y_stride, vmin, vmax);
}

}  // namespace

#define EDGEFIT_DEFINE_SPMM(name, B, NV)                                                       \
  void name(size_t pixels, size_t block_rows, const int32_t* row_ptr, const int32_t* col_idx,  \
            const float* values, const float* bias, const float* x, size_t x_stride, float* y, \
            size_t y_stride, const f32_minmax* params) {                                       \
    spmm<B, NV>(pixels, block_rows, row_ptr, col_idx, values, bias, x, x_stride, y, y_stride,  \
                params);                                                                       \
  }

EDGEFIT_DEFINE_SPMM(f32_spmm_ukernel_32x1__avx2_fma, 1, 4)
EDGEFIT_DEFINE_SPMM(f32_spmm_ukernel_32x2__avx2_fma, 2, 4)
EDGEFIT_DEFINE_SPMM(f32_spmm_ukernel_16x4__avx2_fma, 4, 2)

}  // namespace edgefit
