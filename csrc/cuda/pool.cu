// f32-pool on CUDA: max / average pooling with one thread per output element (torch's window,
// padding and divisor rules, as the scalar kernels), global average pooling with one warp per
// channel (lane-strided sums, shuffle reduction).
#include "cuda/common.cuh"

namespace edgefit {
namespace cuda {
namespace {

template <bool kMax>
__global__ void pool_kernel(size_t planes, pool2d_geometry g, const float* __restrict__ x,
                            float* __restrict__ y) {
  const size_t outs = g.ho * g.wo, total = planes * outs;
  const long long h = (long long)g.h, w = (long long)g.w;
  for (size_t t = size_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += size_t(gridDim.x) * blockDim.x) {
    const size_t plane = t / outs, o = t % outs, oy = o / g.wo, ox = o % g.wo;
    const float* xp = x + plane * g.h * g.w;
    const long long y0 = (long long)(oy * g.sh) - (long long)g.pt;
    const long long x0 = (long long)(ox * g.sw) - (long long)g.pl;
    if (kMax) {
      const long long ys = max(y0, 0LL), ye = min(y0 + (long long)g.kh, h);
      const long long xs = max(x0, 0LL), xe = min(x0 + (long long)g.kw, w);
      float m = -INFINITY;
      for (long long iy = ys; iy < ye; ++iy)
        for (long long ix = xs; ix < xe; ++ix) m = fmaxf(m, __ldg(xp + iy * w + ix));
      y[t] = m;
    } else {
      // As torch: the divisor counts padding up to the padded border, not the ceil_mode overhang.
      const long long y1 = min(y0 + (long long)g.kh, h + (long long)g.pb);
      const long long x1 = min(x0 + (long long)g.kw, w + (long long)g.pr);
      const long long ys = max(y0, 0LL), ye = min(y1, h), xs = max(x0, 0LL), xe = min(x1, w);
      float s = 0.0f;
      for (long long iy = ys; iy < ye; ++iy)
        for (long long ix = xs; ix < xe; ++ix) s += __ldg(xp + iy * w + ix);
      const long long count = g.count_include_pad ? (y1 - y0) * (x1 - x0) : (ye - ys) * (xe - xs);
      y[t] = count > 0 ? s / float(count) : 0.0f;
    }
  }
}

__global__ void global_avgpool_kernel(size_t channels, size_t pixels, const float* __restrict__ x,
                                      float* __restrict__ y) {
  const int lane = threadIdx.x % 32;
  const size_t warps = size_t(gridDim.x) * (blockDim.x / 32);
  for (size_t c = size_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; c < channels;
       c += warps) {
    const float* xc = x + c * pixels;
    float s = 0.0f;
    for (size_t p = lane; p < pixels; p += 32) s += __ldg(xc + p);
#pragma unroll
    for (int off = 16; off > 0; off /= 2) s += __shfl_down_sync(0xffffffffu, s, off);
    if (lane == 0) y[c] = s / float(pixels);
  }
}

}  // namespace

int f32_maxpool2d(size_t planes, const pool2d_geometry& g, const float* x, float* y,
                  stream_t stream) {
  const size_t total = planes * g.ho * g.wo;
  if (total == 0) return 0;
  EDGEFIT_LAUNCH(detail::blocks_for(total, 256), 256, 0, stream, pool_kernel<true>)(planes, g, x,
                                                                                    y);
  return detail::launched();
}

int f32_avgpool2d(size_t planes, const pool2d_geometry& g, const float* x, float* y,
                  stream_t stream) {
  const size_t total = planes * g.ho * g.wo;
  if (total == 0) return 0;
  EDGEFIT_LAUNCH(detail::blocks_for(total, 256), 256, 0, stream, pool_kernel<false>)(planes, g, x,
                                                                                     y);
  return detail::launched();
}

int f32_global_avgpool(size_t channels, size_t pixels, const float* x, float* y, stream_t stream) {
  if (channels == 0 || pixels == 0) return 0;
  EDGEFIT_LAUNCH(detail::blocks_for(channels * 32, 256), 256, 0, stream, global_avgpool_kernel)(
      channels, pixels, x, y);
  return detail::launched();
}

}  // namespace cuda
}  // namespace edgefit
