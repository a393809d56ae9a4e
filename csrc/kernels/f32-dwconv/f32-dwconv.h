// f32 depthwise convolution, one channel at a time: y[oy, ox] = clamp(bias + sum over the window
// of x[oy*sh + ky*dh - pad_top, ox*sw + kx*dw - pad_left] * w[ky, kx]), taps outside x being zero.
//
// Each kernel has two entry points (overloads of one name):
// - unpadded (what the executor calls): x is `channels` consecutive channels of [h, w] floats,
//   read only inside them, y as many of [ho, wo], k one kernel per channel, bias one value per
//   channel (or null: zero); the padding is implied (pad_top / pad_left given, bottom / right by
//   ho, wo). A run of channels per call lets a kernel set up a plane's geometry once (the AVX-512
//   kernels' column masks), which on 7x7 planes cost as much as the convolution itself.
//   The fast variants pad rows one at a time into a small per-thread ring (f32-dwconv-ring.h), so
//   a channel is read once and never copied whole.
// - padded (legacy; tools/arm and the CUDA tests compare with it): xpad is a zero-padded copy with
//   `xpad_stride` floats per row and at least 32 readable floats past the last element any window
//   touches (vector kernels over-read, and discard, a tail).
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
typedef void (*f32_dwconv_chw_ukernel_fn)(size_t channels, size_t h, size_t w, const float* x,
                                          size_t pad_top, size_t pad_left, size_t ho, size_t wo,
                                          const float* k, const float* bias, float* y,
                                          const f32_dwconv_params* p);

#define EDGEFIT_DECLARE_DWCONV_CHW(name)                                                          \
  void name(size_t channels, size_t h, size_t w, const float* x, size_t pad_top, size_t pad_left, \
            size_t ho, size_t wo, const float* k, const float* bias, float* y,                    \
            const f32_dwconv_params* p);

// Both entry points of one ISA's fixed-size kernel (K x K, stride S), defined by that ISA's file
// from its templates dwconv<K, S> (padded input) and dwconv_chw<K, S> (the channel in place).
#define EDGEFIT_DEFINE_DWCONV_KERNEL(K, S, SUFFIX)                                             \
  void f32_dwconv_ukernel_##K##x##K##s##S##__##SUFFIX(                                         \
      size_t ho, size_t wo, const float* xpad, size_t xpad_stride, const float* w, float bias, \
      float* y, const f32_dwconv_params* p) {                                                  \
    dwconv<K, S>(ho, wo, xpad, xpad_stride, w, bias, y, p);                                    \
  }                                                                                            \
  void f32_dwconv_ukernel_##K##x##K##s##S##__##SUFFIX(                                         \
      size_t channels, size_t h, size_t w, const float* x, size_t pad_top, size_t pad_left,    \
      size_t ho, size_t wo, const float* k, const float* bias, float* y,                       \
      const f32_dwconv_params* p) {                                                            \
    for (size_t c = 0; c < channels; ++c)                                                      \
      dwconv_chw<K, S>(h, w, x + c * h * w, pad_top, pad_left, ho, wo, k + c * K * K,          \
                       bias != nullptr ? bias[c] : 0.0f, y + c * ho * wo, p);                  \
  }
#define EDGEFIT_DEFINE_DWCONV_KERNELS(SUFFIX) \
  EDGEFIT_DEFINE_DWCONV_KERNEL(3, 1, SUFFIX)  \
  EDGEFIT_DEFINE_DWCONV_KERNEL(3, 2, SUFFIX)  \
  EDGEFIT_DEFINE_DWCONV_KERNEL(5, 1, SUFFIX)  \
  EDGEFIT_DEFINE_DWCONV_KERNEL(5, 2, SUFFIX)

// Any kernel size, stride and dilation.
void f32_dwconv_ukernel_kxk__scalar(size_t ho, size_t wo, const float* xpad, size_t xpad_stride,
                                    const float* w, float bias, float* y,
                                    const f32_dwconv_params* p);
EDGEFIT_DECLARE_DWCONV_CHW(f32_dwconv_ukernel_kxk__scalar)
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
EDGEFIT_DECLARE_DWCONV_CHW(f32_dwconv_ukernel_3x3s1__avx2_fma)
EDGEFIT_DECLARE_DWCONV_CHW(f32_dwconv_ukernel_3x3s2__avx2_fma)
EDGEFIT_DECLARE_DWCONV_CHW(f32_dwconv_ukernel_5x5s1__avx2_fma)
EDGEFIT_DECLARE_DWCONV_CHW(f32_dwconv_ukernel_5x5s2__avx2_fma)
// AVX-512, stride 1, unpadded entry point only: each channel as one flat run of pixels where
// wo == w with centred padding, else the AVX2 kernel of the same size (f32-dwconv-avx512f.cc).
EDGEFIT_DECLARE_DWCONV_CHW(f32_dwconv_ukernel_3x3s1__avx512f)
EDGEFIT_DECLARE_DWCONV_CHW(f32_dwconv_ukernel_5x5s1__avx512f)
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
EDGEFIT_DECLARE_DWCONV_CHW(f32_dwconv_ukernel_3x3s1__neonfma)
EDGEFIT_DECLARE_DWCONV_CHW(f32_dwconv_ukernel_3x3s2__neonfma)
EDGEFIT_DECLARE_DWCONV_CHW(f32_dwconv_ukernel_5x5s1__neonfma)
EDGEFIT_DECLARE_DWCONV_CHW(f32_dwconv_ukernel_5x5s2__neonfma)
#endif

}  // namespace edgefit
