// NEON global average pooling over [channels, pixels] (8 pixels per step in two accumulators)
// and max pooling by rows (f32-maxpool-rows.h).
#include <arm_neon.h>

#include "kernels/f32-pool/f32-maxpool-rows.h"
#include "kernels/f32-pool/f32-pool.h"

namespace edgefit {

void f32_global_avgpool__neon(size_t channels, size_t pixels, const float* x, float* y) {
  for (size_t c = 0; c < channels; ++c) {
    const float* xc = x + c * pixels;
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0;
    size_t p = 0;
    for (; p + 8 <= pixels; p += 8) {
      a0 = vaddq_f32(a0, vld1q_f32(xc + p));
      a1 = vaddq_f32(a1, vld1q_f32(xc + p + 4));
    }
    if (p + 4 <= pixels) {
      a0 = vaddq_f32(a0, vld1q_f32(xc + p));
      p += 4;
    }
    float s = vaddvq_f32(vaddq_f32(a0, a1));
    for (; p < pixels; ++p) s += xc[p];
    // Divides like the reference (a multiply by 1 / n would round differently).
    y[c] = s / float(pixels);
  }
}

void f32_maxpool2d__neon(const pool2d_geometry* g, const float* x, float* y) {
  maxpool_rows::run(g, x, y);
}

}  // namespace edgefit
