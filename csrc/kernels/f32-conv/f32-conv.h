// f32 k x k convolution by im2col + f32-gemm: one group of a CHW image is unfolded into
// cols[Cg * kh * kw, Ho * Wo] (rows ordered like the weight's [Cg, kh, kw]), then multiplied by
// the packed weights. Dense convolutions unfold one K block x column block at a time straight
// into the GEMM's packed-B strips (f32_im2col_packed); the whole matrix (f32_im2col) serves the
// sparse and codebook kernels. 1x1 stride-1 unpadded convolutions are a plain GEMM over CHW.
#pragma once

#include "kernels/common.h"

namespace edgefit {

struct conv2d_geometry {
  size_t h, w;    // input spatial size
  size_t ho, wo;  // output spatial size
  size_t kh, kw;  // kernel
  size_t sh, sw;  // stride
  size_t pt, pl;  // top / left zero padding (bottom / right follow from ho, wo)
  size_t dh, dw;  // dilation
};

// x: [channels, h, w] (one group's input channels); cols: [channels * kh * kw, ho * wo].
typedef void (*f32_im2col_fn)(const conv2d_geometry* g, size_t channels, const float* x,
                              float* cols);

void f32_im2col__scalar(const conv2d_geometry* g, size_t channels, const float* x, float* cols);

// Rows [k0, k0 + kc) (row k = (c * kh + ky) * kw + kx) x pixels [p0, p0 + np) of the unfolded
// matrix, written straight in the f32-gemm packed-B layout: ceil(np / nr) strips of [kc][nr] floats
// (strip s at out + s * kc * nr), zero past np. One copy instead of im2col + packing.
typedef void (*f32_im2col_packed_fn)(const conv2d_geometry* g, const float* x, size_t k0, size_t kc,
                                     size_t p0, size_t np, size_t nr, float* out);

void f32_im2col_packed__scalar(const conv2d_geometry* g, const float* x, size_t k0, size_t kc,
                               size_t p0, size_t np, size_t nr, float* out);
#if defined(__x86_64__) || defined(_M_X64)
// Same output, 8 pixels per vector; calls scalar for plain rows (nr >= np), nr % 8 != 0, wo < 4.
void f32_im2col_packed__avx2(const conv2d_geometry* g, const float* x, size_t k0, size_t kc,
                             size_t p0, size_t np, size_t nr, float* out);
#endif

}  // namespace edgefit
