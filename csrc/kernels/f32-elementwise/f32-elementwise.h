// f32 elementwise kernels: clamp (relu, relu6), hardswish, add with fused clamp, per-channel
// affine (an unfolded batch norm) and softmax along one axis.
#pragma once

#include "kernels/common.h"

namespace edgefit {

// y[i] = clamp(x[i]); x == y allowed.
typedef void (*f32_vclamp_fn)(size_t n, const float* x, float* y, const f32_minmax* p);
// y[i] = x * relu6(x + 3) / 6; x == y allowed.
typedef void (*f32_vhswish_fn)(size_t n, const float* x, float* y);
// y[i] = clamp(a[i] + b[i]); y may alias a or b.
typedef void (*f32_vadd_fn)(size_t n, const float* a, const float* b, float* y,
                            const f32_minmax* p);
// y[c, i] = clamp(x[c, i] * scale[c] + shift[c]) over [channels, inner]; x == y allowed.
typedef void (*f32_vaffine_fn)(size_t channels, size_t inner, const float* x, const float* scale,
                               const float* shift, float* y, const f32_minmax* p);
// Numerically stable softmax of x[outer, n, inner] along n.
typedef void (*f32_softmax_fn)(size_t outer, size_t n, size_t inner, const float* x, float* y);

void f32_vclamp__scalar(size_t n, const float* x, float* y, const f32_minmax* p);
void f32_vhswish__scalar(size_t n, const float* x, float* y);
void f32_vadd__scalar(size_t n, const float* a, const float* b, float* y, const f32_minmax* p);
void f32_vaffine__scalar(size_t channels, size_t inner, const float* x, const float* scale,
                         const float* shift, float* y, const f32_minmax* p);
void f32_softmax__scalar(size_t outer, size_t n, size_t inner, const float* x, float* y);
#if defined(__x86_64__) || defined(_M_X64)
void f32_vclamp__avx2(size_t n, const float* x, float* y, const f32_minmax* p);
void f32_vhswish__avx2_fma(size_t n, const float* x, float* y);
void f32_vadd__avx2(size_t n, const float* a, const float* b, float* y, const f32_minmax* p);
void f32_vaffine__avx2_fma(size_t channels, size_t inner, const float* x, const float* scale,
                           const float* shift, float* y, const f32_minmax* p);
#endif
#if defined(__aarch64__)
// Provided by csrc/kernels/f32-elementwise/*neon*.cc (EDGEFIT_HAVE_NEON_F32_ELEMENTWISE).
void f32_vclamp__neon(size_t n, const float* x, float* y, const f32_minmax* p);
void f32_vhswish__neon(size_t n, const float* x, float* y);
void f32_vadd__neon(size_t n, const float* a, const float* b, float* y, const f32_minmax* p);
void f32_vaffine__neon(size_t channels, size_t inner, const float* x, const float* scale,
                       const float* shift, float* y, const f32_minmax* p);
#endif

}  // namespace edgefit
