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

void f32_gemm_t_ukernel_4x8__scalar(size_t mr, size_t k, const float* b, size_t ldb, const float* w,
                                    float* ct, size_t ldct, bool accumulate) {
  constexpr size_t NR = 8;
  for (size_t i = 0; i < mr; ++i)
    for (size_t j = 0; j < NR; ++j) {
      float acc = accumulate ? ct[i * ldct + j] : 0.0f;
      for (size_t kk = 0; kk < k; ++kk) acc += b[kk * ldb + i] * w[kk * NR + j];
      ct[i * ldct + j] = acc;
    }
}

void f32_gemm_t_ix_ukernel_4x8__scalar(size_t mr, size_t k, const float* b, size_t ldb,
                                       const size_t* offs, const float* w, float* ct, size_t ldct,
                                       bool accumulate) {
  constexpr size_t NR = 8;
  for (size_t i = 0; i < mr; ++i)
    for (size_t j = 0; j < NR; ++j) {
      float acc = accumulate ? ct[i * ldct + j] : 0.0f;
      for (size_t kk = 0; kk < k; ++kk) acc += b[offs[i] + kk * ldb] * w[kk * NR + j];
      ct[i * ldct + j] = acc;
    }
}

void f32_gemm_t_store__scalar(size_t p, size_t rows, size_t nr, const float* ct, const float* bias,
                              float* c, size_t ldc, const f32_minmax* params) {
  for (size_t j = 0; j < rows; ++j)
    for (size_t i = 0; i < p; ++i)
      c[j * ldc + i] = f32_clamp(ct[i * nr + j] + (bias != nullptr ? bias[j] : 0.0f), params);
}

}  // namespace edgefit
