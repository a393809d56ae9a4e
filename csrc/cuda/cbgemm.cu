// cb-gemm on CUDA: the shared tile kernel with a codebook A operand. The block's weight rows'
// tables are copied to shared memory once, and each K slice of codes is decoded through them into
// the shared A tile: dense weights exist only as one tile in shared memory, never in global
// memory. Codes of up to 7 bits take 64-row tiles (64 tables of 128 floats: 32 KiB); 8-bit codes
// need 256 entries a row, so they take 32-row tiles. cb_conv2d pairs the same A with the im2col
// gather of f32_conv2d (before it, a KxK codebook conv wrote its column matrix with a separate
// kernel first: ResNet-50 4-bit's 3x3 layers took 39-47 us against 25 us dense on an H200).
#include "cuda/tile_gemm.cuh"

namespace edgefit {
namespace cuda {
namespace {

using detail::kTileBk;

template <int BM, int kEntries>
detail::CodebookA<BM, kEntries> codebook_a(const cb_weights& w, size_t rows_per_group) {
  return {w.packed,    (long long)w.row_bytes, w.bits, w.table, w.group,
          w.row_scale, int(rows_per_group)};
}

// The tile shape for `bits`-bit codes, then the launch.
template <class B>
int launch_cb(const cb_weights& w, size_t rows, const B& b, const detail::StoreC& c, size_t N,
              size_t images, size_t groups, stream_t stream, float* ws, size_t ws_floats) {
  if (w.bits <= 7)
    return detail::launch_tile_gemm<64, 64, kTileBk, 4, 4>(
        codebook_a<64, 128>(w, rows), b, c, rows, N, w.k, images, groups, stream, ws, ws_floats);
  return detail::launch_tile_gemm<32, 64, kTileBk, 2, 4>(
      codebook_a<32, 256>(w, rows), b, c, rows, N, w.k, images, groups, stream, ws, ws_floats);
}

// Either tile shape's split plan fits in the larger of the two.
size_t workspace_floats(size_t rows, size_t N, size_t K, size_t pairs) {
  return std::max(detail::split_workspace_floats<64, 64, kTileBk>(rows, N, K, pairs),
                  detail::split_workspace_floats<32, 64, kTileBk>(rows, N, K, pairs));
}

}  // namespace

int cb_gemm(const cb_weights& w, const float* bias, size_t pixels, const float* x, size_t x_cstride,
            size_t x_pstride, float* y, size_t y_cstride, size_t y_pstride, const f32_minmax& mm,
            stream_t stream, float* workspace, size_t workspace_floats) {
  if (w.bits < 2 || w.bits > 8 || w.row_bytes != (w.k * w.bits + 7) / 8)
    return int(cudaErrorInvalidValue);
  const detail::StridedB b{x, (long long)x_cstride, (long long)x_pstride, 0, 0};
  const detail::StoreC c{y, (long long)y_cstride, (long long)y_pstride, 0, 0, bias, int(w.m), mm};
  return launch_cb(w, w.m, b, c, pixels, 1, 1, stream, workspace, workspace_floats);
}

size_t cb_gemm_workspace_floats(size_t m, size_t pixels, size_t k) {
  return workspace_floats(m, pixels, k, 1);
}

int cb_conv2d(size_t n, size_t ci, size_t groups, const conv2d_geometry& g, const cb_weights& w,
              const float* bias, const float* x, float* y, const f32_minmax& mm, stream_t stream,
              float* workspace, size_t workspace_floats) {
  const size_t co = w.m;
  if (groups == 0 || ci % groups || co % groups || w.bits < 2 || w.bits > 8 ||
      w.k != ci / groups * g.kh * g.kw || w.row_bytes != (w.k * w.bits + 7) / 8 ||
      g.h * g.w > (size_t(1) << 30))
    return int(cudaErrorInvalidValue);
  const size_t cog = co / groups, P = g.ho * g.wo;
  const detail::StoreC c = detail::conv_store(y, co, groups, g, bias, mm);
  return detail::with_conv_b<kTileBk>(x, ci, groups, g, [&](const auto& b) {
    return launch_cb(w, cog, b, c, P, n, groups, stream, workspace, workspace_floats);
  });
}

size_t cb_conv2d_workspace_floats(size_t n, size_t ci, size_t co, size_t groups,
                                  const conv2d_geometry& g) {
  if (groups == 0 || ci % groups || co % groups) return 0;
  return workspace_floats(co / groups, g.ho * g.wo, ci / groups * g.kh * g.kw, n * groups);
}

}  // namespace cuda
}  // namespace edgefit
