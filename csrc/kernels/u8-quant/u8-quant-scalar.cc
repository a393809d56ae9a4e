// Reference quantize / dequantize (round half to even, as numpy's rint).
#include <cmath>

#include "kernels/u8-quant/u8-quant.h"

namespace edgefit {

void f32_quantize_u8__scalar(size_t outer, size_t channels, size_t inner, const float* x,
                             const float* scale, const int32_t* zero_point, uint8_t* q) {
  for (size_t o = 0; o < outer; ++o) {
    for (size_t c = 0; c < channels; ++c) {
      const float s = scale[c];
      const float zp = float(zero_point[c]);
      const size_t base = (o * channels + c) * inner;
      for (size_t i = 0; i < inner; ++i) {
        // nearbyint rounds half to even under the default rounding mode.
        float v = std::nearbyint(x[base + i] / s) + zp;
        v = v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v);
        q[base + i] = std::isnan(v) ? uint8_t(0) : uint8_t(v);
      }
    }
  }
}

void u8_dequantize_f32__scalar(size_t outer, size_t channels, size_t inner, const uint8_t* q,
                               const float* scale, const int32_t* zero_point, float* x) {
  for (size_t o = 0; o < outer; ++o) {
    for (size_t c = 0; c < channels; ++c) {
      const size_t base = (o * channels + c) * inner;
      for (size_t i = 0; i < inner; ++i)
        x[base + i] = float(int32_t(q[base + i]) - zero_point[c]) * scale[c];
    }
  }
}

}  // namespace edgefit
