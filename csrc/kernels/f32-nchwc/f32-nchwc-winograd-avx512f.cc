// AVX-512 Winograd F(2x2, 3x3) transforms (f32-nchwc.h): one zmm per tile position holds a
// 16-channel block, so both transforms are adds and subtracts of whole vectors (no shuffles).
#include <immintrin.h>

// GCC 12's own AVX-512 intrinsics pass an undefined source (_mm512_undefined_ps) to their
// builtins and then warn that it "may be used uninitialized" once inlined here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "kernels/f32-nchwc/f32-nchwc-winograd.h"
#include "kernels/f32-nchwc/f32-nchwc.h"

namespace edgefit {

namespace {
constexpr size_t kC = kNchwcBlock;
}  // namespace

void f32_nchwc_wino_pack_group__avx512f(size_t width, size_t ic, size_t ib, const float* w3,
                                        float* u) {
  for (size_t i = ib * kC; i < (ib + 1) * kC; ++i)
    for (size_t o = 0; o < width; o += kC) {
      __m512 g[9], t[16];
      for (size_t tap = 0; tap < 9; ++tap)
        g[tap] = _mm512_loadu_ps(w3 + ((ib * 9 + tap) * kC + i % kC) * width + o);
      f32_wino_weight_tile(g, t);
      for (size_t xi = 0; xi < 16; ++xi) _mm512_storeu_ps(u + (xi * ic + i) * width + o, t[xi]);
    }
}

void f32_nchwc_wino_in__avx512f(size_t h, size_t w, size_t blocks, const float* x, size_t t0,
                                size_t nt, size_t stride, float* v) {
  const size_t tw = w / 2;
  for (size_t b = 0; b < blocks; ++b) {
    const float* xb = x + b * h * w * kC;
    for (size_t t = t0; t < t0 + nt; ++t) {
      const ptrdiff_t y0 = ptrdiff_t(t / tw) * 2 - 1, x0 = ptrdiff_t(t % tw) * 2 - 1;
      const bool inside = y0 >= 0 && x0 >= 0 && y0 + 4 <= ptrdiff_t(h) && x0 + 4 <= ptrdiff_t(w);
      __m512 d[16], out[16];
      for (ptrdiff_t i = 0; i < 4; ++i)
        for (ptrdiff_t j = 0; j < 4; ++j) {
          const ptrdiff_t r = y0 + i, c = x0 + j;
          d[i * 4 + j] = inside || (r >= 0 && r < ptrdiff_t(h) && c >= 0 && c < ptrdiff_t(w))
                             ? _mm512_loadu_ps(xb + (size_t(r) * w + size_t(c)) * kC)
                             : _mm512_setzero_ps();
        }
      f32_wino_input_tile(d, out);
      float* vt = v + (b * stride + t - t0) * kC;
      for (size_t xi = 0; xi < 16; ++xi) _mm512_storeu_ps(vt + xi * blocks * stride * kC, out[xi]);
    }
  }
}

void f32_nchwc_wino_out__avx512f(size_t h, size_t w, size_t blocks, const float* m, size_t t0,
                                 size_t nt, size_t stride, const float* bias, float* y,
                                 const f32_minmax* params) {
  const size_t tw = w / 2;
  const __m512 lo = _mm512_set1_ps(params->min), hi = _mm512_set1_ps(params->max);
  for (size_t b = 0; b < blocks; ++b) {
    const __m512 add = bias != nullptr ? _mm512_loadu_ps(bias + b * kC) : _mm512_setzero_ps();
    float* yb = y + b * h * w * kC;
    for (size_t t = t0; t < t0 + nt; ++t) {
      const size_t oy = (t / tw) * 2, ox = (t % tw) * 2;
      const float* mt = m + (b * stride + t - t0) * kC;
      __m512 p[16], out[4];
      for (size_t xi = 0; xi < 16; ++xi) p[xi] = _mm512_loadu_ps(mt + xi * blocks * stride * kC);
      f32_wino_output_tile(p, out);
      for (size_t i = 0; i < 2; ++i)
        for (size_t j = 0; j < 2; ++j)
          _mm512_storeu_ps(yb + ((oy + i) * w + ox + j) * kC,
                           _mm512_min_ps(_mm512_max_ps(out[i * 2 + j] + add, lo), hi));
    }
  }
}

}  // namespace edgefit
