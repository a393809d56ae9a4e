// The shared-memory tiled SGEMM every dense-style CUDA kernel is built from: a block computes a
// BM x BN tile of C (TM x TN outputs per thread) over K in BK-deep slices staged in shared memory.
// Operand A (weights) and B (activations) are loader policies, so the same kernel serves plain
// GEMM, implicit-GEMM convolution (B gathers im2col columns) and codebook weights (A decodes
// n-bit codes through tables in shared memory). blockIdx.z walks (image, group) pairs.
#pragma once

#include "cuda/common.cuh"

namespace edgefit {
namespace cuda {
namespace detail {

// A = dense row-major weights; group g owns rows [g * m, (g + 1) * m).
struct DenseA {
  static constexpr int kSmem = 1;
  const float* w;
  long long ld;  // k
  int m;         // rows per group
  __device__ void prepare(float*, int, int, int, int) const {}
  __device__ float at(const float*, int, int row, int k, int g) const {
    return __ldg(w + (long long)(g * m + row) * ld + k);
  }
  __device__ float scale(int, int) const { return 1.0f; }
};

// A = codebook weights (cb-gemm.h): the tile's BM rows' tables (2^bits <= 256 entries each) are
// copied to shared memory once per block; each code is decoded as it is staged.
template <int BM>
struct CodebookA {
  static constexpr int kSmem = BM * 256;
  const uint8_t* packed;
  long long row_bytes;
  unsigned bits;
  const float* table;
  const int32_t* group;
  const float* row_scale;
  int m;
  __device__ void prepare(float* tbl, int m0, int g, int tid, int nthreads) const {
    const int entries = 1 << bits;
    for (int e = tid; e < BM * entries; e += nthreads) {
      const int i = e / entries, t = e % entries, row = m0 + i;
      tbl[i * 256 + t] =
          row < m ? __ldg(table + (long long)group[g * m + row] * entries + t) : 0.0f;
    }
  }
  __device__ float at(const float* tbl, int i, int row, int k, int g) const {
    // Same bit arithmetic as cb_code(): LSB first, never reading past the row.
    const uint8_t* r = packed + (long long)(g * m + row) * row_bytes;
    const long long bit = (long long)k * bits;
    const long long byte = bit >> 3;
    unsigned v = __ldg(r + byte);
    if (byte + 1 < row_bytes) v |= unsigned(__ldg(r + byte + 1)) << 8;
    return tbl[i * 256 + ((v >> (bit & 7)) & ((1u << bits) - 1u))];
  }
  __device__ float scale(int row, int g) const { return __ldg(row_scale + g * m + row); }
};

// B = strided matrix: element (k, j) of image b, group g.
struct StridedB {
  const float* p;
  long long rs, cs, image_stride, group_stride;
  __device__ float at(int k, int j, int b, int g) const {
    return __ldg(p + b * image_stride + g * group_stride + k * rs + j * cs);
  }
};

// B = im2col columns of a CHW image, gathered on the fly (zero outside the image).
struct Im2colB {
  const float* x;
  int h, w, wo, kh, kw, sh, sw, pt, pl, dh, dw;
  long long image_stride, group_stride;
  __device__ float at(int k, int j, int b, int g) const {
    const int c = k / (kh * kw), r = k - c * (kh * kw), ky = r / kw, kx = r - ky * kw;
    const int oy = j / wo, ox = j - oy * wo;
    const int iy = oy * sh + ky * dh - pt, ix = ox * sw + kx * dw - pl;
    if (iy < 0 || iy >= h || ix < 0 || ix >= w) return 0.0f;
    return __ldg(x + b * image_stride + g * group_stride + ((long long)c * h + iy) * w + ix);
  }
};

// C = strided output with bias (indexed by the global row g * m + row) and clamp.
struct StoreC {
  float* p;
  long long rs, cs, image_stride, group_stride;
  const float* bias;
  int m;
  f32_minmax mm;
  __device__ void store(int row, int j, int b, int g, float v) const {
    if (bias != nullptr) v += __ldg(bias + g * m + row);
    p[b * image_stride + g * group_stride + (long long)row * rs + (long long)j * cs] =
        clampf(v, mm);
  }
};

template <int BM, int BN, int BK, int TM, int TN, class A, class B>
__global__ void __launch_bounds__((BM / TM) * (BN / TN))
    tile_gemm_kernel(A a, B bsrc, StoreC c, int M, int N, int K, int groups) {
  constexpr int TX = BN / TN, TY = BM / TM, NT = TX * TY;
  __shared__ float As[BK][BM + 1];  // k-major so a thread's TM rows are one broadcast read
  __shared__ float Bs[BK][BN];
  __shared__ float extra[A::kSmem];
  const int tid = threadIdx.x, tx = tid % TX, ty = tid / TX;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int g = blockIdx.z % groups, img = blockIdx.z / groups;
  a.prepare(extra, m0, g, tid, NT);
  __syncthreads();

  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

  for (int k0 = 0; k0 < K; k0 += BK) {
    // Consecutive threads take consecutive k (A, row-major) and consecutive j (B, CHW): both
    // global reads coalesce.
    for (int e = tid; e < BM * BK; e += NT) {
      const int i = e / BK, kk = e % BK, row = m0 + i, k = k0 + kk;
      As[kk][i] = (row < M && k < K) ? a.at(extra, i, row, k, g) : 0.0f;
    }
    for (int e = tid; e < BK * BN; e += NT) {
      const int kk = e / BN, j = e % BN, k = k0 + kk, col = n0 + j;
      Bs[kk][j] = (k < K && col < N) ? bsrc.at(k, col, img, g) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float ar[TM], br[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) ar[i] = As[kk][ty * TM + i];
#pragma unroll
      for (int j = 0; j < TN; ++j) br[j] = Bs[kk][tx + j * TX];  // strided: no bank conflicts
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(ar[i], br[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int row = m0 + ty * TM + i;
    if (row >= M) continue;
    const float s = a.scale(row, g);
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int col = n0 + tx + j * TX;
      if (col < N) c.store(row, col, img, g, acc[i][j] * s);
    }
  }
}

// Launches the tile kernel over an M x N problem for `images` x `groups` (image, group) pairs.
template <int BM, int BN, int BK, int TM, int TN, class A, class B>
int launch_tile_gemm(const A& a, const B& b, const StoreC& c, size_t M, size_t N, size_t K,
                     size_t images, size_t groups, cudaStream_t stream) {
  if (M == 0 || N == 0 || images == 0) return 0;
  if (M > (size_t(1) << 30) || N > (size_t(1) << 30) || K > (size_t(1) << 30) ||
      images * groups > 65535 || (M + BM - 1) / BM > kMaxGridY)
    return int(cudaErrorInvalidValue);
  const dim3 grid(ceil_div_u(N, BN), ceil_div_u(M, BM), unsigned(images * groups));
  EDGEFIT_LAUNCH(grid, (BM / TM) * (BN / TN), 0, stream,
                 tile_gemm_kernel<BM, BN, BK, TM, TN, A, B>)(a, b, c, int(M), int(N), int(K),
                                                             int(groups));
  return launched();
}

}  // namespace detail
}  // namespace cuda
}  // namespace edgefit
