// AVX2+FMA sparse x dense: 32 pixels x 1 or 2 output channels, 24 pixels x 4 (12 accumulators,
// 3 pixel vectors and one broadcast weight: the 16 ymm registers; 7 loads per 12 FMAs where
// 16 x 4 took 6 per 8); pixel tails by an overlapping last tile, masks only below 8 pixels.
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

// Full tiles, then the remainder as one tile of the fewest vectors that cover it, placed to end at
// the last pixel (it recomputes a few pixels: y never aliases x). At 49 pixels, 24 + 24 + one
// 8-pixel vector cost about 14.5 FMA-port cycles per weight block against 18 for three 24-pixel
// tiles; no masked pass over the weights unless a whole row is narrower than that vector.
template <size_t B, size_t NV>
void spmm(size_t pixels, size_t block_rows, const int32_t* row_ptr, const int32_t* col_idx,
          const float* values, const float* bias, const float* x, size_t x_stride, float* y,
          size_t y_stride, const f32_minmax* params) {
  const __m256 vmin = _mm256_set1_ps(params->min);
  const __m256 vmax = _mm256_set1_ps(params->max);
  constexpr size_t T = 8 * NV;
  size_t p = 0;
  for (; p + T <= pixels; p += T)
    tile<B, NV, false>(p, 0, block_rows, row_ptr, col_idx, values, bias, x, x_stride, y, y_stride,
                       vmin, vmax);
  const size_t rem = pixels - p;
  if (rem == 0) return;
  const size_t nv = (rem + 7) / 8;  // 1 .. NV
  if (pixels >= 8 * nv) {
    const size_t q = pixels - 8 * nv;
    switch (nv) {
      case 1:
        tile<B, 1, false>(q, 0, block_rows, row_ptr, col_idx, values, bias, x, x_stride, y,
                          y_stride, vmin, vmax);
        return;
      case 2:
        tile<B, 2, false>(q, 0, block_rows, row_ptr, col_idx, values, bias, x, x_stride, y,
                          y_stride, vmin, vmax);
        return;
      case 3:
        tile<B, 3, false>(q, 0, block_rows, row_ptr, col_idx, values, bias, x, x_stride, y,
                          y_stride, vmin, vmax);
        return;
      default:
        tile<B, NV, false>(q, 0, block_rows, row_ptr, col_idx, values, bias, x, x_stride, y,
                           y_stride, vmin, vmax);
        return;
    }
  }
  // A row narrower than the remainder's vectors: 8-pixel steps, then one masked vector.
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

// Wide layers (MobileNetV2's 56x56 and 112x112 ones, whose activations live past L2) keep
// 16-pixel tiles: one whole cache line of every x and y row per tile streams better from L3 than
// 1.5 lines (in the model, 24-pixel tiles there were 8-17 % slower per layer; at 28x28 and below
// they are 5-20 % faster).
void f32_spmm_ukernel_24x4__avx2_fma(size_t pixels, size_t block_rows, const int32_t* row_ptr,
                                     const int32_t* col_idx, const float* values, const float* bias,
                                     const float* x, size_t x_stride, float* y, size_t y_stride,
                                     const f32_minmax* params) {
  if (x_stride >= 2048)  // the layer's row length, also when a thread gets a chunk of it
    spmm<4, 2>(pixels, block_rows, row_ptr, col_idx, values, bias, x, x_stride, y, y_stride,
               params);
  else
    spmm<4, 3>(pixels, block_rows, row_ptr, col_idx, values, bias, x, x_stride, y, y_stride,
               params);
}

}  // namespace edgefit
