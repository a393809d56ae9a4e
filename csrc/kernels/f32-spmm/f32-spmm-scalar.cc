// Reference sparse x dense microkernels (BSR blocks of 1, 2, 4 output channels, 8-pixel tiles).
#include "kernels/f32-spmm/f32-spmm.h"

namespace edgefit {
namespace {

template <size_t B>
void spmm_scalar(size_t pixels, size_t block_rows, const int32_t* row_ptr, const int32_t* col_idx,
                 const float* values, const float* bias, const float* x, size_t x_stride, float* y,
                 size_t y_stride, const f32_minmax* params) {
  constexpr size_t T = 8;
  for (size_t p0 = 0; p0 < pixels; p0 += T) {
    const size_t pt = pixels - p0 < T ? pixels - p0 : T;
    for (size_t r = 0; r < block_rows; ++r) {
      float acc[B][T];
      for (size_t b = 0; b < B; ++b)
        for (size_t t = 0; t < T; ++t) acc[b][t] = bias != nullptr ? bias[r * B + b] : 0.0f;
      for (int32_t j = row_ptr[r]; j < row_ptr[r + 1]; ++j) {
        const float* xr = x + size_t(col_idx[j]) * x_stride + p0;
        const float* v = values + size_t(j) * B;
        for (size_t b = 0; b < B; ++b)
          for (size_t t = 0; t < pt; ++t) acc[b][t] += v[b] * xr[t];
      }
      for (size_t b = 0; b < B; ++b)
        for (size_t t = 0; t < pt; ++t)
          y[(r * B + b) * y_stride + p0 + t] = f32_clamp(acc[b][t], params);
    }
  }
}

}  // namespace

#define EDGEFIT_DEFINE_SPMM(name, B)                                                             \
  void name(size_t pixels, size_t block_rows, const int32_t* row_ptr, const int32_t* col_idx,    \
            const float* values, const float* bias, const float* x, size_t x_stride, float* y,   \
            size_t y_stride, const f32_minmax* params) {                                         \
    spmm_scalar<B>(pixels, block_rows, row_ptr, col_idx, values, bias, x, x_stride, y, y_stride, \
                   params);                                                                      \
  }

EDGEFIT_DEFINE_SPMM(f32_spmm_ukernel_8x1__scalar, 1)
EDGEFIT_DEFINE_SPMM(f32_spmm_ukernel_8x2__scalar, 2)
EDGEFIT_DEFINE_SPMM(f32_spmm_ukernel_8x4__scalar, 4)

}  // namespace edgefit
