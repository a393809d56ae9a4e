// f32 k x k convolution by im2col + f32-gemm: one group of a CHW image is unfolded into
// cols[Cg * kh * kw, Ho * Wo] (rows ordered like the weight's [Cg, kh, kw]), then multiplied by
// the packed weights. 1x1 stride-1 unpadded convolutions skip this and are a plain GEMM over CHW.
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

// The columns of output pixels [p0, p0 + np) only (row-major pixel index p = oy * wo + ox):
// cols[channels * kh * kw, np]. Lets a convolution unfold one cache-sized chunk at a time.
void f32_im2col_range__scalar(const conv2d_geometry* g, size_t channels, const float* x, size_t p0,
                              size_t np, float* cols);

}  // namespace edgefit
