// f32-spmm on CUDA (BSR weights x dense CHW activations). Wide activations: a warp owns one block
// row and 64 pixels (2 per lane), walking the row's non-zero blocks (broadcast loads of index and
// values, coalesced loads of x). Narrow ones (< 8 pixels, e.g. batch-1 linear layers): a warp
// owns one block row and its lanes split the non-zeros, reduced with shuffles.
#include "cuda/common.cuh"

namespace edgefit {
namespace cuda {
namespace {

constexpr int kWarpsPerBlock = 4, kPixPerLane = 2, kNarrow = 8;

template <int B>
__global__ void spmm_wide_kernel(int pixels, int block_rows, const int32_t* __restrict__ row_ptr,
                                 const int32_t* __restrict__ col_idx,
                                 const float* __restrict__ values, const float* __restrict__ bias,
                                 const float* __restrict__ x, long long xcs, long long xps,
                                 float* __restrict__ y, long long ycs, long long yps,
                                 f32_minmax mm) {
  const int lane = threadIdx.x % 32;
  const int r = blockIdx.y * kWarpsPerBlock + threadIdx.x / 32;
  if (r >= block_rows) return;
  const int p0 = blockIdx.x * 32 * kPixPerLane + lane;
  float acc[B][kPixPerLane];
#pragma unroll
  for (int b = 0; b < B; ++b) {
    const float init = bias != nullptr ? bias[r * B + b] : 0.0f;
#pragma unroll
    for (int q = 0; q < kPixPerLane; ++q) acc[b][q] = init;
  }
  const int end = row_ptr[r + 1];
  for (int j = row_ptr[r]; j < end; ++j) {
    const float* xr = x + (long long)__ldg(col_idx + j) * xcs;
    float v[B];
#pragma unroll
    for (int b = 0; b < B; ++b) v[b] = __ldg(values + (long long)j * B + b);
#pragma unroll
    for (int q = 0; q < kPixPerLane; ++q) {
      const int p = p0 + q * 32;
      const float xv = p < pixels ? __ldg(xr + p * xps) : 0.0f;
#pragma unroll
      for (int b = 0; b < B; ++b) acc[b][q] = fmaf(v[b], xv, acc[b][q]);
    }
  }
#pragma unroll
  for (int q = 0; q < kPixPerLane; ++q) {
    const int p = p0 + q * 32;
    if (p >= pixels) continue;
#pragma unroll
    for (int b = 0; b < B; ++b)
      y[(long long)(r * B + b) * ycs + p * yps] = detail::clampf(acc[b][q], mm);
  }
}

template <int B>
__global__ void spmm_narrow_kernel(int pixels, int block_rows, const int32_t* __restrict__ row_ptr,
                                   const int32_t* __restrict__ col_idx,
                                   const float* __restrict__ values, const float* __restrict__ bias,
                                   const float* __restrict__ x, long long xcs, long long xps,
                                   float* __restrict__ y, long long ycs, long long yps,
                                   f32_minmax mm) {
  const int lane = threadIdx.x % 32;
  const int r = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  if (r >= block_rows) return;
  float acc[kNarrow][B];
#pragma unroll
  for (int p = 0; p < kNarrow; ++p)
#pragma unroll
    for (int b = 0; b < B; ++b) acc[p][b] = 0.0f;
  const int end = row_ptr[r + 1];
  for (int j = row_ptr[r] + lane; j < end; j += 32) {
    const float* xr = x + (long long)__ldg(col_idx + j) * xcs;
#pragma unroll
    for (int p = 0; p < kNarrow; ++p) {
      if (p >= pixels) break;
      const float xv = __ldg(xr + p * xps);
#pragma unroll
      for (int b = 0; b < B; ++b)
        acc[p][b] = fmaf(__ldg(values + (long long)j * B + b), xv, acc[p][b]);
    }
  }
#pragma unroll
  for (int p = 0; p < kNarrow; ++p) {
    if (p >= pixels) break;
#pragma unroll
    for (int b = 0; b < B; ++b) {
      float s = acc[p][b];
#pragma unroll
      for (int off = 16; off > 0; off /= 2) s += __shfl_down_sync(0xffffffffu, s, off);
      if (lane == 0) {
        s += bias != nullptr ? bias[r * B + b] : 0.0f;
        y[(long long)(r * B + b) * ycs + p * yps] = detail::clampf(s, mm);
      }
    }
  }
}

template <int B>
int launch(size_t pixels, size_t block_rows, const int32_t* row_ptr, const int32_t* col_idx,
           const float* values, const float* bias, const float* x, size_t xcs, size_t xps, float* y,
           size_t ycs, size_t yps, const f32_minmax& mm, cudaStream_t stream) {
  const unsigned row_blocks = detail::ceil_div_u(block_rows, kWarpsPerBlock);
  if (pixels < size_t(kNarrow)) {
    EDGEFIT_LAUNCH(row_blocks, 32 * kWarpsPerBlock, 0, stream, spmm_narrow_kernel<B>)(
        int(pixels), int(block_rows), row_ptr, col_idx, values, bias, x, (long long)xcs,
        (long long)xps, y, (long long)ycs, (long long)yps, mm);
  } else {
    if (row_blocks > detail::kMaxGridY) return int(cudaErrorInvalidValue);
    const dim3 grid(detail::ceil_div_u(pixels, 32 * kPixPerLane), row_blocks);
    EDGEFIT_LAUNCH(grid, 32 * kWarpsPerBlock, 0, stream, spmm_wide_kernel<B>)(
        int(pixels), int(block_rows), row_ptr, col_idx, values, bias, x, (long long)xcs,
        (long long)xps, y, (long long)ycs, (long long)yps, mm);
  }
  return detail::launched();
}

}  // namespace

int f32_spmm(size_t pixels, size_t block_rows, uint32_t block, const int32_t* row_ptr,
             const int32_t* col_idx, const float* values, const float* bias, const float* x,
             size_t x_cstride, size_t x_pstride, float* y, size_t y_cstride, size_t y_pstride,
             const f32_minmax& mm, stream_t stream) {
  if (pixels == 0 || block_rows == 0) return 0;
  if (pixels > (size_t(1) << 30) || block_rows > (size_t(1) << 28))
    return int(cudaErrorInvalidValue);
  switch (block) {
    case 1:
      return launch<1>(pixels, block_rows, row_ptr, col_idx, values, bias, x, x_cstride, x_pstride,
                       y, y_cstride, y_pstride, mm, stream);
    case 2:
      return launch<2>(pixels, block_rows, row_ptr, col_idx, values, bias, x, x_cstride, x_pstride,
                       y, y_cstride, y_pstride, mm, stream);
    case 4:
      return launch<4>(pixels, block_rows, row_ptr, col_idx, values, bias, x, x_cstride, x_pstride,
                       y, y_cstride, y_pstride, mm, stream);
    default:
      return int(cudaErrorInvalidValue);
  }
}

}  // namespace cuda
}  // namespace edgefit
