// NEON+FMA sparse x dense (Fast Sparse ConvNets): 32 pixels (8 q registers) x 1, 2 or 4 output
// channels per step, then pixel tails of 16, 8, 4, 2 and 1. For a block of 4 channels the
// 32-pixel step runs as two 16-pixel halves: 32 x 4 accumulators alone would fill all 32 vector
// registers and GCC would spill them.
#include <arm_neon.h>

#include "kernels/f32-spmm/f32-spmm.h"

namespace edgefit {
namespace {

// Vector of V pixels (4 or 2) as a q register; V == 1 and V == 2 use the low lanes only.
template <size_t V>
inline float32x4_t load_px(const float* p) {
  if constexpr (V == 4) {
    return vld1q_f32(p);
  } else if constexpr (V == 2) {
    return vcombine_f32(vld1_f32(p), vdup_n_f32(0.0f));
  } else {
    return vld1q_lane_f32(p, vdupq_n_f32(0.0f), 0);
  }
}

template <size_t V>
inline void store_px(float* p, float32x4_t v) {
  if constexpr (V == 4) {
    vst1q_f32(p, v);
  } else if constexpr (V == 2) {
    vst1_f32(p, vget_low_f32(v));
  } else {
    vst1q_lane_f32(p, v, 0);
  }
}

// Block rows of B channels over NV vectors of V pixels starting at pixel p0. The loops have
// compile-time bounds, so GCC unrolls them and keeps acc / xv in registers (checked with objdump).
template <size_t B, size_t NV, size_t V>
inline void tile(size_t p0, size_t block_rows, const int32_t* row_ptr, const int32_t* col_idx,
                 const float* values, const float* bias, const float* x, size_t x_stride, float* y,
                 size_t y_stride, float32x4_t vmin, float32x4_t vmax) {
  for (size_t r = 0; r < block_rows; ++r) {
    float32x4_t acc[B][NV];
#pragma GCC unroll 4
    for (size_t b = 0; b < B; ++b) {
      const float32x4_t init = vdupq_n_f32(bias != nullptr ? bias[r * B + b] : 0.0f);
#pragma GCC unroll 8
      for (size_t v = 0; v < NV; ++v) acc[b][v] = init;
    }
    const int32_t end = row_ptr[r + 1];
    for (int32_t j = row_ptr[r]; j < end; ++j) {
      const float* xr = x + size_t(col_idx[j]) * x_stride + p0;
      const float* vals = values + size_t(j) * B;
      float32x4_t wv;
      if constexpr (B == 4) {
        wv = vld1q_f32(vals);
      } else if constexpr (B == 2) {
        wv = vcombine_f32(vld1_f32(vals), vdup_n_f32(0.0f));
      } else {
        wv = vld1q_dup_f32(vals);
      }
#pragma GCC unroll 8
      for (size_t v = 0; v < NV; ++v) {
        const float32x4_t xv = load_px<V>(xr + V * v);
        acc[0][v] = vfmaq_laneq_f32(acc[0][v], xv, wv, 0);
        if constexpr (B > 1) acc[1][v] = vfmaq_laneq_f32(acc[1][v], xv, wv, 1);
        if constexpr (B > 2) acc[2][v] = vfmaq_laneq_f32(acc[2][v], xv, wv, 2);
        if constexpr (B > 3) acc[3][v] = vfmaq_laneq_f32(acc[3][v], xv, wv, 3);
      }
    }
#pragma GCC unroll 4
    for (size_t b = 0; b < B; ++b) {
      float* yr = y + (r * B + b) * y_stride + p0;
#pragma GCC unroll 8
      for (size_t v = 0; v < NV; ++v)
        store_px<V>(yr + V * v, vminq_f32(vmaxq_f32(acc[b][v], vmin), vmax));
    }
  }
}

template <size_t B>
void spmm(size_t pixels, size_t block_rows, const int32_t* row_ptr, const int32_t* col_idx,
          const float* values, const float* bias, const float* x, size_t x_stride, float* y,
          size_t y_stride, const f32_minmax* params) {
  const float32x4_t vmin = vdupq_n_f32(params->min);
  const float32x4_t vmax = vdupq_n_f32(params->max);
  // Widest full step: 8 vectors for 1 or 2 channels, 4 for 4 channels (see the file comment).
  constexpr size_t kMain = B == 4 ? 4 : 8;
  size_t p = 0;
  for (; p + 4 * kMain <= pixels; p += 4 * kMain)
    tile<B, kMain, 4>(p, block_rows, row_ptr, col_idx, values, bias, x, x_stride, y, y_stride, vmin,
                      vmax);
  if constexpr (kMain > 4) {
    if (p + 16 <= pixels) {
      tile<B, 4, 4>(p, block_rows, row_ptr, col_idx, values, bias, x, x_stride, y, y_stride, vmin,
                    vmax);
      p += 16;
    }
  }
  if (p + 8 <= pixels) {
    tile<B, 2, 4>(p, block_rows, row_ptr, col_idx, values, bias, x, x_stride, y, y_stride, vmin,
                  vmax);
    p += 8;
  }
  if (p + 4 <= pixels) {
    tile<B, 1, 4>(p, block_rows, row_ptr, col_idx, values, bias, x, x_stride, y, y_stride, vmin,
                  vmax);
    p += 4;
  }
  if (p + 2 <= pixels) {
    tile<B, 1, 2>(p, block_rows, row_ptr, col_idx, values, bias, x, x_stride, y, y_stride, vmin,
                  vmax);
    p += 2;
  }
  if (p < pixels)
    tile<B, 1, 1>(p, block_rows, row_ptr, col_idx, values, bias, x, x_stride, y, y_stride, vmin,
                  vmax);
}

}  // namespace

#define EDGEFIT_DEFINE_SPMM(name, B)                                                               \
  void name(size_t pixels, size_t block_rows, const int32_t* row_ptr, const int32_t* col_idx,      \
            const float* values, const float* bias, const float* x, size_t x_stride, float* y,     \
            size_t y_stride, const f32_minmax* params) {                                           \
    spmm<B>(pixels, block_rows, row_ptr, col_idx, values, bias, x, x_stride, y, y_stride, params); \
  }

EDGEFIT_DEFINE_SPMM(f32_spmm_ukernel_32x1__neonfma, 1)
EDGEFIT_DEFINE_SPMM(f32_spmm_ukernel_32x2__neonfma, 2)
EDGEFIT_DEFINE_SPMM(f32_spmm_ukernel_32x4__neonfma, 4)

}  // namespace edgefit
