// f32-elementwise on CUDA: grid-stride loops for clamp, hardswish, add and per-channel affine;
// softmax with one warp per (outer, inner) column (shuffle max, then shuffle sum of exponentials).
#include "cuda/common.cuh"

namespace edgefit {
namespace cuda {
namespace {

using detail::clampf;

#define EDGEFIT_GRID_STRIDE(i, n)                                         \
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += size_t(gridDim.x) * blockDim.x)

__global__ void clamp_kernel(size_t n, const float* x, float* y, f32_minmax mm) {
  EDGEFIT_GRID_STRIDE(i, n) y[i] = clampf(x[i], mm);
}

__global__ void hswish_kernel(size_t n, const float* x, float* y) {
  EDGEFIT_GRID_STRIDE(i, n) {
    const float v = x[i];
    y[i] = v * fminf(fmaxf(v + 3.0f, 0.0f), 6.0f) / 6.0f;
  }
}

// y may alias a or b: each element is read before it is written, by the same thread.
__global__ void add_kernel(size_t n, const float* a, const float* b, float* y, f32_minmax mm) {
  EDGEFIT_GRID_STRIDE(i, n) y[i] = clampf(a[i] + b[i], mm);
}

__global__ void affine_kernel(size_t total, size_t channels, size_t inner, const float* x,
                              const float* __restrict__ scale, const float* __restrict__ shift,
                              float* y, f32_minmax mm) {
  EDGEFIT_GRID_STRIDE(i, total) {
    const size_t c = (i / inner) % channels;
    y[i] = clampf(fmaf(x[i], __ldg(scale + c), __ldg(shift + c)), mm);
  }
}

__global__ void softmax_kernel(size_t outer, size_t n, size_t inner, const float* __restrict__ x,
                               float* __restrict__ y) {
  const int lane = threadIdx.x % 32;
  const size_t warps = size_t(gridDim.x) * (blockDim.x / 32), columns = outer * inner;
  for (size_t col = size_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; col < columns;
       col += warps) {
    const size_t o = col / inner, i = col % inner;
    const float* xs = x + o * n * inner + i;
    float* ys = y + o * n * inner + i;
    float m = -INFINITY;
    for (size_t j = lane; j < n; j += 32) m = fmaxf(m, xs[j * inner]);
#pragma unroll
    for (int off = 16; off > 0; off /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
    float s = 0.0f;
    for (size_t j = lane; j < n; j += 32) {
      const float e = expf(xs[j * inner] - m);
      ys[j * inner] = e;
      s += e;
    }
#pragma unroll
    for (int off = 16; off > 0; off /= 2) s += __shfl_xor_sync(0xffffffffu, s, off);
    const float inv = 1.0f / s;
    for (size_t j = lane; j < n; j += 32) ys[j * inner] *= inv;
  }
}

}  // namespace

int f32_vclamp(size_t n, const float* x, float* y, const f32_minmax& mm, stream_t stream) {
  if (n == 0) return 0;
  EDGEFIT_LAUNCH(detail::blocks_for(n, 256), 256, 0, stream, clamp_kernel)(n, x, y, mm);
  return detail::launched();
}

int f32_vhswish(size_t n, const float* x, float* y, stream_t stream) {
  if (n == 0) return 0;
  EDGEFIT_LAUNCH(detail::blocks_for(n, 256), 256, 0, stream, hswish_kernel)(n, x, y);
  return detail::launched();
}

int f32_vadd(size_t n, const float* a, const float* b, float* y, const f32_minmax& mm,
             stream_t stream) {
  if (n == 0) return 0;
  EDGEFIT_LAUNCH(detail::blocks_for(n, 256), 256, 0, stream, add_kernel)(n, a, b, y, mm);
  return detail::launched();
}

int f32_vaffine(size_t outer, size_t channels, size_t inner, const float* x, const float* scale,
                const float* shift, float* y, const f32_minmax& mm, stream_t stream) {
  const size_t total = outer * channels * inner;
  if (total == 0) return 0;
  EDGEFIT_LAUNCH(detail::blocks_for(total, 256), 256, 0, stream, affine_kernel)(
      total, channels, inner, x, scale, shift, y, mm);
  return detail::launched();
}

int f32_softmax(size_t outer, size_t n, size_t inner, const float* x, float* y, stream_t stream) {
  if (outer * n * inner == 0) return 0;
  EDGEFIT_LAUNCH(detail::blocks_for(outer * inner * 32, 256), 256, 0, stream, softmax_kernel)(
      outer, n, inner, x, y);
  return detail::launched();
}

}  // namespace cuda
}  // namespace edgefit
