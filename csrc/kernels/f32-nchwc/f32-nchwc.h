// Convolutions over channel-blocked activations (NCHW16c: [N][C / 16][H][W][16], the layout of
// ONNX Runtime's MLAS NCHWc kernels). A tile keeps up to 6 output pixels x 64 output channels in
// registers and reads, per input channel, one 16-channel weight vector per output block and one
// broadcast per pixel; every input channel and tap accumulates in registers and the result is
// stored once, straight in the blocked layout, so there is no unfold, no packed copy of the
// activations and no transpose. Layers with these tiles run near the FMA bound where the NCHW
// GEMM paths (f32-gemm) pay for packing, K blocks and transposes (measured: csrc/README.md).
//
// Channel counts are multiples of 16 (the executor only blocks such tensors: core/layout.h), so a
// blocked tensor has exactly the bytes of its NCHW form.
#pragma once

#include <cstdint>

#include "kernels/cb-gemm/cb-gemm.h"
#include "kernels/common.h"
#include "kernels/f32-conv/f32-conv.h"
#include "kernels/f32-pool/f32-pool.h"

namespace edgefit {

constexpr size_t kNchwcBlock = 16;       // channels per block
constexpr size_t kNchwcGroupBlocks = 4;  // output blocks per tile (64 output channels)

// Output channels of group `group` (64, fewer in the last group).
inline size_t f32_nchwc_group_width(size_t oc, size_t group) {
  const size_t width = kNchwcBlock * kNchwcGroupBlocks, o0 = group * width;
  return oc - o0 < width ? oc - o0 : width;
}

// One prepared convolution. The input is read as [ic / in_block][hp][wp][in_block]: the padded
// copy made by f32_nchwc_pad when the convolution pads, else the input itself (hp = h, wp = w).
// in_block 16: a blocked input; in_block 1: a plain NCHW input of any channel count (the executor
// uses it for stems, core/layout.h), read in place of a reorder into blocks. The output is blocked.
struct f32_nchwc_conv_params {
  conv2d_geometry g;  // dilation 1
  size_t ic = 0, oc = 0;
  size_t in_block = kNchwcBlock;  // 16 or 1
  size_t hp = 0, wp = 0;
  size_t pass_blocks = 0;  // input-channel blocks per pass over the pixels (weights kept in L2)
  const size_t* offs = nullptr;  // [ho * wo]: each output pixel's tap (0, 0) in floats
  // A residual added before the clamp, blocked like y (a following add fused in: layout.h), or
  // null. Set per run (arena pointer), never by the kernels.
  const float* residual = nullptr;
  // A call covering only some input channels of a longer sum (codebook weights decoded pass by
  // pass): continues: start from y (no bias); open: leave the sum unclamped for a later call.
  bool continues = false, open = false;
  // Trailing channels of the input's last block that are zeros by construction (a tensor padded
  // up to whole blocks, core/layout.h): kernels may skip them (their weights are zero too), or
  // read them; either gives the same sums. 0 .. 15.
  size_t zero_tail = 0;
};

// The padded image f32_nchwc_pad writes (hp, wp: the rows / columns the output reads).
void f32_nchwc_padded(const conv2d_geometry& g, size_t* hp, size_t* wp);
// Whether the convolution reads a padded copy (any padding) or its input in place.
bool f32_nchwc_needs_pad(const conv2d_geometry& g);
// Channel blocks [b0, b1) of x ([blocks][h][w][in_block]) into xpad ([blocks][hp][wp][in_block]),
// zeros around (in_block 1: channel planes). Only padded rows [r0, r1) of each block: xpad then
// holds just those, [blocks][r1 - r0][wp][in_block] (a row-band task's share).
void f32_nchwc_pad(const conv2d_geometry& g, size_t b0, size_t b1, const float* x, float* xpad,
                   size_t in_block = kNchwcBlock, size_t r0 = 0, size_t r1 = SIZE_MAX);
// offs[p] = ((oy * sh) * wp + ox * sw) * in_block for output pixel p = oy * wo + ox.
void f32_nchwc_offsets(const conv2d_geometry& g, size_t wp, size_t* offs,
                       size_t in_block = kNchwcBlock);
// Input-channel blocks per pass: a pass's weights for one 64-channel group stay within L2.
size_t f32_nchwc_pass_blocks(size_t ic, size_t kh, size_t kw, size_t in_block = kNchwcBlock);

// Weights [oc][ic][kh][kw] -> per group of 64 output channels (fewer in the last group):
// [ic / in_block][kh][kw][in_block input channels][group channels].
// f32_nchwc_packed_size(oc, ic, kh, kw) floats (= oc * ic * kh * kw).
size_t f32_nchwc_packed_size(size_t oc, size_t ic, size_t kh, size_t kw);
void f32_nchwc_pack(size_t oc, size_t ic, size_t kh, size_t kw, const float* w, float* packed,
                    size_t in_block = kNchwcBlock);

// Output group `group` (64 output channels) for output pixels [p0, p1) of one image:
// y[o][p] = clamp(bias[o] + sum over input channels and taps of w x x). x and y point at the
// image's first block; bias may be null.
typedef void (*f32_nchwc_conv_fn)(const f32_nchwc_conv_params* cp, const float* x,
                                  const float* packed, const float* bias, float* y, size_t group,
                                  size_t p0, size_t p1, const f32_minmax* params);

void f32_nchwc_conv__scalar(const f32_nchwc_conv_params* cp, const float* x, const float* packed,
                            const float* bias, float* y, size_t group, size_t p0, size_t p1,
                            const f32_minmax* params);
#if defined(__x86_64__) || defined(_M_X64)
void f32_nchwc_conv__avx512f(const f32_nchwc_conv_params* cp, const float* x, const float* packed,
                             const float* bias, float* y, size_t group, size_t p0, size_t p1,
                             const f32_minmax* params);
#endif

// Winograd F(2x2, 3x3) for 3x3 convolutions with stride 1, padding 1 and an even image (h, w):
// each 2x2 block of outputs from a 4x4 input tile with 16 multiplies per channel pair instead of
// 36. The 16 products of every tile position xi are one 1x1 convolution over the tiles
// (f32_nchwc_conv with a [1 x tiles] image): transformed weights U[xi] = G g G^T in the 1x1
// packed layout, transformed inputs V[xi] = (B^T d B)[xi] and products M[xi] blocked like an
// image of `tiles` pixels. Tiles are numbered row-major over (h / 2) x (w / 2).
// Weights [oc][ic][3][3] -> 16 x f32_nchwc_packed_size(oc, ic, 1, 1) floats (dense weights,
// transformed once; codebook ones go group by group through f32_nchwc_wino_pack_group).
size_t f32_nchwc_wino_packed_size(size_t oc, size_t ic);
void f32_nchwc_wino_pack(size_t oc, size_t ic, const float* w, float* packed);
// One 64-channel (width) group's weights decoded into the blocked 3x3 layout
// (f32_nchwc_decode_cb: w3[((ib * 9 + tap) * 16 + i) * width + o]) -> its transformed weights,
// input block ib: u[(xi * ic + i) * width + o], the 1x1 packed layout of a width-channel group.
typedef void (*f32_nchwc_wino_pack_group_fn)(size_t width, size_t ic, size_t ib, const float* w3,
                                             float* u);
void f32_nchwc_wino_pack_group__scalar(size_t width, size_t ic, size_t ib, const float* w3,
                                       float* u);
#if defined(__x86_64__) || defined(_M_X64)
void f32_nchwc_wino_pack_group__avx512f(size_t width, size_t ic, size_t ib, const float* w3,
                                        float* u);
#endif
// Tiles [t0, t0 + nt) of blocks [0, blocks) of x ([blocks][h][w][16]) into
// v[((xi * blocks + b) * stride + t - t0) * 16 + c]; taps outside x are zeros.
typedef void (*f32_nchwc_wino_in_fn)(size_t h, size_t w, size_t blocks, const float* x, size_t t0,
                                     size_t nt, size_t stride, float* v);
// The products m (laid out as v, `blocks` output blocks) of tiles [t0, t0 + nt) into their 2x2
// outputs of y ([blocks][h][w][16]), plus bias (may be null), clamped.
typedef void (*f32_nchwc_wino_out_fn)(size_t h, size_t w, size_t blocks, const float* m, size_t t0,
                                      size_t nt, size_t stride, const float* bias, float* y,
                                      const f32_minmax* params);
void f32_nchwc_wino_in__scalar(size_t h, size_t w, size_t blocks, const float* x, size_t t0,
                               size_t nt, size_t stride, float* v);
void f32_nchwc_wino_out__scalar(size_t h, size_t w, size_t blocks, const float* m, size_t t0,
                                size_t nt, size_t stride, const float* bias, float* y,
                                const f32_minmax* params);
#if defined(__x86_64__) || defined(_M_X64)
void f32_nchwc_wino_in__avx512f(size_t h, size_t w, size_t blocks, const float* x, size_t t0,
                                size_t nt, size_t stride, float* v);
void f32_nchwc_wino_out__avx512f(size_t h, size_t w, size_t blocks, const float* m, size_t t0,
                                 size_t nt, size_t stride, const float* bias, float* y,
                                 const f32_minmax* params);
#endif

// Depthwise convolution of a blocked image (one filter per channel; cp: g, ic = oc = channels;
// hp, wp, offs and pass_blocks unused): channel blocks [b0, b1) x output pixels [p0, p1). x is
// the unpadded input ([c / 16][h][w][16]): taps outside it are skipped, so no padded copy of the
// (large, 56x56-112x112) depthwise inputs is made. Weights [c][1][kh][kw] packed as
// [c / 16][kh * kw][16] (f32_nchwc_dw_pack; c * kh * kw floats).
void f32_nchwc_dw_pack(size_t c, size_t kh, size_t kw, const float* w, float* packed);
typedef void (*f32_nchwc_dwconv_fn)(const f32_nchwc_conv_params* cp, const float* x,
                                    const float* packed, const float* bias, float* y, size_t b0,
                                    size_t b1, size_t p0, size_t p1, const f32_minmax* params);
void f32_nchwc_dwconv__scalar(const f32_nchwc_conv_params* cp, const float* x, const float* packed,
                              const float* bias, float* y, size_t b0, size_t b1, size_t p0,
                              size_t p1, const f32_minmax* params);
#if defined(__x86_64__) || defined(_M_X64)
void f32_nchwc_dwconv__avx512f(const f32_nchwc_conv_params* cp, const float* x, const float* packed,
                               const float* bias, float* y, size_t b0, size_t b1, size_t p0,
                               size_t p1, const f32_minmax* params);
#endif

// Codebook weights ([M][C][taps], K = C * taps) of output channels [o0, o0 + width) (width a
// multiple of 16) and input blocks [ib0, ib0 + nb), decoded into the layout f32_nchwc_pack writes
// for one group of `width` channels: out[((ib * taps + t) * 16 + i) * width + o], row_scale
// folded in. seg: scratch of 16 * nb * 16 * taps floats.
void f32_nchwc_decode_cb__scalar(const cb_weights* w, size_t o0, size_t width, size_t taps,
                                 size_t ib0, size_t nb, float* seg, float* out);
#if defined(__x86_64__) || defined(_M_X64)
// 4-bit codes: 16 codes per table permute (each row's table scaled once), 16 rows x 16 codes per
// register transpose; other widths call the scalar one.
void f32_nchwc_decode_cb__avx512f(const cb_weights* w, size_t o0, size_t width, size_t taps,
                                  size_t ib0, size_t nb, float* seg, float* out);
#endif
typedef void (*f32_nchwc_decode_cb_fn)(const cb_weights* w, size_t o0, size_t width, size_t taps,
                                       size_t ib0, size_t nb, float* seg, float* out);

// Layout changes of pixels [p0, p1) of one image's channels [b0 * 16, b1 * 16), `pixels` pixels
// each (x and y point at the image).
void f32_nchw_to_nchwc__scalar(size_t pixels, size_t p0, size_t p1, size_t b0, size_t b1,
                               const float* x, float* y);
void f32_nchwc_to_nchw__scalar(size_t pixels, size_t p0, size_t p1, size_t b0, size_t b1,
                               const float* x, float* y);
typedef void (*f32_nchwc_reorder_fn)(size_t pixels, size_t p0, size_t p1, size_t b0, size_t b1,
                                     const float* x, float* y);
#if defined(__x86_64__) || defined(_M_X64)
// 16 x 16 register transposes, 16 pixels of 16 channels at a time.
void f32_nchw_to_nchwc__avx512f(size_t pixels, size_t p0, size_t p1, size_t b0, size_t b1,
                                const float* x, float* y);
void f32_nchwc_to_nchw__avx512f(size_t pixels, size_t p0, size_t p1, size_t b0, size_t b1,
                                const float* x, float* y);
#endif

// Max pooling of channel blocks [b0, b1) of one blocked image (g: torch's geometry; padded taps
// never win, so they are skipped). The scalar one is the reference; models run the ISA's.
void f32_nchwc_maxpool__scalar(const pool2d_geometry* g, size_t b0, size_t b1, const float* x,
                               float* y);
// The input rows (or columns) [*lo, *hi) that output row o's window covers inside the image.
inline void f32_nchwc_pool_window(size_t o, size_t stride, size_t pad, size_t k, size_t n,
                                  ptrdiff_t* lo, ptrdiff_t* hi) {
  const ptrdiff_t i0 = ptrdiff_t(o * stride) - ptrdiff_t(pad);
  *lo = i0 > 0 ? i0 : 0;
  *hi = i0 + ptrdiff_t(k) < ptrdiff_t(n) ? i0 + ptrdiff_t(k) : ptrdiff_t(n);
}
// pixel(in, out, ylo, yhi, xlo, xhi) for every output pixel of channel blocks [b0, b1): `in` the
// block's first input pixel, `out` the output pixel's 16 floats, [ylo, yhi) x [xlo, xhi) its
// window inside the image. The loop every ISA's max pool shares; each supplies the lane work.
template <class Pixel>
inline void f32_nchwc_pool_windows(const pool2d_geometry* g, size_t b0, size_t b1, const float* x,
                                   float* y, Pixel pixel) {
  for (size_t b = b0; b < b1; ++b) {
    const float* xb = x + b * g->h * g->w * kNchwcBlock;
    float* yb = y + b * g->ho * g->wo * kNchwcBlock;
    for (size_t oy = 0; oy < g->ho; ++oy) {
      ptrdiff_t ylo = 0, yhi = 0;
      f32_nchwc_pool_window(oy, g->sh, g->pt, g->kh, g->h, &ylo, &yhi);
      for (size_t ox = 0; ox < g->wo; ++ox) {
        ptrdiff_t xlo = 0, xhi = 0;
        f32_nchwc_pool_window(ox, g->sw, g->pl, g->kw, g->w, &xlo, &xhi);
        pixel(xb, yb + (oy * g->wo + ox) * kNchwcBlock, ylo, yhi, xlo, xhi);
      }
    }
  }
}
typedef void (*f32_nchwc_maxpool_fn)(const pool2d_geometry* g, size_t b0, size_t b1, const float* x,
                                     float* y);
#if defined(__x86_64__) || defined(_M_X64)
void f32_nchwc_maxpool__avx512f(const pool2d_geometry* g, size_t b0, size_t b1, const float* x,
                                float* y);
#endif

// Global average pool of a blocked image ([blocks][pixels][16]) into y[blocks * 16] (NCHW order:
// a [C, 1, 1] result has the same bytes in both layouts).
void f32_nchwc_global_avgpool__scalar(size_t blocks, size_t pixels, const float* x, float* y);

}  // namespace edgefit
