// f32 GEMM over CHW activations: C[M, N] = W[M, K] x B[K, N] + bias (1x1 convolutions, im2col'd
// convolutions), and GEMV for linear layers: y[M] = W[M, K] x[K] + bias.
//
// Packed weight layout for a kernel with MR rows: panels of MR output rows; each panel is MR bias
// floats followed by K groups of MR weights (row of the panel fastest); rows past M are zero.
#pragma once

#include "kernels/common.h"

namespace edgefit {

// Floats needed to pack an [m, k] matrix for a kernel with `mr` rows.
size_t f32_gemm_packed_size(size_t m, size_t k, size_t mr);
// Packs row-major w[m, k] (and bias[m], may be null = zeros) into MR-row panels.
void f32_gemm_pack(size_t m, size_t k, size_t mr, const float* w, const float* bias, float* packed);

// One panel: c[i, j] = clamp(panel_bias[i] + sum_k panel[k][i] * b[k * ldb + j]) for i < mr
// (mr <= the kernel's MR) and j < n (any n: kernels handle the tail).
typedef void (*f32_gemm_ukernel_fn)(size_t mr, size_t n, size_t k, const float* panel,
                                    const float* b, size_t ldb, float* c, size_t ldc,
                                    const f32_minmax* params);

void f32_gemm_ukernel_4x8__scalar(size_t mr, size_t n, size_t k, const float* panel, const float* b,
                                  size_t ldb, float* c, size_t ldc, const f32_minmax* params);
#if defined(__x86_64__) || defined(_M_X64)
void f32_gemm_ukernel_6x16__avx2_fma(size_t mr, size_t n, size_t k, const float* panel,
                                     const float* b, size_t ldb, float* c, size_t ldc,
                                     const f32_minmax* params);
void f32_gemm_ukernel_6x32__avx512f(size_t mr, size_t n, size_t k, const float* panel,
                                    const float* b, size_t ldb, float* c, size_t ldc,
                                    const f32_minmax* params);
#endif
#if defined(__aarch64__)
// Provided by csrc/kernels/f32-gemm/*neon*.cc (the build enables EDGEFIT_HAVE_NEON_F32_GEMM).
void f32_gemm_ukernel_8x8__neonfma(size_t mr, size_t n, size_t k, const float* panel,
                                   const float* b, size_t ldb, float* c, size_t ldc,
                                   const f32_minmax* params);
#endif

// GEMV: y[i] = clamp(bias[i] + dot(w[i, :], x)) for i < m; w row-major [m, k] with row stride k;
// bias may be null.
typedef void (*f32_gemv_ukernel_fn)(size_t m, size_t k, const float* w, const float* bias,
                                    const float* x, float* y, const f32_minmax* params);

void f32_gemv_ukernel_4x1__scalar(size_t m, size_t k, const float* w, const float* bias,
                                  const float* x, float* y, const f32_minmax* params);
#if defined(__x86_64__) || defined(_M_X64)
void f32_gemv_ukernel_4x8__avx2_fma(size_t m, size_t k, const float* w, const float* bias,
                                    const float* x, float* y, const f32_minmax* params);
#endif
#if defined(__aarch64__)
void f32_gemv_ukernel_4x4__neonfma(size_t m, size_t k, const float* w, const float* bias,
                                   const float* x, float* y, const f32_minmax* params);
#endif

}  // namespace edgefit
