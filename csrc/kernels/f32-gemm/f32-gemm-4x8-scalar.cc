// Reference f32 GEMM / GEMV microkernels: plain loops every fast variant is tested against.
#include "kernels/f32-gemm/f32-gemm.h"

namespace edgefit {

void f32_gemm_ukernel_4x8__scalar(size_t mr, size_t n, size_t k, const float* panel, const float* b,
                                  size_t ldb, float* c, size_t ldc, const f32_minmax* params) {
  constexpr size_t MR = 4, NR = 8;
  for (size_t j0 = 0; j0 < n; j0 += NR) {
    const size_t nr = n - j0 < NR ? n - j0 : NR;
    float acc[MR][NR];
    for (size_t i = 0; i < MR; ++i)
      for (size_t j = 0; j < NR; ++j) acc[i][j] = panel[i];
    const float* w = panel + MR;
    for (size_t kk = 0; kk < k; ++kk) {
      const float* brow = b + kk * ldb + j0;
      for (size_t i = 0; i < MR; ++i) {
        const float wv = w[kk * MR + i];
        for (size_t j = 0; j < nr; ++j) acc[i][j] += wv * brow[j];
      }
    }
    for (size_t i = 0; i < mr; ++i)
      for (size_t j = 0; j < nr; ++j) c[i * ldc + j0 + j] = f32_clamp(acc[i][j], params);
  }
}

void f32_gemm_packed_ukernel_4x8__scalar(size_t mr, size_t n, size_t k, const float* w,
                                         const float* bias, const float* b, float* c, size_t ldc,
                                         const f32_minmax* params) {
  constexpr size_t MR = 4, NR = 8;
  for (size_t j0 = 0; j0 < n; j0 += NR, b += k * NR) {
    const size_t nr = n - j0 < NR ? n - j0 : NR;
    float acc[MR][NR] = {};
    for (size_t i = 0; i < mr; ++i)
      for (size_t j = 0; j < nr; ++j) acc[i][j] = bias != nullptr ? bias[i] : c[i * ldc + j0 + j];
    for (size_t kk = 0; kk < k; ++kk)
      for (size_t i = 0; i < MR; ++i)
        for (size_t j = 0; j < NR; ++j) acc[i][j] += w[kk * MR + i] * b[kk * NR + j];
    for (size_t i = 0; i < mr; ++i)
      for (size_t j = 0; j < nr; ++j)
        c[i * ldc + j0 + j] = params != nullptr ? f32_clamp(acc[i][j], params) : acc[i][j];
  }
}

void f32_gemv_ukernel_4x1__scalar(size_t m, size_t k, const float* w, const float* bias,
                                  const float* x, float* y, const f32_minmax* params) {
  for (size_t i = 0; i < m; ++i) {
    float acc = bias != nullptr ? bias[i] : 0.0f;
    const float* row = w + i * k;
    for (size_t kk = 0; kk < k; ++kk) acc += row[kk] * x[kk];
    y[i] = f32_clamp(acc, params);
  }
}

}  // namespace edgefit
