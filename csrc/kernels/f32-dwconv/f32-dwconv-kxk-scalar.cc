// Reference depthwise convolution over a padded channel: any kernel, stride and dilation.
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

}  // namespace edgefit
