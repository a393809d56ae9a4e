// Reference codebook GEMM: decodes each weight through its row's table as it is used.
#include "kernels/cb-gemm/cb-gemm.h"

namespace edgefit {

void cb_gemm_ukernel_4x8__scalar(size_t m0, size_t mr, size_t n, const cb_weights* w,
                                 const float* bias, const float* x, size_t ldx, float* y,
                                 size_t ldy, const f32_minmax* params) {
  const size_t entries = size_t(1) << w->bits;
  for (size_t i = 0; i < mr; ++i) {
    const size_t row = m0 + i;
    const uint8_t* codes = w->packed + row * w->row_bytes;
    const float* table = w->table + size_t(w->group[row]) * entries;
    const float b = bias != nullptr ? bias[row] : 0.0f;
    for (size_t j0 = 0; j0 < n; j0 += 8) {
      const size_t nr = n - j0 < 8 ? n - j0 : 8;
      float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (size_t kk = 0; kk < w->k; ++kk) {
        const float wv = table[cb_code(codes, w->row_bytes, w->bits, kk)];
        const float* xr = x + kk * ldx + j0;
        for (size_t j = 0; j < nr; ++j) acc[j] += wv * xr[j];
      }
      for (size_t j = 0; j < nr; ++j)
        y[i * ldy + j0 + j] = f32_clamp(acc[j] * w->row_scale[row] + b, params);
    }
  }
}

}  // namespace edgefit
