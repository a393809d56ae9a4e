// im2col for the f32-conv family: unfolds one group's CHW input into GEMM columns.
#include <algorithm>
#include <cstring>

#include "kernels/f32-conv/f32-conv.h"
#include "kernels/f32-gemm/f32-gemm.h"

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

}  // namespace edgefit

namespace edgefit {

namespace {

// dst[t] = src[t * stride] for t < n. Four per step with constant offsets for stride 2 (strided
// convolutions): under qemu the plain loop cost 6 instructions per float, a third of ResNet-50's
// unfold.
inline void strided_copy(const float* __restrict src, size_t stride, size_t n,
                         float* __restrict dst) {
  size_t t = 0;
  if (stride == 2) {
    for (; t + 4 <= n; t += 4) {
      const float* s = src + 2 * t;  // indexed, so no pointer past the row is ever formed
      dst[t] = s[0];
      dst[t + 1] = s[2];
      dst[t + 2] = s[4];
      dst[t + 3] = s[6];
    }
  }
  for (; t < n; ++t) dst[t] = src[t * stride];
}

// One row (c, ky, kx) of the unfolded matrix for the output pixels p0 .. p0 + count, written
// contiguously to dst: the chunk is walked one output-row segment at a time, zeros where the
// window is in the padding, a (strided) copy in between.
inline void unfold_row(const conv2d_geometry* g, const float* xc, size_t ky, size_t kx, size_t p0,
                       size_t count, float* dst) {
  const ptrdiff_t sw = ptrdiff_t(g->sw);
  // Valid ox for this kx: pl <= ox * sw + kx * dw < w + pl.
  const ptrdiff_t off = ptrdiff_t(kx * g->dw) - ptrdiff_t(g->pl);
  const ptrdiff_t hi_num = ptrdiff_t(g->w) - off;
  size_t lo_kx = 0, hi_kx = 0;
  if (sw == 1) {  // no division in the common case
    lo_kx = off >= 0 ? 0 : size_t(-off);
    hi_kx = hi_num <= 0 ? 0 : size_t(hi_num);
  } else {
    lo_kx = off >= 0 ? 0 : size_t((-off + sw - 1) / sw);
    hi_kx = hi_num <= 0 ? 0 : size_t((hi_num + sw - 1) / sw);
  }
  size_t oy = p0 / g->wo, ox0 = p0 % g->wo;
  while (count > 0) {
    const size_t ox1 = std::min(g->wo, ox0 + count), seg = ox1 - ox0;
    const ptrdiff_t iy = ptrdiff_t(oy * g->sh + ky * g->dh) - ptrdiff_t(g->pt);
    if (iy < 0 || iy >= ptrdiff_t(g->h)) {
      std::memset(dst, 0, seg * sizeof(float));
    } else {
      const float* xrow = xc + size_t(iy) * g->w;
      const size_t lo = std::min(std::max(lo_kx, ox0), ox1);
      const size_t hi = std::min(std::max(hi_kx, lo), ox1);
      float* o = dst - ox0;
      for (size_t ox = ox0; ox < lo; ++ox) o[ox] = 0.0f;
      if (hi > lo) {
        const float* src = xrow + (ptrdiff_t(lo) * sw + off);
        if (sw == 1)
          std::memcpy(o + lo, src, (hi - lo) * sizeof(float));
        else
          strided_copy(src, size_t(sw), hi - lo, o + lo);
      }
      for (size_t ox = hi; ox < ox1; ++ox) o[ox] = 0.0f;
    }
    dst += seg;
    count -= seg;
    ox0 = 0;
    ++oy;
  }
}

}  // namespace

void f32_im2col_packed__scalar(const conv2d_geometry* g, const float* x, size_t k0, size_t kc,
                               size_t p0, size_t np, size_t nr, float* out) {
  // Each row is unfolded contiguously (long runs: memcpy / memset), then, unless the block is
  // one strip wide, scattered over the strips in whole-strip copies, a sub-chunk of columns at
  // a time through an L1-resident row buffer.
  constexpr size_t kTmp = 1024;
  alignas(64) float tmp[kTmp];
  const size_t strip_floats = kc * nr;
  const size_t sub = nr >= np ? np : std::max(nr, kTmp / nr * nr);
  for (size_t q0 = 0; q0 < np; q0 += sub) {
    const size_t cols = std::min(sub, np - q0);
    size_t c = k0 / (g->kh * g->kw), ky = k0 / g->kw % g->kh, kx = k0 % g->kw;
    for (size_t kk = 0; kk < kc; ++kk) {
      const float* xc = x + c * g->h * g->w;
      float* row = out + (q0 / nr) * strip_floats + kk * nr;
      if (nr >= np) {
        unfold_row(g, xc, ky, kx, p0, np, row);
        for (size_t i = np; i < nr; ++i) row[i] = 0.0f;
      } else if (cols <= kTmp) {
        unfold_row(g, xc, ky, kx, p0 + q0, cols, tmp);
        f32_gemm_strips_from_row(cols, nr, tmp, row, strip_floats);
      } else {  // strips wider than the buffer: unfold one strip at a time
        for (size_t j = 0; j < cols; j += nr) {
          const size_t w = std::min(nr, cols - j);
          float* srow = row + (j / nr) * strip_floats;
          unfold_row(g, xc, ky, kx, p0 + q0 + j, w, srow);
          for (size_t i = w; i < nr; ++i) srow[i] = 0.0f;
        }
      }
      if (++kx == g->kw) {
        kx = 0;
        if (++ky == g->kh) ky = 0, ++c;
      }
    }
  }
}

}  // namespace edgefit
