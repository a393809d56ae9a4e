// f32-conv on CUDA: grouped convolution as an implicit GEMM on the shared tile kernel (the B
// loader gathers im2col columns straight into shared memory), plus an explicit im2col kernel.
#include "cuda/tile_gemm.cuh"

namespace edgefit {
namespace cuda {
namespace {

using detail::kTileBk;

// One thread per column element; rows ordered like the weight's [channels, kh, kw].
__global__ void im2col_kernel(conv2d_geometry g, size_t channels, const float* __restrict__ x,
                              float* __restrict__ cols) {
  const size_t pixels = g.ho * g.wo, total = channels * g.kh * g.kw * pixels;
  for (size_t t = size_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += size_t(gridDim.x) * blockDim.x) {
    const size_t p = t % pixels, r = t / pixels;
    const size_t kx = r % g.kw, ky = (r / g.kw) % g.kh, c = r / (g.kw * g.kh);
    const size_t oy = p / g.wo, ox = p % g.wo;
    const long long iy = (long long)(oy * g.sh + ky * g.dh) - (long long)g.pt;
    const long long ix = (long long)(ox * g.sw + kx * g.dw) - (long long)g.pl;
    cols[t] = (iy < 0 || iy >= (long long)g.h || ix < 0 || ix >= (long long)g.w)
                  ? 0.0f
                  : x[(c * g.h + size_t(iy)) * g.w + size_t(ix)];
  }
}

}  // namespace

int f32_conv2d(size_t n, size_t ci, size_t co, size_t groups, const conv2d_geometry& g,
               const float* w, const float* bias, const float* x, float* y, const f32_minmax& mm,
               stream_t stream, float* workspace, size_t workspace_floats) {
  if (groups == 0 || ci % groups || co % groups) return int(cudaErrorInvalidValue);
  const size_t cig = ci / groups, cog = co / groups, P = g.ho * g.wo, K = cig * g.kh * g.kw;
  if (g.h * g.w > (size_t(1) << 30) || g.kh * g.kw > (size_t(1) << 20))
    return int(cudaErrorInvalidValue);
  const detail::DenseA a{w, (long long)K, int(cog)};
  const detail::StoreC c = detail::conv_store(y, co, groups, g, bias, mm);
  return detail::with_conv_b<kTileBk>(x, ci, groups, g, [&](const auto& b) {
    return detail::launch_tile_gemm<64, 64, kTileBk, 4, 4>(a, b, c, cog, P, K, n, groups, stream,
                                                           workspace, workspace_floats);
  });
}

size_t f32_conv2d_workspace_floats(size_t n, size_t ci, size_t co, size_t groups,
                                   const conv2d_geometry& g) {
  if (groups == 0 || ci % groups || co % groups) return 0;
  return detail::split_workspace_floats<64, 64, kTileBk>(co / groups, g.ho * g.wo,
                                                         ci / groups * g.kh * g.kw, n * groups);
}

int f32_im2col(const conv2d_geometry& g, size_t channels, const float* x, float* cols,
               stream_t stream) {
  const size_t total = channels * g.kh * g.kw * g.ho * g.wo;
  if (total == 0) return 0;
  EDGEFIT_LAUNCH(detail::blocks_for(total, 256), 256, 0, stream, im2col_kernel)(g, channels, x,
                                                                                cols);
  return detail::launched();
}

}  // namespace cuda
}  // namespace edgefit
