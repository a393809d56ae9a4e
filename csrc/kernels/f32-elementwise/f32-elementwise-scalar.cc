// Reference elementwise kernels.
#include <algorithm>
#include <cmath>

#include "kernels/f32-elementwise/f32-elementwise.h"

namespace edgefit {

void f32_vclamp__scalar(size_t n, const float* x, float* y, const f32_minmax* p) {
  for (size_t i = 0; i < n; ++i) y[i] = f32_clamp(x[i], p);
}

void f32_vhswish__scalar(size_t n, const float* x, float* y) {
  for (size_t i = 0; i < n; ++i) {
    const float v = x[i];
    y[i] = v * std::min(std::max(v + 3.0f, 0.0f), 6.0f) / 6.0f;
  }
}

void f32_vadd__scalar(size_t n, const float* a, const float* b, float* y, const f32_minmax* p) {
  for (size_t i = 0; i < n; ++i) y[i] = f32_clamp(a[i] + b[i], p);
}

void f32_vaffine__scalar(size_t channels, size_t inner, const float* x, const float* scale,
                         const float* shift, float* y, const f32_minmax* p) {
  for (size_t c = 0; c < channels; ++c)
    for (size_t i = 0; i < inner; ++i)
      y[c * inner + i] = f32_clamp(x[c * inner + i] * scale[c] + shift[c], p);
}

void f32_softmax__scalar(size_t outer, size_t n, size_t inner, const float* x, float* y) {
  for (size_t o = 0; o < outer; ++o) {
    for (size_t i = 0; i < inner; ++i) {
      const float* xs = x + o * n * inner + i;
      float* ys = y + o * n * inner + i;
      float m = xs[0];
      for (size_t j = 1; j < n; ++j) m = std::max(m, xs[j * inner]);
      float s = 0.0f;
      for (size_t j = 0; j < n; ++j) {
        const float e = std::exp(xs[j * inner] - m);
        ys[j * inner] = e;
        s += e;
      }
      const float inv = 1.0f / s;
      for (size_t j = 0; j < n; ++j) ys[j * inner] *= inv;
    }
  }
}

}  // namespace edgefit
