// im2col for the f32-conv family: unfolds one group's CHW input into GEMM columns.
#include <algorithm>
#include <cstring>

#include "kernels/f32-conv/f32-conv.h"

namespace edgefit {

void f32_im2col__scalar(const conv2d_geometry* g, size_t channels, const float* x, float* cols) {
  const size_t pixels = g->ho * g->wo;
  for (size_t c = 0; c < channels; ++c) {
    const float* xc = x + c * g->h * g->w;
    for (size_t ky = 0; ky < g->kh; ++ky) {
      for (size_t kx = 0; kx < g->kw; ++kx) {
        float* out = cols + ((c * g->kh + ky) * g->kw + kx) * pixels;
        for (size_t oy = 0; oy < g->ho; ++oy) {
          // Signed arithmetic: the window may start inside the top / left padding.
          const ptrdiff_t iy = ptrdiff_t(oy * g->sh + ky * g->dh) - ptrdiff_t(g->pt);
          float* orow = out + oy * g->wo;
          if (iy < 0 || iy >= ptrdiff_t(g->h)) {
            std::memset(orow, 0, g->wo * sizeof(float));
            continue;
          }
          const float* xrow = xc + size_t(iy) * g->w;
          for (size_t ox = 0; ox < g->wo; ++ox) {
            const ptrdiff_t ix = ptrdiff_t(ox * g->sw + kx * g->dw) - ptrdiff_t(g->pl);
            orow[ox] = (ix < 0 || ix >= ptrdiff_t(g->w)) ? 0.0f : xrow[ix];
          }
        }
      }
    }
  }
}

void f32_im2col_range__scalar(const conv2d_geometry* g, size_t channels, const float* x, size_t p0,
                              size_t np, float* cols) {
  const size_t p1 = p0 + np;
  for (size_t c = 0; c < channels; ++c) {
    const float* xc = x + c * g->h * g->w;
    for (size_t ky = 0; ky < g->kh; ++ky) {
      for (size_t kx = 0; kx < g->kw; ++kx) {
        float* out = cols + ((c * g->kh + ky) * g->kw + kx) * np - p0;
        // Walk the chunk one output row segment at a time: zeros where the window is in the
        // padding, a (strided) copy in between.
        for (size_t p = p0; p < p1;) {
          const size_t oy = p / g->wo, ox0 = p % g->wo;
          const size_t ox1 = std::min(g->wo, ox0 + (p1 - p));
          const ptrdiff_t iy = ptrdiff_t(oy * g->sh + ky * g->dh) - ptrdiff_t(g->pt);
          float* o = out + oy * g->wo;
          if (iy < 0 || iy >= ptrdiff_t(g->h)) {
            for (size_t ox = ox0; ox < ox1; ++ox) o[ox] = 0.0f;
          } else {
            const float* xrow = xc + size_t(iy) * g->w;
            // Valid ox: pl <= ox * sw + kx * dw < w + pl.
            const ptrdiff_t off = ptrdiff_t(kx * g->dw) - ptrdiff_t(g->pl);
            const ptrdiff_t lo_num = -off;  // ox * sw >= -off
            size_t lo =
                lo_num <= 0 ? 0 : size_t((lo_num + ptrdiff_t(g->sw) - 1) / ptrdiff_t(g->sw));
            const ptrdiff_t hi_num = ptrdiff_t(g->w) - off;  // ox * sw < w - off
            size_t hi =
                hi_num <= 0 ? 0 : size_t((hi_num + ptrdiff_t(g->sw) - 1) / ptrdiff_t(g->sw));
            lo = std::min(std::max(lo, ox0), ox1);
            hi = std::min(std::max(hi, lo), ox1);
            for (size_t ox = ox0; ox < lo; ++ox) o[ox] = 0.0f;
            if (g->sw == 1) {
              std::memcpy(o + lo, xrow + (ptrdiff_t(lo) + off), (hi - lo) * sizeof(float));
            } else {
              for (size_t ox = lo; ox < hi; ++ox) o[ox] = xrow[ptrdiff_t(ox * g->sw) + off];
            }
            for (size_t ox = hi; ox < ox1; ++ox) o[ox] = 0.0f;
          }
          p += ox1 - ox0;
        }
      }
    }
  }
}

}  // namespace edgefit
