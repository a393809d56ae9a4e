// Reference depthwise convolution, any kernel, stride and dilation: over a padded channel, and over
// the channel itself with bounds checks (taps in the padding are skipped).
#include "kernels/f32-dwconv/f32-dwconv.h"

namespace edgefit {

void f32_dwconv_ukernel_kxk__scalar(size_t ho, size_t wo, const float* xpad, size_t xpad_stride,
                                    const float* w, float bias, float* y,
                                    const f32_dwconv_params* p) {
  for (size_t oy = 0; oy < ho; ++oy) {
    for (size_t ox = 0; ox < wo; ++ox) {
      float acc = bias;
      for (size_t ky = 0; ky < p->kh; ++ky) {
        const float* row = xpad + (oy * p->sh + ky * p->dh) * xpad_stride + ox * p->sw;
        for (size_t kx = 0; kx < p->kw; ++kx) acc += row[kx * p->dw] * w[ky * p->kw + kx];
      }
      y[oy * wo + ox] = f32_clamp(acc, &p->minmax);
    }
  }
}

namespace {

void one_channel(size_t h, size_t w, const float* x, size_t pad_top, size_t pad_left, size_t ho,
                 size_t wo, const float* k, float bias, float* y, const f32_dwconv_params* p) {
  for (size_t oy = 0; oy < ho; ++oy) {
    for (size_t ox = 0; ox < wo; ++ox) {
      float acc = bias;
      for (size_t ky = 0; ky < p->kh; ++ky) {
        const size_t iy = oy * p->sh + ky * p->dh;  // in padded coordinates
        if (iy < pad_top || iy - pad_top >= h) continue;
        const float* row = x + (iy - pad_top) * w;
        for (size_t kx = 0; kx < p->kw; ++kx) {
          const size_t ix = ox * p->sw + kx * p->dw;
          if (ix < pad_left || ix - pad_left >= w) continue;
          acc += row[ix - pad_left] * k[ky * p->kw + kx];
        }
      }
      y[oy * wo + ox] = f32_clamp(acc, &p->minmax);
    }
  }
}

}  // namespace

void f32_dwconv_ukernel_kxk__scalar(size_t channels, size_t h, size_t w, const float* x,
                                    size_t pad_top, size_t pad_left, size_t ho, size_t wo,
                                    const float* k, const float* bias, float* y,
                                    const f32_dwconv_params* p) {
  for (size_t c = 0; c < channels; ++c)
    one_channel(h, w, x + c * h * w, pad_top, pad_left, ho, wo, k + c * p->kh * p->kw,
                bias != nullptr ? bias[c] : 0.0f, y + c * ho * wo, p);
}

}  // namespace edgefit
