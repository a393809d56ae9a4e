// f32 GEMM over CHW activations: C[M, N] = W[M, K] x B[K, N] + bias (1x1 convolutions, im2col'd
// convolutions), and GEMV for linear layers: y[M] = W[M, K] x[K] + bias.
//
// Packed weight layout for a kernel with MR rows: panels of MR output rows; each panel is MR bias
// floats followed by K groups of MR weights (row of the panel fastest); rows past M are zero.
//
// Packed-B layout (f32_gemm_blocked): a [kc, n] block of B is stored as ceil(n / NR) strips of
// [kc][NR] floats (strip s at s * kc * NR; columns past n are zero), so a microkernel streams both
// operands sequentially instead of touching kc rows P floats apart (which maps them onto a few L1
// sets when P * 4 bytes is a multiple of a large power of two, e.g. 56x56 and 112x112 images).
#pragma once

#include "kernels/common.h"
#include "kernels/f32-conv/f32-conv.h"

namespace edgefit {

// Floats needed to pack an [m, k] matrix for a kernel with `mr` rows.
size_t f32_gemm_packed_size(size_t m, size_t k, size_t mr);
// Packs row-major w[m, k] (and bias[m], may be null = zeros) into MR-row panels.
void f32_gemm_pack(size_t m, size_t k, size_t mr, const float* w, const float* bias, float* packed);

// One panel: c[i, j] = clamp(panel_bias[i] + sum_k panel[k][i] * b[k * ldb + j]) for i < mr
// (mr <= the kernel's MR) and j < n (any n: kernels handle the tail).
typedef void (*f32_gemm_ukernel_fn)(size_t mr, size_t n, size_t k, const float* panel,
                                    const float* b, size_t ldb, float* c, size_t ldc,
                                    const f32_minmax* params);

void f32_gemm_ukernel_4x8__scalar(size_t mr, size_t n, size_t k, const float* panel, const float* b,
                                  size_t ldb, float* c, size_t ldc, const f32_minmax* params);
#if defined(__x86_64__) || defined(_M_X64)
void f32_gemm_ukernel_6x16__avx2_fma(size_t mr, size_t n, size_t k, const float* panel,
                                     const float* b, size_t ldb, float* c, size_t ldc,
                                     const f32_minmax* params);
void f32_gemm_ukernel_6x32__avx512f(size_t mr, size_t n, size_t k, const float* panel,
                                    const float* b, size_t ldb, float* c, size_t ldc,
                                    const f32_minmax* params);
#endif
#if defined(__aarch64__)
// Provided by csrc/kernels/f32-gemm/*neon*.cc (the build enables EDGEFIT_HAVE_NEON_F32_GEMM).
void f32_gemm_ukernel_8x8__neonfma(size_t mr, size_t n, size_t k, const float* panel,
                                   const float* b, size_t ldb, float* c, size_t ldc,
                                   const f32_minmax* params);
#endif

// Packed-B microkernel: for the n columns of the strips at b (strip s at b + s * k * NR, rows NR
// floats apart, zero past n) and i < mr: c[i, j] = (bias ? bias[i] : c[i, j]) + sum_k w[k * MR + i]
// * strip[k][j], clamped to params when params is non-null (null: an intermediate K block, left
// unclamped). w is the K-block's weights inside a packed panel (panel + MR + k0 * MR), bias the
// panel's first MR floats: K blocks after the first accumulate into c.
typedef void (*f32_gemm_packed_ukernel_fn)(size_t mr, size_t n, size_t k, const float* w,
                                           const float* bias, const float* b, float* c, size_t ldc,
                                           const f32_minmax* params);

void f32_gemm_packed_ukernel_4x8__scalar(size_t mr, size_t n, size_t k, const float* w,
                                         const float* bias, const float* b, float* c, size_t ldc,
                                         const f32_minmax* params);
#if defined(__x86_64__) || defined(_M_X64)
void f32_gemm_packed_ukernel_6x16__avx2_fma(size_t mr, size_t n, size_t k, const float* w,
                                            const float* bias, const float* b, float* c, size_t ldc,
                                            const f32_minmax* params);
void f32_gemm_packed_ukernel_6x32__avx512f(size_t mr, size_t n, size_t k, const float* w,
                                           const float* bias, const float* b, float* c, size_t ldc,
                                           const f32_minmax* params);
#endif
#if defined(__aarch64__)
void f32_gemm_packed_ukernel_8x8__neonfma(size_t mr, size_t n, size_t k, const float* w,
                                          const float* bias, const float* b, float* c, size_t ldc,
                                          const f32_minmax* params);
#endif

// Packs B[k, n] (rows ldb floats apart) into strips of nr columns (layout above).
void f32_gemm_pack_b(size_t k, size_t n, size_t nr, const float* b, size_t ldb, float* out);
// One row of B (n floats at src) into row 0 of the strips at dst (strip_floats apart).
void f32_gemm_strips_from_row(size_t n, size_t nr, const float* src, float* dst,
                              size_t strip_floats);

// ---- Blocked driver: the one GEMM loop nest behind dense 1x1 / k x k convolutions and the
// codebook path's decoded panels. C[M, P] = panels x B, B either a [K, P] matrix (1x1) or the
// im2col of a CHW image (unfolded straight into packed strips, never as a [K, P] matrix).
struct f32_gemm_blocking {
  f32_gemm_packed_ukernel_fn packed = nullptr;  // the packed-B kernel of this ISA
  f32_gemm_ukernel_fn unpacked = nullptr;       // the same tile reading B rows in place
  size_t mr = 0, nr = 0;                        // the kernels' tile
  size_t kc = 0, nc = 0;                        // K block and columns per B block
  // true: B blocks packed in nr-wide strips for `packed`; false: `unpacked` reads B as rows,
  // a matrix in place or an image unfolded into a [k, nc] block (few panels: see .cc).
  bool pack = true;
};

// The B operand: a matrix (b, ldb) or an image (geo != null; x = the group's channels) that
// `unfold` (an f32-conv im2col into packed strips, e.g. f32_im2col_packed__scalar) writes block
// by block into the packed layout.
struct f32_gemm_operand {
  const float* b = nullptr;
  size_t ldb = 0;
  const conv2d_geometry* geo = nullptr;
  const float* x = nullptr;
  f32_im2col_packed_fn unfold = nullptr;
};

// Blocking for C[M, P] = W[M, K] x B[K, P] with kernels of mr x nr: kc / nc keep a packed block
// of B in L2 while each panel's slice of weights stays in L1.
f32_gemm_blocking f32_gemm_choose_blocking(f32_gemm_packed_ukernel_fn packed,
                                           f32_gemm_ukernel_fn unpacked, size_t mr, size_t nr,
                                           size_t m, size_t k, size_t p, bool matrix_b);
// Floats of per-thread scratch f32_gemm_blocked needs (the packed / unfolded B block).
size_t f32_gemm_blocked_scratch(const f32_gemm_blocking& bl);
// One task: panels [pi0, pi1) of `panels` (panel_floats apart; rows m in all) times columns
// [j0, j0 + n) of B, into c (row 0, column 0 of C; ldc floats per row). scratch: see above.
void f32_gemm_blocked(const f32_gemm_blocking& bl, size_t m, size_t k, const float* panels,
                      size_t panel_floats, size_t pi0, size_t pi1, const f32_gemm_operand& b,
                      size_t j0, size_t n, float* c, size_t ldc, float* scratch,
                      const f32_minmax* params);

// Splits the [panels x P columns] work of one GEMM into `tasks` parts of (panel range, column
// range) for `threads` threads: along columns when the weights are the smaller operand (each
// task streams all of them), else along panels (each task packs all of B).
struct f32_gemm_split {
  size_t col_parts = 1, panel_parts = 1;
  size_t cols_per = 0, panels_per = 0;  // columns (a multiple of nr) / panels per part
  size_t tasks() const { return col_parts * panel_parts; }
};
f32_gemm_split f32_gemm_split_tasks(const f32_gemm_blocking& bl, size_t m, size_t p,
                                    size_t threads);

// ---- Transposed-output GEMM for small images (7x7: 49 = 3 x 16 + 1 pixels leaves the column
// tiles above a 1-pixel tail). Here pixels are the broadcast dimension and output channels the
// vector one, so a pixel tail costs a short tile, not a mostly empty one. Weights are packed at
// load time as strips of NR output channels: strip s = [K][NR] floats at s * K * NR (rows past M
// zero). A tile accumulates ct[i * ldct + j] = (accumulate ? ct[i * ldct + j] : 0)
//   + sum_kk b[kk * ldb + i] * w[kk * NR + j]   for pixels i < mr (<= MR) and channels j < NR,
// i.e. C transposed; the driver adds the bias, clamps and writes C[M, P] row by row.
typedef void (*f32_gemm_t_ukernel_fn)(size_t mr, size_t k, const float* b, size_t ldb,
                                      const float* w, float* ct, size_t ldct, bool accumulate);

void f32_gemm_t_ukernel_4x8__scalar(size_t mr, size_t k, const float* b, size_t ldb, const float* w,
                                    float* ct, size_t ldct, bool accumulate);
#if defined(__x86_64__) || defined(_M_X64)
void f32_gemm_t_ukernel_6x16__avx2_fma(size_t mr, size_t k, const float* b, size_t ldb,
                                       const float* w, float* ct, size_t ldct, bool accumulate);
#endif
// The same tile with each pixel's own base offset: pixel i reads b[offs[i] + kk * ldb]. Direct
// convolutions (f32_conv_t_*) broadcast pixels of a padded image this way, so a tile runs on
// across output rows and the row ends cost no short tiles.
typedef void (*f32_gemm_t_ix_ukernel_fn)(size_t mr, size_t k, const float* b, size_t ldb,
                                         const size_t* offs, const float* w, float* ct, size_t ldct,
                                         bool accumulate);
void f32_gemm_t_ix_ukernel_4x8__scalar(size_t mr, size_t k, const float* b, size_t ldb,
                                       const size_t* offs, const float* w, float* ct, size_t ldct,
                                       bool accumulate);
#if defined(__x86_64__) || defined(_M_X64)
void f32_gemm_t_ix_ukernel_6x16__avx2_fma(size_t mr, size_t k, const float* b, size_t ldb,
                                          const size_t* offs, const float* w, float* ct,
                                          size_t ldct, bool accumulate);
#endif

// The transposed tile column of one strip back into C: c[j * ldc + i] = clamp(bias[j] +
// ct[i * nr + j]) for channels j < rows (<= nr) and pixels i < p. ct holds at least
// round_up(p, 8) rows (the vector variants read whole 8-row blocks and store only i < p).
typedef void (*f32_gemm_t_store_fn)(size_t p, size_t rows, size_t nr, const float* ct,
                                    const float* bias, float* c, size_t ldc,
                                    const f32_minmax* params);
void f32_gemm_t_store__scalar(size_t p, size_t rows, size_t nr, const float* ct, const float* bias,
                              float* c, size_t ldc, const f32_minmax* params);
#if defined(__x86_64__) || defined(_M_X64)
void f32_gemm_t_store__avx2(size_t p, size_t rows, size_t nr, const float* ct, const float* bias,
                            float* c, size_t ldc, const f32_minmax* params);
#endif

struct f32_gemm_t_config {
  f32_gemm_t_ukernel_fn fn = nullptr;  // null: this ISA has no transposed kernel
  f32_gemm_t_store_fn store = nullptr;
  size_t mr = 0, nr = 0;  // pixels x output channels per tile; nr = the weight strip width
  f32_gemm_t_ix_ukernel_fn ix = nullptr;  // the offsets tile (direct convolutions); may be null
};

// Floats of the strips of an [m, k] matrix, and the packing (row-major w into strips).
size_t f32_gemm_t_packed_size(size_t m, size_t k, size_t nr);
void f32_gemm_t_pack(size_t m, size_t k, size_t nr, const float* w, float* strips);
// Whether the transposed path should run C[m, p] = W[m, k] x B[k, p] (measured: csrc/README.md).
bool f32_gemm_t_preferred(const f32_gemm_t_config& cfg, size_t m, size_t p);
// Floats of per-thread scratch f32_gemm_t_strips needs (one strip's transposed tile column).
size_t f32_gemm_t_scratch(const f32_gemm_t_config& cfg, size_t p);
// One task: output channels of strips [s0, s1) for all p pixels of B (rows ldb floats apart),
// into c (ldc floats per row): c[row, j] = clamp(bias[row] + sum_kk w[row, kk] * b[kk, j]).
void f32_gemm_t_strips(const f32_gemm_t_config& cfg, size_t m, size_t k, const float* strips,
                       size_t s0, size_t s1, const float* b, size_t ldb, size_t p,
                       const float* bias, float* c, size_t ldc, float* scratch,
                       const f32_minmax* params);

// ---- Direct k x k convolution through the transposed tiles: no unfold. The group's input is
// copied once into a zero-padded image ([channels][plane], f32_conv_t_pad), and each tile
// broadcasts its pixels straight from it, tap by tap: output pixel p of tap (ky, kx), channel c
// reads xpad[c * plane + offs[p] + ky * dh * wp + kx * dw]. Weights are strips as above with K
// ordered (ky, kx, c) (f32_conv_t_pack), so one tap's channels are rows `plane` floats apart.
struct f32_conv_t_shape {
  size_t hp = 0, wp = 0;  // padded image: the rows / columns the output reads, pads included
  size_t plane = 0;       // floats per channel: hp * wp rounded up to an odd number of lines
};
f32_conv_t_shape f32_conv_t_padded(const conv2d_geometry& g);
// Whether the direct path should run this convolution (measured: csrc/README.md).
bool f32_conv_t_preferred(const f32_gemm_t_config& cfg, const conv2d_geometry& g, size_t channels,
                          size_t m);
// Channels [c0, c1) of x ([channels][h][w]) into xpad ([channels][plane], rows wp apart).
void f32_conv_t_pad(const conv2d_geometry& g, size_t c0, size_t c1, const float* x, float* xpad);
// w: [m][channels][kh][kw] -> strips of nr output channels, K ordered (ky, kx, c);
// f32_gemm_t_packed_size(m, channels * kh * kw, nr) floats.
void f32_conv_t_pack(size_t m, size_t channels, size_t kh, size_t kw, size_t nr, const float* w,
                     float* strips);
// offs[p] for every output pixel p < ho * wo: its tap (0, 0) position in the padded image.
void f32_conv_t_offsets(const conv2d_geometry& g, size_t* offs);
// Output pixels per band of a p-pixel image (a task's unit of work along pixels; at most 384),
// and the per-task scratch of f32_conv_t_run (one band's transposed tile column).
size_t f32_conv_t_band_pixels(size_t p);
size_t f32_conv_t_scratch(const f32_gemm_t_config& cfg);
// One task: output channels of strips [s0, s1) x the pixels of bands [b0, b1), into c (row 0 of
// the group's output, ldc floats per row): c[row, p] = clamp(bias[row] + sum over taps and
// channels of w x xpad).
void f32_conv_t_run(const f32_gemm_t_config& cfg, const conv2d_geometry& g, size_t channels,
                    size_t m, const float* strips, size_t s0, size_t s1, size_t b0, size_t b1,
                    const float* xpad, const size_t* offs, const float* bias, float* c, size_t ldc,
                    float* scratch, const f32_minmax* params);

// GEMV: y[i] = clamp(bias[i] + dot(w[i, :], x)) for i < m; w row-major [m, k] with row stride k;
// bias may be null.
typedef void (*f32_gemv_ukernel_fn)(size_t m, size_t k, const float* w, const float* bias,
                                    const float* x, float* y, const f32_minmax* params);

void f32_gemv_ukernel_4x1__scalar(size_t m, size_t k, const float* w, const float* bias,
                                  const float* x, float* y, const f32_minmax* params);
#if defined(__x86_64__) || defined(_M_X64)
void f32_gemv_ukernel_4x8__avx2_fma(size_t m, size_t k, const float* w, const float* bias,
                                    const float* x, float* y, const f32_minmax* params);
#endif
#if defined(__aarch64__)
void f32_gemv_ukernel_4x4__neonfma(size_t m, size_t k, const float* w, const float* bias,
                                   const float* x, float* y, const f32_minmax* params);
#endif

}  // namespace edgefit
