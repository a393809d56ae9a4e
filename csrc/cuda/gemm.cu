// f32-gemm on CUDA: tiled SGEMM (64x64 tiles, 4x4 outputs per thread) for 1x1 convolutions,
// a warp-per-output GEMV for linear layers, and an f16 tensor-core GEMM (WMMA, sm_70+).
#include "cuda/tile_gemm.cuh"

#if !defined(EDGEFIT_CUDA_SIM)
#include <cuda_fp16.h>
#include <mma.h>
#endif

namespace edgefit {
namespace cuda {
namespace {

using detail::clampf;

// One warp per output y[bt, i]: lanes stride over k (coalesced on w and x), then a shuffle sum.
__global__ void linear_kernel(int batch, int o, int k, const float* __restrict__ w,
                              const float* __restrict__ bias, const float* __restrict__ x,
                              float* __restrict__ y, f32_minmax mm) {
  const long long warps = (long long)gridDim.x * (blockDim.x / 32);
  const int lane = threadIdx.x % 32;
  for (long long t = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
       t < (long long)batch * o; t += warps) {
    const int bt = int(t / o), i = int(t % o);
    const float* wr = w + (long long)i * k;
    const float* xr = x + (long long)bt * k;
    float s = 0.0f;
    for (int kk = lane; kk < k; kk += 32) s = fmaf(__ldg(wr + kk), __ldg(xr + kk), s);
#pragma unroll
    for (int off = 16; off > 0; off /= 2) s += __shfl_down_sync(0xffffffffu, s, off);
    if (lane == 0) y[t] = clampf(s + (bias != nullptr ? bias[i] : 0.0f), mm);
  }
}

__global__ void f32_to_f16_kernel(size_t n, const float* __restrict__ src,
                                  uint16_t* __restrict__ dst) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    dst[i] = __half_as_ushort(__float2half_rn(src[i]));
}

// Tensor-core tile: 64x64 outputs per block of 4 warps (2x2), each warp 32x32 = 2x2 WMMA
// 16x16x16 fragments; K in slices of 32. A (f16 weights) and B (f32 activations, rounded to
// f16 while staged) go through shared memory with padded rows (ld multiple of 8 halves, 32-byte
// aligned fragment starts); the f32 accumulators go back through shared memory for the bias,
// clamp and bounds-checked store.
constexpr int kWm = 64, kWn = 64, kWk = 32;

__global__ void __launch_bounds__(128)
    f16_gemm_kernel(int M, int N, int K, const __half* __restrict__ w,
                    const float* __restrict__ bias, const float* __restrict__ b, long long ldb,
                    float* __restrict__ c, long long ldc, f32_minmax mm) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
  using namespace nvcuda;
  __shared__ __align__(32) __half As[kWm][kWk + 8];
  __shared__ __align__(32) __half Bs[kWk][kWn + 8];
  __shared__ __align__(32) float Cs[kWm][kWn + 4];
  const int tid = threadIdx.x, warp = tid / 32, wm = warp / 2, wn = warp % 2;
  const int m0 = blockIdx.y * kWm, n0 = blockIdx.x * kWn;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

  for (int k0 = 0; k0 < K; k0 += kWk) {
    for (int e = tid; e < kWm * kWk; e += 128) {
      const int i = e / kWk, kk = e % kWk, row = m0 + i, k = k0 + kk;
      As[i][kk] = (row < M && k < K) ? w[(long long)row * K + k] : __float2half(0.0f);
    }
    for (int e = tid; e < kWk * kWn; e += 128) {
      const int kk = e / kWn, j = e % kWn, k = k0 + kk, col = n0 + j;
      Bs[kk][j] = __float2half_rn((k < K && col < N) ? __ldg(b + k * ldb + col) : 0.0f);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kWk; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> fb[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(fa[i], &As[wm * 32 + i * 16][kk], kWk + 8);
#pragma unroll
      for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(fb[j], &Bs[kk][wn * 32 + j * 16], kWn + 8);
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j)
      wmma::store_matrix_sync(&Cs[wm * 32 + i * 16][wn * 32 + j * 16], acc[i][j], kWn + 4,
                              wmma::mem_row_major);
  __syncthreads();
  for (int e = tid; e < kWm * kWn; e += 128) {
    const int i = e / kWn, j = e % kWn, row = m0 + i, col = n0 + j;
    if (row < M && col < N)
      c[row * ldc + col] = clampf(Cs[i][j] + (bias != nullptr ? bias[row] : 0.0f), mm);
  }
#endif
}

}  // namespace

int f32_gemm(size_t m, size_t n, size_t k, const float* w, const float* bias, const float* b,
             size_t ldb, float* c, size_t ldc, const f32_minmax& mm, stream_t stream,
             float* workspace, size_t workspace_floats) {
  const detail::DenseA a{w, (long long)k, int(m)};
  const detail::StridedB bb{b, (long long)ldb, 1, 0, 0};
  const detail::StoreC cc{c, (long long)ldc, 1, 0, 0, bias, int(m), mm};
  return detail::launch_tile_gemm<64, 64, detail::kTileBk, 4, 4>(a, bb, cc, m, n, k, 1, 1, stream,
                                                                 workspace, workspace_floats);
}

size_t f32_gemm_workspace_floats(size_t m, size_t n, size_t k) {
  return detail::split_workspace_floats<64, 64, detail::kTileBk>(m, n, k, 1);
}

int f16_gemm(size_t m, size_t n, size_t k, const uint16_t* w_f16, const float* bias, const float* b,
             size_t ldb, float* c, size_t ldc, const f32_minmax& mm, stream_t stream) {
  if (m == 0 || n == 0) return 0;
  int dev = 0, major = 0, minor = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e == cudaSuccess) e = cudaError_t(device_capability(dev, &major, &minor));
  if (e != cudaSuccess) return int(e);
  if (major < 7) return int(cudaErrorNotSupported);  // no tensor cores (Maxwell: Jetson Nano)
  if (m > (size_t(1) << 30) || n > (size_t(1) << 30) || k > (size_t(1) << 30) ||
      (m + kWm - 1) / kWm > detail::kMaxGridY)
    return int(cudaErrorInvalidValue);
  const dim3 grid(detail::ceil_div_u(n, kWn), detail::ceil_div_u(m, kWm));
  EDGEFIT_LAUNCH(grid, 128, 0, stream, f16_gemm_kernel)(
      int(m), int(n), int(k), reinterpret_cast<const __half*>(w_f16), bias, b, (long long)ldb, c,
      (long long)ldc, mm);
  return detail::launched();
}

int f32_linear(size_t batch, size_t o, size_t k, const float* w, const float* bias, const float* x,
               float* y, const f32_minmax& mm, stream_t stream) {
  if (batch == 0 || o == 0) return 0;
  if (batch * o > (size_t(1) << 40) || k > (size_t(1) << 30)) return int(cudaErrorInvalidValue);
  const unsigned blocks = detail::blocks_for(batch * o * 32, 256);
  EDGEFIT_LAUNCH(blocks, 256, 0, stream, linear_kernel)(int(batch), int(o), int(k), w, bias, x, y,
                                                        mm);
  return detail::launched();
}

int f32_to_f16(size_t n, const float* src, uint16_t* dst, stream_t stream) {
  if (n == 0) return 0;
  EDGEFIT_LAUNCH(detail::blocks_for(n, 256), 256, 0, stream, f32_to_f16_kernel)(n, src, dst);
  return detail::launched();
}

}  // namespace cuda
}  // namespace edgefit
