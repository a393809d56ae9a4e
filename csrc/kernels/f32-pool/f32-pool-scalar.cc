// Reference pooling kernels with torch's window, padding and divisor rules.
#include <algorithm>
#include <limits>

#include "kernels/f32-pool/f32-pool.h"

namespace edgefit {

void f32_maxpool2d__scalar(const pool2d_geometry* g, const float* x, float* y) {
  for (size_t oy = 0; oy < g->ho; ++oy) {
    const ptrdiff_t y0 = ptrdiff_t(oy * g->sh) - ptrdiff_t(g->pt);
    const ptrdiff_t ys = std::max<ptrdiff_t>(y0, 0);
    const ptrdiff_t ye = std::min<ptrdiff_t>(y0 + ptrdiff_t(g->kh), ptrdiff_t(g->h));
    for (size_t ox = 0; ox < g->wo; ++ox) {
      const ptrdiff_t x0 = ptrdiff_t(ox * g->sw) - ptrdiff_t(g->pl);
      const ptrdiff_t xs = std::max<ptrdiff_t>(x0, 0);
      const ptrdiff_t xe = std::min<ptrdiff_t>(x0 + ptrdiff_t(g->kw), ptrdiff_t(g->w));
      float m = -std::numeric_limits<float>::infinity();
      for (ptrdiff_t iy = ys; iy < ye; ++iy)
        for (ptrdiff_t ix = xs; ix < xe; ++ix) m = std::max(m, x[iy * ptrdiff_t(g->w) + ix]);
      y[oy * g->wo + ox] = m;
    }
  }
}

void f32_avgpool2d__scalar(const pool2d_geometry* g, const float* x, float* y) {
  for (size_t oy = 0; oy < g->ho; ++oy) {
    const ptrdiff_t y0 = ptrdiff_t(oy * g->sh) - ptrdiff_t(g->pt);
    // As torch: the divisor counts padding up to the padded border, not the ceil_mode overhang.
    const ptrdiff_t y1 = std::min<ptrdiff_t>(y0 + ptrdiff_t(g->kh), ptrdiff_t(g->h + g->pb));
    const ptrdiff_t ys = std::max<ptrdiff_t>(y0, 0);
    const ptrdiff_t ye = std::min<ptrdiff_t>(y1, ptrdiff_t(g->h));
    for (size_t ox = 0; ox < g->wo; ++ox) {
      const ptrdiff_t x0 = ptrdiff_t(ox * g->sw) - ptrdiff_t(g->pl);
      const ptrdiff_t x1 = std::min<ptrdiff_t>(x0 + ptrdiff_t(g->kw), ptrdiff_t(g->w + g->pr));
      const ptrdiff_t xs = std::max<ptrdiff_t>(x0, 0);
      const ptrdiff_t xe = std::min<ptrdiff_t>(x1, ptrdiff_t(g->w));
      float s = 0.0f;
      for (ptrdiff_t iy = ys; iy < ye; ++iy)
        for (ptrdiff_t ix = xs; ix < xe; ++ix) s += x[iy * ptrdiff_t(g->w) + ix];
      const ptrdiff_t count = g->count_include_pad ? (y1 - y0) * (x1 - x0) : (ye - ys) * (xe - xs);
      y[oy * g->wo + ox] = count > 0 ? s / float(count) : 0.0f;
    }
  }
}

void f32_global_avgpool__scalar(size_t channels, size_t pixels, const float* x, float* y) {
  for (size_t c = 0; c < channels; ++c) {
    float s = 0.0f;
    for (size_t p = 0; p < pixels; ++p) s += x[c * pixels + p];
    y[c] = s / float(pixels);
  }
}

}  // namespace edgefit
