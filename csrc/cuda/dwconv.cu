// f32-dwconv on CUDA: one thread per output pixel over a 32x8 output tile of one channel plane;
// the channel's kh*kw weights sit in shared memory, padding is a bounds check (no padded copy).
#include "cuda/common.cuh"

namespace edgefit {
namespace cuda {
namespace {

__global__ void dwconv_kernel(size_t planes, size_t channels, conv2d_geometry g,
                              const float* __restrict__ w, const float* __restrict__ bias,
                              const float* __restrict__ x, float* __restrict__ y, f32_minmax mm) {
  EDGEFIT_DYNAMIC_SHARED(float, wsm);
  const int taps = int(g.kh * g.kw);
  const int tid = threadIdx.y * blockDim.x + threadIdx.x, nt = blockDim.x * blockDim.y;
  const int ox = blockIdx.x * blockDim.x + threadIdx.x, oy = blockIdx.y * blockDim.y + threadIdx.y;
  for (size_t plane = blockIdx.z; plane < planes; plane += gridDim.z) {
    const size_t ch = plane % channels;
    __syncthreads();  // the previous plane's weights are no longer read
    for (int t = tid; t < taps; t += nt) wsm[t] = w[ch * taps + t];
    __syncthreads();
    if (ox >= int(g.wo) || oy >= int(g.ho)) continue;
    const float* xc = x + plane * g.h * g.w;
    float acc = bias != nullptr ? bias[ch] : 0.0f;
    const int iy0 = oy * int(g.sh) - int(g.pt), ix0 = ox * int(g.sw) - int(g.pl);
    for (int ky = 0; ky < int(g.kh); ++ky) {
      const int iy = iy0 + ky * int(g.dh);
      if (iy < 0 || iy >= int(g.h)) continue;
      for (int kx = 0; kx < int(g.kw); ++kx) {
        const int ix = ix0 + kx * int(g.dw);
        if (ix >= 0 && ix < int(g.w))
          acc = fmaf(__ldg(xc + (size_t)iy * g.w + ix), wsm[ky * int(g.kw) + kx], acc);
      }
    }
    y[plane * g.ho * g.wo + (size_t)oy * g.wo + ox] = detail::clampf(acc, mm);
  }
}

}  // namespace

int f32_dwconv2d(size_t n, size_t channels, const conv2d_geometry& g, const float* w,
                 const float* bias, const float* x, float* y, const f32_minmax& mm,
                 stream_t stream) {
  const size_t planes = n * channels;
  if (planes == 0 || g.ho == 0 || g.wo == 0) return 0;
  const size_t taps = g.kh * g.kw;
  // Weights of one channel must fit the 48 KiB shared-memory default; geometry fits in int.
  if (taps == 0 || taps > 12 * 1024 || g.h * g.w > (size_t(1) << 30) ||
      g.ho > detail::kMaxGridY * 8)
    return int(cudaErrorInvalidValue);
  const dim3 block(32, 8);
  const dim3 grid(detail::ceil_div_u(g.wo, 32), detail::ceil_div_u(g.ho, 8),
                  unsigned(planes < 65535 ? planes : 65535));
  EDGEFIT_LAUNCH(grid, block, taps * sizeof(float), stream, dwconv_kernel)(planes, channels, g, w,
                                                                           bias, x, y, mm);
  return detail::launched();
}

}  // namespace cuda
}  // namespace edgefit
