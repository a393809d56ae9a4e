// cb-gemm on CUDA: the shared tile kernel with a codebook A operand. A block covers 32 weight
// rows x 64 pixels; the 32 rows' tables (2^bits floats each) are copied to shared memory once,
// and each K slice of codes is decoded through them into the shared A tile: dense weights exist
// only as one 32 x 16 tile in shared memory, never in global memory.
#include "cuda/tile_gemm.cuh"

namespace edgefit {
namespace cuda {

int cb_gemm(const cb_weights& w, const float* bias, size_t pixels, const float* x, size_t x_cstride,
            size_t x_pstride, float* y, size_t y_cstride, size_t y_pstride, const f32_minmax& mm,
            stream_t stream) {
  if (w.bits < 2 || w.bits > 8 || w.row_bytes != (w.k * w.bits + 7) / 8)
    return int(cudaErrorInvalidValue);
  constexpr int BM = 32;
  const detail::CodebookA<BM> a{
      w.packed, (long long)w.row_bytes, w.bits, w.table, w.group, w.row_scale, int(w.m)};
  const detail::StridedB b{x, (long long)x_cstride, (long long)x_pstride, 0, 0};
  const detail::StoreC c{y, (long long)y_cstride, (long long)y_pstride, 0, 0, bias, int(w.m), mm};
  return detail::launch_tile_gemm<BM, 64, 16, 2, 4>(a, b, c, w.m, pixels, w.k, 1, 1, stream);
}

}  // namespace cuda
}  // namespace edgefit
