// Max pooling one output row at a time, ISA-neutral: each ISA's pool file instantiates it, so the
// compiler vectorises the row pass with that ISA's flags. The window's input rows are reduced
// into one row buffer first (contiguous: whole vectors), then each output takes the max over its
// columns of that buffer: kh + kw comparisons per output column instead of kh x kw, and no
// bounds test inside the row pass. Same result as f32_maxpool2d__scalar (max is exact; only the
// sign of a zero may differ, where +0 and -0 tie).
#pragma once

#include <algorithm>
#include <limits>

#include "kernels/f32-pool/f32-pool.h"

namespace edgefit {
namespace maxpool_rows {

constexpr size_t kMaxWidth = 2048;  // row buffer on the stack; wider inputs take the reference

inline void run(const pool2d_geometry* g, const float* x, float* y) {
  if (g->w > kMaxWidth) return f32_maxpool2d__scalar(g, x, y);
  alignas(64) float rowmax[kMaxWidth];
  const float lowest = -std::numeric_limits<float>::infinity();
  const size_t w = g->w;
  for (size_t oy = 0; oy < g->ho; ++oy) {
    const ptrdiff_t y0 = ptrdiff_t(oy * g->sh) - ptrdiff_t(g->pt);
    const size_t ys = size_t(std::max<ptrdiff_t>(y0, 0));
    const size_t ye = size_t(std::min<ptrdiff_t>(y0 + ptrdiff_t(g->kh), ptrdiff_t(g->h)));
    float* yr = y + oy * g->wo;
    if (ys >= ye) {  // a window wholly in the padding (ceil_mode overhang): as the reference
      std::fill(yr, yr + g->wo, lowest);
      continue;
    }
    std::copy(x + ys * w, x + (ys + 1) * w, rowmax);
    for (size_t iy = ys + 1; iy < ye; ++iy) {
      const float* __restrict r = x + iy * w;
      float* __restrict m = rowmax;
      for (size_t i = 0; i < w; ++i) m[i] = r[i] > m[i] ? r[i] : m[i];
    }
    // Columns whose window lies inside the row need no clipping: [ox_lo, ox_hi).
    const size_t ox_lo = std::min(g->wo, (g->pl + g->sw - 1) / g->sw);
    const size_t ox_hi = w + g->pl >= g->kw
                             ? std::max(ox_lo, std::min(g->wo, (w + g->pl - g->kw) / g->sw + 1))
                             : ox_lo;
    auto clipped = [&](size_t ox) {
      const ptrdiff_t x0 = ptrdiff_t(ox * g->sw) - ptrdiff_t(g->pl);
      const size_t xs = size_t(std::max<ptrdiff_t>(x0, 0));
      const size_t xe = size_t(std::min<ptrdiff_t>(x0 + ptrdiff_t(g->kw), ptrdiff_t(w)));
      float m = lowest;
      for (size_t ix = xs; ix < xe; ++ix) m = rowmax[ix] > m ? rowmax[ix] : m;
      yr[ox] = m;
    };
    for (size_t ox = 0; ox < ox_lo; ++ox) clipped(ox);
    // ox >= ox_lo keeps ox * sw - pl >= 0 (no pointer before the buffer is ever formed).
    if (g->kw == 3 && g->sw == 2) {  // ResNet's stem pool
      for (size_t ox = ox_lo; ox < ox_hi; ++ox) {
        const float* p = rowmax + (2 * ox - g->pl);
        const float a = p[1] > p[0] ? p[1] : p[0];
        yr[ox] = p[2] > a ? p[2] : a;
      }
    } else {
      for (size_t ox = ox_lo; ox < ox_hi; ++ox) {
        const float* p = rowmax + (ox * g->sw - g->pl);
        float m = p[0];
        for (size_t kx = 1; kx < g->kw; ++kx) m = p[kx] > m ? p[kx] : m;
        yr[ox] = m;
      }
    }
    for (size_t ox = ox_hi; ox < g->wo; ++ox) clipped(ox);
  }
}

}  // namespace maxpool_rows
}  // namespace edgefit
