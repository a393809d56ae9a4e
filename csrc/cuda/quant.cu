// u8-quant on CUDA: one thread per element (grid-stride). rintf rounds half to even like the
// scalar kernel's nearbyint, and x / scale is an IEEE division (no fast-math), so results are
// bit-identical to the CPU reference.
#include "cuda/common.cuh"

namespace edgefit {
namespace cuda {
namespace {

__global__ void quantize_kernel(size_t total, size_t channels, size_t inner,
                                const float* __restrict__ x, const float* __restrict__ scale,
                                const int32_t* __restrict__ zero_point, uint8_t* __restrict__ q) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += size_t(gridDim.x) * blockDim.x) {
    const size_t c = (i / inner) % channels;
    float v = rintf(x[i] / scale[c]) + float(zero_point[c]);
    v = v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v);
    q[i] = isnan(v) ? uint8_t(0) : uint8_t(v);
  }
}

__global__ void dequantize_kernel(size_t total, size_t channels, size_t inner,
                                  const uint8_t* __restrict__ q, const float* __restrict__ scale,
                                  const int32_t* __restrict__ zero_point, float* __restrict__ x) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += size_t(gridDim.x) * blockDim.x) {
    const size_t c = (i / inner) % channels;
    x[i] = float(int32_t(q[i]) - zero_point[c]) * scale[c];
  }
}

}  // namespace

int f32_quantize_u8(size_t outer, size_t channels, size_t inner, const float* x, const float* scale,
                    const int32_t* zero_point, uint8_t* q, stream_t stream) {
  const size_t total = outer * channels * inner;
  if (total == 0) return 0;
  EDGEFIT_LAUNCH(detail::blocks_for(total, 256), 256, 0, stream, quantize_kernel)(
      total, channels, inner, x, scale, zero_point, q);
  return detail::launched();
}

int u8_dequantize_f32(size_t outer, size_t channels, size_t inner, const uint8_t* q,
                      const float* scale, const int32_t* zero_point, float* x, stream_t stream) {
  const size_t total = outer * channels * inner;
  if (total == 0) return 0;
  EDGEFIT_LAUNCH(detail::blocks_for(total, 256), 256, 0, stream, dequantize_kernel)(
      total, channels, inner, q, scale, zero_point, x);
  return detail::launched();
}

}  // namespace cuda
}  // namespace edgefit
