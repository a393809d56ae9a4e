// f32 pooling over one CHW channel (max / average with torch's padding, ceil_mode and
// count_include_pad rules) and global average pooling over [channels, pixels].
#pragma once

#include "kernels/common.h"

namespace edgefit {

struct pool2d_geometry {
  size_t h, w;    // input
  size_t ho, wo;  // output
  size_t kh, kw;
  size_t sh, sw;
  size_t pt, pl, pb, pr;   // zero padding (never wins a max)
  bool count_include_pad;  // average pooling divisor
};

void f32_maxpool2d__scalar(const pool2d_geometry* g, const float* x, float* y);
void f32_avgpool2d__scalar(const pool2d_geometry* g, const float* x, float* y);
// y[c] = mean(x[c, :]) over `pixels`.
void f32_global_avgpool__scalar(size_t channels, size_t pixels, const float* x, float* y);
#if defined(__x86_64__) || defined(_M_X64)
void f32_global_avgpool__avx2(size_t channels, size_t pixels, const float* x, float* y);
void f32_maxpool2d__avx2(const pool2d_geometry* g, const float* x, float* y);
#endif
#if defined(__aarch64__)
// Provided by csrc/kernels/f32-pool/*neon*.cc (EDGEFIT_HAVE_NEON_F32_POOL).
void f32_global_avgpool__neon(size_t channels, size_t pixels, const float* x, float* y);
void f32_maxpool2d__neon(const pool2d_geometry* g, const float* x, float* y);
#endif

}  // namespace edgefit
