// f32 depthwise convolution, one channel at a time, over a zero-padded copy of the channel
// (the executor pads it, so kernels never bound-check): y[oy, ox] = clamp(bias + sum over the
// window of xpad[oy*sh + ky*dh, ox*sw + kx*dw] * w[ky, kx]).
//
// The padded input has `xpad_stride` floats per row and at least 32 readable floats past the
// last element any window touches (vector kernels over-read, and discard, a tail).
#pragma once

#include "kernels/common.h"

namespace edgefit {

struct f32_dwconv_params {
  size_t kh, kw;  // kernel
  size_t sh, sw;  // stride
  size_t dh, dw;  // dilation
  f32_minmax minmax;
};

typedef void (*f32_dwconv_ukernel_fn)(size_t ho, size_t wo, const float* xpad, size_t xpad_stride,
                                      const float* w, float bias, float* y,
                                      const f32_dwconv_params* p);

// Any kernel size, stride and dilation.
void f32_dwconv_ukernel_kxk__scalar(size_t ho, size_t wo, const float* xpad, size_t xpad_stride,
                                    const float* w, float bias, float* y,
                                    const f32_dwconv_params* p);
#if defined(__x86_64__) || defined(_M_X64)
// Fixed kernel and stride, dilation 1.
void f32_dwconv_ukernel_3x3s1__avx2_fma(size_t ho, size_t wo, const float* xpad, size_t xpad_stride,
                                        const float* w, float bias, float* y,
                                        const f32_dwconv_params* p);
void f32_dwconv_ukernel_3x3s2__avx2_fma(size_t ho, size_t wo, const float* xpad, size_t xpad_stride,
                                        const float* w, float bias, float* y,
                                        const f32_dwconv_params* p);
void f32_dwconv_ukernel_5x5s1__avx2_fma(size_t ho, size_t wo, const float* xpad, size_t xpad_stride,
                                        const float* w, float bias, float* y,
                                        const f32_dwconv_params* p);
void f32_dwconv_ukernel_5x5s2__avx2_fma(size_t ho, size_t wo, const float* xpad, size_t xpad_stride,
                                        const float* w, float bias, float* y,
                                        const f32_dwconv_params* p);
#endif
#if defined(__aarch64__)
// Provided by csrc/kernels/f32-dwconv/*neon*.cc (EDGEFIT_HAVE_NEON_F32_DWCONV).
void f32_dwconv_ukernel_3x3s1__neonfma(size_t ho, size_t wo, const float* xpad, size_t xpad_stride,
                                       const float* w, float bias, float* y,
                                       const f32_dwconv_params* p);
void f32_dwconv_ukernel_3x3s2__neonfma(size_t ho, size_t wo, const float* xpad, size_t xpad_stride,
                                       const float* w, float bias, float* y,
                                       const f32_dwconv_params* p);
void f32_dwconv_ukernel_5x5s1__neonfma(size_t ho, size_t wo, const float* xpad, size_t xpad_stride,
                                       const float* w, float bias, float* y,
                                       const f32_dwconv_params* p);
void f32_dwconv_ukernel_5x5s2__neonfma(size_t ho, size_t wo, const float* xpad, size_t xpad_stride,
                                       const float* w, float bias, float* y,
                                       const f32_dwconv_params* p);
#endif

}  // namespace edgefit
