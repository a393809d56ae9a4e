// Quantize f32 -> u8 and dequantize u8 -> f32 around the bottleneck, per tensor or per channel:
// q = clamp(round_half_even(x / scale) + zp, 0, 255); x = (q - zp) * scale.
// Tensors are viewed as [outer, channels, inner]; scale / zp have `channels` entries, or 1
// (per tensor: pass channels = 1 and inner = all elements per outer).
#pragma once

#include "kernels/common.h"

namespace edgefit {

void f32_quantize_u8__scalar(size_t outer, size_t channels, size_t inner, const float* x,
                             const float* scale, const int32_t* zero_point, uint8_t* q);
void u8_dequantize_f32__scalar(size_t outer, size_t channels, size_t inner, const uint8_t* q,
                               const float* scale, const int32_t* zero_point, float* x);

}  // namespace edgefit
