// The shared-memory tiled SGEMM every dense-style CUDA kernel is built from: a block computes a
// BM x BN tile of C (TM x TN outputs per thread) over K in BK-deep slices staged in shared memory.
// Operand A (weights) and B (activations) are loader policies, so the same kernel serves plain
// GEMM, implicit-GEMM convolution (B gathers im2col columns) and codebook weights (A decodes
// n-bit codes through tables in shared memory). blockIdx.z walks (image, group, K split) triples.
//
// Each thread stages the same few A and B elements of every slice (fixed rows / columns, k moving
// by BK), so a loader hands out a per-element cursor once, with all the index arithmetic (the
// im2col divisions) done there, and only steps it by BK per slice. The next slice's elements are
// loaded into registers while the current one is multiplied, and the multiply reads a thread's
// TM A values and TN B values as one vector each.
//
// Split K: at batch 1 the late layers of a CNN have a handful of tiles (ResNet-50's 7x7 layers:
// 8 blocks for 132 multiprocessors on an H200), so when a workspace is given and the grid is
// small, K is cut into chunks, each block writes its partial tile to the workspace, and a second
// kernel sums the partials in a fixed order (deterministic) and applies bias and clamp.
#pragma once

#include <algorithm>

#include "cuda/common.cuh"

namespace edgefit {
namespace cuda {
namespace detail {

constexpr int kTileBk = 16;  // K slice depth of every tile kernel instance

// A = dense row-major weights; group g owns rows [g * m, (g + 1) * m).
struct DenseA {
  static constexpr int kSmem = 1;
  const float* w;
  long long ld;  // k
  int m;         // rows per group
  struct Cursor {
    const float* p;
  };
  __device__ void prepare(float*, int, int, int, int) const {}
  __device__ Cursor start(int, int row, int k, int g) const {
    return {w + (long long)(g * m + row) * ld + k};
  }
  __device__ float load(const float*, const Cursor& c) const { return __ldg(c.p); }
  __device__ void advance(Cursor& c, int dk) const { c.p += dk; }
  __device__ float scale(int, int) const { return 1.0f; }
};

// A = codebook weights (cb-gemm.h): the tile's BM rows' tables (2^bits <= kEntries entries each)
// are copied to shared memory once per block; each code is decoded as it is staged.
template <int BM, int kEntries>
struct CodebookA {
  static constexpr int kSmem = BM * kEntries;
  const uint8_t* packed;
  long long row_bytes;
  unsigned bits;
  const float* table;
  const int32_t* group;
  const float* row_scale;
  int m;
  struct Cursor {
    const uint8_t* row;  // the row's packed codes
    long long bit;       // k * bits
    int i;               // the row's table in shared memory
  };
  __device__ void prepare(float* tbl, int m0, int g, int tid, int nthreads) const {
    const int entries = 1 << bits;
    for (int e = tid; e < BM * entries; e += nthreads) {
      const int i = e / entries, t = e % entries, row = m0 + i;
      tbl[i * kEntries + t] =
          row < m ? __ldg(table + (long long)group[g * m + row] * entries + t) : 0.0f;
    }
  }
  __device__ Cursor start(int i, int row, int k, int g) const {
    return {packed + (long long)(g * m + row) * row_bytes, (long long)k * bits, i};
  }
  __device__ float load(const float* tbl, const Cursor& c) const {
    // Same bit arithmetic as cb_code(): LSB first, never reading past the row.
    const long long byte = c.bit >> 3;
    unsigned v = __ldg(c.row + byte);
    if (byte + 1 < row_bytes) v |= unsigned(__ldg(c.row + byte + 1)) << 8;
    return tbl[c.i * kEntries + ((v >> (c.bit & 7)) & ((1u << bits) - 1u))];
  }
  __device__ void advance(Cursor& c, int dk) const { c.bit += (long long)dk * bits; }
  __device__ float scale(int row, int g) const { return __ldg(row_scale + g * m + row); }
};

// B = strided matrix: element (k, j) of image b, group g.
struct StridedB {
  const float* p;
  long long rs, cs, image_stride, group_stride;
  struct Cursor {
    const float* p;
  };
  __device__ Cursor start(int k, int j, int b, int g) const {
    return {p + b * image_stride + g * group_stride + k * rs + j * cs};
  }
  __device__ float load(const Cursor& c) const { return __ldg(c.p); }
  __device__ void advance(Cursor& c, int dk) const { c.p += dk * rs; }
};

// B = im2col columns of a CHW image, gathered on the fly (zero outside the image). The cursor
// keeps k as (channel, ky, kx) and the column's top-left input pixel, so stepping k by the slice
// depth is a few adds and compares (no divisions): `step` is that depth as (channels, rows, taps).
struct Im2colB {
  const float* x;
  int h, w, wo, kh, kw, sh, sw, pt, pl, dh, dw;
  long long image_stride, group_stride;
  struct Step {
    int dc, dky, dkx;
  } step;
  static Step step_of(int bk, int kh, int kw) {
    return {bk / (kh * kw), bk % (kh * kw) / kw, bk % kw};
  }
  struct Cursor {
    const float* image;  // the (image, group)'s first channel
    int c, ky, kx;       // k
    int iy0, ix0;        // input pixel of tap (0, 0) for this column
  };
  __device__ Cursor start(int k, int j, int b, int g) const {
    const int c = k / (kh * kw), r = k - c * (kh * kw), ky = r / kw, oy = j / wo;
    return {x + b * image_stride + g * group_stride,
            c,
            ky,
            r - ky * kw,
            oy * sh - pt,
            (j - oy * wo) * sw - pl};
  }
  __device__ float load(const Cursor& q) const {
    const int iy = q.iy0 + q.ky * dh, ix = q.ix0 + q.kx * dw;
    if (unsigned(iy) >= unsigned(h) || unsigned(ix) >= unsigned(w)) return 0.0f;
    return __ldg(q.image + ((long long)q.c * h + iy) * w + ix);
  }
  __device__ void advance(Cursor& q, int) const {  // by the slice depth `step` was made for
    q.kx += step.dkx;
    q.ky += step.dky;
    q.c += step.dc;
    if (q.kx >= kw) q.kx -= kw, ++q.ky;
    if (q.ky >= kh) q.ky -= kh, ++q.c;
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

// A grouped convolution of x [n, ci, h, w] into y [n, co, ho, wo] as a GEMM per (image, group):
// the output (rows = the group's channels, columns = pixels) and the B operand, which is the CHW
// input itself for an unpadded 1x1 / stride 1 conv and the im2col gather otherwise. `f` gets the
// B loader that applies; both conv kernels (dense and codebook A) go through here.
inline StoreC conv_store(float* y, size_t co, size_t groups, const conv2d_geometry& g,
                         const float* bias, const f32_minmax& mm) {
  const long long P = (long long)(g.ho * g.wo), cog = (long long)(co / groups);
  return {y, P, 1, (long long)co * P, cog * P, bias, int(cog), mm};
}
template <int BK, class F>
int with_conv_b(const float* x, size_t ci, size_t groups, const conv2d_geometry& g, F&& f) {
  const long long image_stride = (long long)(ci * g.h * g.w),
                  group_stride = (long long)(ci / groups * g.h * g.w);
  if (g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 && g.pl == 0 && g.ho == g.h &&
      g.wo == g.w)
    return f(StridedB{x, (long long)(g.ho * g.wo), 1, image_stride, group_stride});
  const Im2colB::Step step = Im2colB::step_of(BK, int(g.kh), int(g.kw));
  return f(Im2colB{x, int(g.h), int(g.w), int(g.wo), int(g.kh), int(g.kw), int(g.sh), int(g.sw),
                   int(g.pt), int(g.pl), int(g.dh), int(g.dw), image_stride, group_stride, step});
}

// n consecutive floats from 16-byte (n = 4) or 8-byte (n = 2) aligned shared memory.
template <int n>
__device__ __forceinline__ void load_vec(const float* p, float* out) {
#if defined(EDGEFIT_CUDA_SIM)
  for (int i = 0; i < n; ++i) out[i] = p[i];
#else
  if (n == 4) {
    const float4 v = *reinterpret_cast<const float4*>(p);
    out[0] = v.x, out[1] = v.y, out[2] = v.z, out[3] = v.w;
  } else if (n == 2) {
    const float2 v = *reinterpret_cast<const float2*>(p);
    out[0] = v.x, out[1] = v.y;
  } else {
#pragma unroll
    for (int i = 0; i < n; ++i) out[i] = p[i];
  }
#endif
}

// grid.z = splits * zpairs: z % zpairs is the (image, group) pair, z / zpairs the K chunk.
// partial == nullptr: bias + clamp + store; else the raw tile goes to
// partial[((split * zpairs + pair) * M + row) * N + col] for split_reduce_kernel.
template <int BM, int BN, int BK, int TM, int TN, class A, class B>
__global__ void __launch_bounds__((BM / TM) * (BN / TN))
    tile_gemm_kernel(A a, B bsrc, StoreC c, int M, int N, int K, int groups, int zpairs, int kchunk,
                     float* partial) {
  constexpr int TX = BN / TN, TY = BM / TM, NT = TX * TY;
  // Each thread stages RA elements of A and RB of B per slice, at fixed rows / columns.
  constexpr int RA = BM * BK / NT, RB = BK * BN / NT;
  static_assert(NT % BK == 0 && NT % BN == 0 && RA * NT == BM * BK && RB * NT == BK * BN,
                "tile shape must divide among the threads");
  static_assert((BM + 4) % 4 == 0 && (BN + 4) % 4 == 0, "rows must stay 16-byte aligned");
  // k-major, padded by 4 floats: a thread's TM (TN) values are one aligned vector read, and the
  // transposed stores of A spread over the banks.
  __shared__ __align__(16) float As[BK][BM + 4];
  __shared__ __align__(16) float Bs[BK][BN + 4];
  __shared__ float extra[A::kSmem];
  const int tid = threadIdx.x, tx = tid % TX, ty = tid / TX;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int pair = blockIdx.z % zpairs, g = pair % groups, img = pair / groups;
  const int kbegin = int(blockIdx.z / zpairs) * kchunk, kend = min(K, kbegin + kchunk);
  a.prepare(extra, m0, g, tid, NT);

  // A element r: row i = tid / BK + r * (NT / BK), k offset tid % BK; B element r: column
  // tid % BN, k offset tid / BN + r * (NT / BN).
  const int a_kk = tid % BK, b_j = tid % BN, b_col = n0 + b_j;
  typename A::Cursor ac[RA];
  typename B::Cursor bc[RB];
  bool a_row_ok[RA];
#pragma unroll
  for (int r = 0; r < RA; ++r) {
    const int i = tid / BK + r * (NT / BK), row = m0 + i;
    a_row_ok[r] = row < M;
    ac[r] = a.start(i, a_row_ok[r] ? row : 0, kbegin + a_kk, g);
  }
#pragma unroll
  for (int r = 0; r < RB; ++r)
    bc[r] = bsrc.start(kbegin + tid / BN + r * (NT / BN), b_col < N ? b_col : 0, img, g);

  float ra[RA], rb[RB];
  auto fetch = [&](int k0) {
#pragma unroll
    for (int r = 0; r < RA; ++r) {
      ra[r] = (a_row_ok[r] && k0 + a_kk < kend) ? a.load(extra, ac[r]) : 0.0f;
      a.advance(ac[r], BK);
    }
#pragma unroll
    for (int r = 0; r < RB; ++r) {
      rb[r] = (b_col < N && k0 + tid / BN + r * (NT / BN) < kend) ? bsrc.load(bc[r]) : 0.0f;
      bsrc.advance(bc[r], BK);
    }
  };
  auto stage = [&]() {
#pragma unroll
    for (int r = 0; r < RA; ++r) As[a_kk][tid / BK + r * (NT / BK)] = ra[r];
#pragma unroll
    for (int r = 0; r < RB; ++r) Bs[tid / BN + r * (NT / BN)][b_j] = rb[r];
  };

  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

  __syncthreads();  // A's tables (prepare) are in shared memory
  fetch(kbegin);
  stage();
  __syncthreads();
  for (int k0 = kbegin; k0 < kend; k0 += BK) {
    const bool more = k0 + BK < kend;
    if (more) fetch(k0 + BK);  // in flight while this slice is multiplied
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float ar[TM], br[TN];
      load_vec<TM>(&As[kk][ty * TM], ar);
      load_vec<TN>(&Bs[kk][tx * TN], br);
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(ar[i], br[j], acc[i][j]);
    }
    __syncthreads();
    if (more) {
      stage();
      __syncthreads();
    }
  }
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int row = m0 + ty * TM + i;
    if (row >= M) continue;
    const float s = a.scale(row, g);
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int col = n0 + tx * TN + j;
      if (col >= N) continue;
      if (partial == nullptr)
        c.store(row, col, img, g, acc[i][j] * s);
      else
        partial[((long long)blockIdx.z * M + row) * N + col] = acc[i][j] * s;
    }
  }
}

// Sums the K chunks' partial tiles in chunk order, then bias + clamp + store. (A template so that
// every translation unit that launches it has its own instance: no relocatable device code.)
template <class C>
__global__ void split_reduce_kernel(const float* __restrict__ partial, int splits, int zpairs,
                                    int M, int N, int groups, C c) {
  const long long plane = (long long)M * N, total = zpairs * plane;
  for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < total;
       t += (long long)gridDim.x * blockDim.x) {
    float v = 0.0f;
    for (int s = 0; s < splits; ++s) v += partial[s * total + t];
    const int pair = int(t / plane), rem = int(t - pair * plane), row = rem / N;
    c.store(row, rem - row * N, pair / groups, pair % groups, v);
  }
}

// How a problem's K is cut: `splits` chunks of `kchunk` (whole slices, none empty). With fewer
// output tiles than multiprocessors, enough chunks for about two blocks per multiprocessor, each
// at least kMinSlices slices deep, at most kMaxSplits; otherwise one chunk of all of K.
constexpr size_t kMinSlices = 4, kMaxSplits = 64;
struct SplitPlan {
  unsigned splits;
  int kchunk;
};
inline SplitPlan split_plan(size_t blocks, size_t pairs, size_t K, int BK, bool allowed = true) {
  const size_t slices = std::max<size_t>((K + BK - 1) / BK, 1);
  size_t s = 1;
  const size_t sms = size_t(multiprocessor_count());
  if (allowed && blocks != 0 && blocks < sms) {
    const size_t by_grid = (2 * sms + blocks - 1) / blocks, by_depth = slices / kMinSlices;
    s = std::min(std::min(by_grid, by_depth), std::min(kMaxSplits, size_t(65535) / pairs));
    s = std::max<size_t>(s, 1);
  }
  const size_t per = (slices + s - 1) / s;  // slices per chunk; recount so that none is empty
  return {unsigned((slices + per - 1) / per), int(per * BK)};
}

template <int BM, int BN>
size_t tile_count(size_t M, size_t N, size_t pairs) {
  return ((N + BN - 1) / BN) * ((M + BM - 1) / BM) * pairs;
}

// Workspace floats the split plan of an M x N x K problem over `pairs` (image, group) pairs
// needs (0 when it runs unsplit).
template <int BM, int BN, int BK>
size_t split_workspace_floats(size_t M, size_t N, size_t K, size_t pairs) {
  const SplitPlan plan = split_plan(tile_count<BM, BN>(M, N, pairs), pairs, K, BK);
  return plan.splits > 1 ? plan.splits * pairs * M * N : 0;
}

// Launches the tile kernel over an M x N problem for `images` x `groups` (image, group) pairs,
// split over K when `workspace` holds the split plan's floats (else unsplit).
template <int BM, int BN, int BK, int TM, int TN, class A, class B>
int launch_tile_gemm(const A& a, const B& b, const StoreC& c, size_t M, size_t N, size_t K,
                     size_t images, size_t groups, cudaStream_t stream, float* workspace,
                     size_t workspace_floats) {
  if (M == 0 || N == 0 || images == 0) return 0;
  const size_t pairs = images * groups;
  if (M > (size_t(1) << 30) || N > (size_t(1) << 30) || K > (size_t(1) << 30) || pairs > 65535 ||
      (M + BM - 1) / BM > kMaxGridY)
    return int(cudaErrorInvalidValue);
  const size_t blocks = tile_count<BM, BN>(M, N, pairs);
  SplitPlan plan = split_plan(blocks, pairs, K, BK);
  if (plan.splits > 1 && (workspace == nullptr || workspace_floats < plan.splits * pairs * M * N))
    plan = split_plan(blocks, pairs, K, BK, /*allowed=*/false);
  const dim3 grid(ceil_div_u(N, BN), ceil_div_u(M, BM), unsigned(pairs * plan.splits));
  float* partial = plan.splits > 1 ? workspace : nullptr;
  EDGEFIT_LAUNCH(grid, (BM / TM) * (BN / TN), 0, stream,
                 tile_gemm_kernel<BM, BN, BK, TM, TN, A, B>)(
      a, b, c, int(M), int(N), int(K), int(groups), int(pairs), plan.kchunk, partial);
  if (partial == nullptr) return launched();
  const int e = launched();
  if (e != 0) return e;
  EDGEFIT_LAUNCH(blocks_for(pairs * M * N, 256), 256, 0, stream, split_reduce_kernel<StoreC>)(
      partial, int(plan.splits), int(pairs), int(M), int(N), int(groups), c);
  return launched();
}

}  // namespace detail
}  // namespace cuda
}  // namespace edgefit
