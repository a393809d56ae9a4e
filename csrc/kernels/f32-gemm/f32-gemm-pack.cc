// Packs a row-major weight matrix into the MR-row panels every f32-gemm microkernel reads.
#include <cstring>

#include "kernels/f32-gemm/f32-gemm.h"

namespace edgefit {

size_t f32_gemm_packed_size(size_t m, size_t k, size_t mr) {
  const size_t panels = (m + mr - 1) / mr;
  return panels * mr * (k + 1);
}

void f32_gemm_pack(size_t m, size_t k, size_t mr, const float* w, const float* bias,
                   float* packed) {
  const size_t panels = (m + mr - 1) / mr;
  for (size_t pnl = 0; pnl < panels; ++pnl) {
    float* out = packed + pnl * mr * (k + 1);
    for (size_t i = 0; i < mr; ++i) {
      const size_t row = pnl * mr + i;
      out[i] = (row < m && bias != nullptr) ? bias[row] : 0.0f;
    }
    out += mr;
    for (size_t kk = 0; kk < k; ++kk) {
      for (size_t i = 0; i < mr; ++i) {
        const size_t row = pnl * mr + i;
        out[kk * mr + i] = row < m ? w[row * k + kk] : 0.0f;
      }
    }
  }
}

}  // namespace edgefit
