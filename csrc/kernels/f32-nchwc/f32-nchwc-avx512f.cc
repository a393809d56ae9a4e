// AVX-512 tiles of the channel-blocked convolution (f32-nchwc.h): P output pixels (<= 6) x OB
// output blocks (<= 4, 64 channels) in P * OB zmm accumulators, 4 weight vectors and one
// broadcast: 29 of the 32 registers at 6 x 4.
#include <immintrin.h>

// GCC 12's own AVX-512 intrinsics pass an undefined source (_mm512_undefined_ps) to their
// builtins and then warn that it "may be used uninitialized" once inlined here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include "kernels/f32-nchwc/f32-nchwc.h"

namespace edgefit {

namespace {

constexpr size_t kC = kNchwcBlock;

// One input block's taps: cn of its CB channels (the rest are known zeros: a padded tensor,
// core/layout.h) into the accumulators; w advances past all CB channels' weights.
template <size_t P, size_t OB, size_t CB>
__attribute__((always_inline)) inline void block_taps(const float* xb, const size_t (&o)[P],
                                                      size_t row_stride, size_t kh, size_t kw,
                                                      size_t cn, const float*& w,
                                                      __m512 (&acc)[P][OB], const char*& pf,
                                                      size_t& npf) {
  for (size_t ky = 0; ky < kh; ++ky)
    for (size_t kx = 0; kx < kw; ++kx) {
      const float* xt = xb + ky * row_stride + kx * CB;
#pragma GCC unroll 4
      for (size_t c = 0; c < cn; ++c) {
        if (npf != 0) {
          _mm_prefetch(pf, _MM_HINT_T1);
          pf += 64;
          --npf;
        }
        __m512 wv[OB];
#pragma GCC unroll 4
        for (size_t b = 0; b < OB; ++b) wv[b] = _mm512_loadu_ps(w + b * kC);
        w += OB * kC;
#pragma GCC unroll 12
        for (size_t i = 0; i < P; ++i) {
          const __m512 v = _mm512_set1_ps(xt[o[i] + c]);
#pragma GCC unroll 4
          for (size_t b = 0; b < OB; ++b) acc[i][b] = _mm512_fmadd_ps(v, wv[b], acc[i][b]);
        }
      }
      w += (CB - cn) * OB * kC;
    }
}

// Pixel i reads x + offs[i] (+ the tap's offset); its results go to y + i * 16 of each block.
// CB: input channels per block (16, or 1 for a plain NCHW input whose blocks are channel planes);
// the last of the nib blocks has only last_cn channels that are not known zeros.
// first: start from the bias, else from y (an earlier pass); last: add r (laid out like y) if
// not null, then clamp.
// pf / npf: cache lines to prefetch, one per input channel until npf run out.
template <size_t P, size_t OB, size_t CB>
void tile(const float* x, const size_t* offs, size_t block_stride, size_t row_stride, size_t nib,
          size_t last_cn, size_t kh, size_t kw, const float* w, const float* bias, float* y,
          size_t y_stride, bool first, bool last, const float* r, const f32_minmax* mm,
          const char* pf, size_t npf) {
  size_t o[P];
#pragma GCC unroll 12
  for (size_t i = 0; i < P; ++i) o[i] = offs[i];
  __m512 acc[P][OB];
#pragma GCC unroll 4
  for (size_t b = 0; b < OB; ++b) {
    const __m512 init = bias != nullptr ? _mm512_loadu_ps(bias + b * kC) : _mm512_setzero_ps();
#pragma GCC unroll 12
    for (size_t i = 0; i < P; ++i)
      acc[i][b] = first ? init : _mm512_loadu_ps(y + b * y_stride + i * kC);
  }
  // Whole blocks with the channel count a constant (the loop fully known), then a short last one.
  const size_t whole = last_cn == CB ? nib : nib - 1;
  for (size_t ib = 0; ib < whole; ++ib)
    block_taps<P, OB, CB>(x + ib * block_stride, o, row_stride, kh, kw, CB, w, acc, pf, npf);
  if (whole < nib)
    block_taps<P, OB, CB>(x + whole * block_stride, o, row_stride, kh, kw, last_cn, w, acc, pf,
                          npf);
  const __m512 lo = _mm512_set1_ps(mm->min), hi = _mm512_set1_ps(mm->max);
#pragma GCC unroll 4
  for (size_t b = 0; b < OB; ++b)
#pragma GCC unroll 12
    for (size_t i = 0; i < P; ++i) {
      __m512 v = acc[i][b];
      if (last && r != nullptr) v = _mm512_add_ps(v, _mm512_loadu_ps(r + b * y_stride + i * kC));
      if (last) v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
      _mm512_storeu_ps(y + b * y_stride + i * kC, v);
    }
}

typedef void (*tile_fn)(const float*, const size_t*, size_t, size_t, size_t, size_t, size_t, size_t,
                        const float*, const float*, float*, size_t, bool, bool, const float*,
                        const f32_minmax*, const char*, size_t);

// Pixels per tile: 12 for groups of two output blocks (24 accumulators, as 6 x 4 has), so each
// weight vector and the tile's setup and stores serve twice the FMAs that 6 pixels would
// (csrc/README.md: 1.009x at 2 threads; one-block groups measured slower at 12).
constexpr size_t kWidePixels = 12;
constexpr size_t tile_pixels(size_t ob) { return ob == 2 ? kWidePixels : 6; }

// Tiles of 1 .. sizeof...(P) pixels; the entries past them stay null.
template <size_t OB, size_t CB, size_t... P>
constexpr std::array<tile_fn, kWidePixels> tile_row(std::index_sequence<P...>) {
  return {tile<P + 1, OB, CB>...};
}
template <size_t OB, size_t CB>
constexpr std::array<tile_fn, kWidePixels> kRow =
    tile_row<OB, CB>(std::make_index_sequence<tile_pixels(OB)>());
constexpr const tile_fn* kBlockedTiles[4] = {kRow<1, kC>.data(), kRow<2, kC>.data(),
                                             kRow<3, kC>.data(), kRow<4, kC>.data()};
constexpr const tile_fn* kPlainTiles[4] = {kRow<1, 1>.data(), kRow<2, 1>.data(), kRow<3, 1>.data(),
                                           kRow<4, 1>.data()};

}  // namespace

void f32_nchwc_conv__avx512f(const f32_nchwc_conv_params* cp, const float* x, const float* packed,
                             const float* bias, float* y, size_t group, size_t p0, size_t p1,
                             const f32_minmax* params) {
  const conv2d_geometry& g = cp->g;
  if (cp->in_block != kC && cp->in_block != 1) {  // no other layout is planned; stay correct
    f32_nchwc_conv__scalar(cp, x, packed, bias, y, group, p0, p1, params);
    return;
  }
  const size_t cb = cp->in_block;
  const size_t taps = g.kh * g.kw, p = g.ho * g.wo, nib = cp->ic / cb;
  const size_t o0 = group * kC * kNchwcGroupBlocks;
  const size_t width = f32_nchwc_group_width(cp->oc, group), ob = width / kC;
  const float* w = packed + o0 * cp->ic * taps;
  float* yg = y + o0 * p;
  const float* bg = bias != nullptr ? bias + o0 : nullptr;
  const size_t block_stride = cp->hp * cp->wp * cb, row_stride = cp->wp * cb;
  const tile_fn* row = (cb == kC ? kBlockedTiles : kPlainTiles)[ob - 1];
  const size_t tile_px = tile_pixels(ob);
  // The call that finishes a group brings the next group's weights into the cache while it
  // computes (a line per input channel of its tiles): they would otherwise stream from DRAM /
  // L3 through the next group's first tile, with nothing to overlap.
  const size_t next_o0 = o0 + width;
  const char* pf = nullptr;
  size_t pf_left = 0, pf_per_tile = 0;
  if (p1 == p && next_o0 < cp->oc) {
    pf = reinterpret_cast<const char*>(packed + next_o0 * cp->ic * taps);
    pf_left = f32_nchwc_group_width(cp->oc, group + 1) * cp->ic * taps * sizeof(float) / 64;
    const size_t tiles = ceil_div(nib, cp->pass_blocks) * ceil_div(p1 - p0, tile_px);
    pf_per_tile = ceil_div(pf_left, tiles);
  }
  // Channels of the last input block that are not known zeros (a padded tensor: layout.h).
  const size_t last_cn = cb == kC && cp->zero_tail < kC ? kC - cp->zero_tail : cb;
  for (size_t ib0 = 0; ib0 < nib; ib0 += cp->pass_blocks) {
    const size_t nb = std::min(cp->pass_blocks, nib - ib0);
    const bool first = ib0 == 0 && !cp->continues, last = ib0 + nb == nib && !cp->open;
    const float* xb = x + ib0 * block_stride;
    const float* wb = w + ib0 * taps * cb * width;
    for (size_t px = p0; px < p1; px += tile_px) {
      const size_t n = std::min(tile_px, p1 - px);
      const float* r = cp->residual != nullptr ? cp->residual + o0 * p + px * kC : nullptr;
      // A tile issues one prefetch per input channel it reads (skipped zero channels: none).
      const size_t tile_cn = ib0 + nb == nib ? last_cn : cb;
      const size_t npf = std::min({pf_per_tile, pf_left, ((nb - 1) * cb + tile_cn) * g.kh * g.kw});
      row[n - 1](xb, cp->offs + px, block_stride, row_stride, nb, tile_cn, g.kh, g.kw, wb, bg,
                 yg + px * kC, p * kC, first, last, r, params, pf, npf);
      pf += npf * 64;
      pf_left -= npf;
    }
  }
}

namespace {

template <size_t T, size_t K, size_t S, bool kEdge>
inline void dw_row_body(const float* x, ptrdiff_t h, ptrdiff_t w, ptrdiff_t iy0, ptrdiff_t ix0,
                        const float* wk, const float* bias, float* y, const f32_minmax* mm) {
  constexpr size_t kCols = (T - 1) * S + K;  // input columns the T outputs read
  const __m512 init = bias != nullptr ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
  __m512 acc[T];
#pragma GCC unroll 16
  for (size_t j = 0; j < T; ++j) acc[j] = init;
  for (size_t ky = 0; ky < K; ++ky) {
    const ptrdiff_t iy = iy0 + ptrdiff_t(ky);
    if (iy < 0 || iy >= h) continue;  // the zero padding above or below
    const float* xr = x + (iy * w + ix0) * ptrdiff_t(kC);
    __m512 wv[K];
#pragma GCC unroll 5
    for (size_t kx = 0; kx < K; ++kx) wv[kx] = _mm512_loadu_ps(wk + (ky * K + kx) * kC);
#pragma GCC unroll 40
    for (size_t c = 0; c < kCols; ++c) {
      // The zero padding left or right (kEdge: the piece touches the image's edge).
      if (kEdge && (ix0 + ptrdiff_t(c) < 0 || ix0 + ptrdiff_t(c) >= w)) continue;
      __m512 v = _mm512_loadu_ps(xr + c * kC);
      // One load for the K FMAs: without this GCC folds the load into each FMA's memory operand,
      // and the row kernel is back to one load per FMA.
      __asm__("" : "+v"(v));
#pragma GCC unroll 5
      for (size_t kx = 0; kx < K; ++kx)
        if (c >= kx && (c - kx) % S == 0 && (c - kx) / S < T)
          acc[(c - kx) / S] = _mm512_fmadd_ps(v, wv[kx], acc[(c - kx) / S]);
    }
  }
  const __m512 lo = _mm512_set1_ps(mm->min), hi = _mm512_set1_ps(mm->max);
#pragma GCC unroll 16
  for (size_t j = 0; j < T; ++j)
    _mm512_storeu_ps(y + j * kC, _mm512_min_ps(_mm512_max_ps(acc[j], lo), hi));
}

// T consecutive output pixels of one row of one 16-channel block, K x K filter, stride S: every
// input vector of a filter row is loaded once and feeds the (up to K) outputs that read it, so the
// loads are 1 / K of the FMAs (one load per FMA in a pixel-at-a-time loop). The loops over the
// row's input columns and taps unroll completely (T, K and S are constants): each accumulator is
// a register, and the only branches left test whether a row, or near the image's left and right
// edges a column, lies inside the image. x: the block's plane; iy0 / ix0: input row / column of
// the first pixel's tap (0, 0); wk: the block's K * K weight vectors; y: the first pixel's output.
template <size_t T, size_t K, size_t S>
void dw_row(const float* x, ptrdiff_t h, ptrdiff_t w, ptrdiff_t iy0, ptrdiff_t ix0, const float* wk,
            const float* bias, float* y, const f32_minmax* mm) {
  if (ix0 >= 0 && ix0 + ptrdiff_t((T - 1) * S + K) <= w)
    dw_row_body<T, K, S, false>(x, h, w, iy0, ix0, wk, bias, y, mm);
  else
    dw_row_body<T, K, S, true>(x, h, w, iy0, ix0, wk, bias, y, mm);
}

typedef void (*dw_row_fn)(const float*, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, const float*,
                          const float*, float*, const f32_minmax*);

constexpr size_t kDwRowMax = 16;  // outputs per row piece: 16 accumulators + K weights + 1 input

template <size_t K, size_t S, size_t... T>
constexpr std::array<dw_row_fn, sizeof...(T)> dw_rows(std::index_sequence<T...>) {
  return {dw_row<T + 1, K, S>...};
}
template <size_t K, size_t S>
constexpr std::array<dw_row_fn, kDwRowMax> kDwRows =
    dw_rows<K, S>(std::make_index_sequence<kDwRowMax>());

// The row kernels of a K x K, stride S filter, or null for shapes that keep the pixel loop.
const dw_row_fn* dw_rows_for(size_t kh, size_t kw, size_t sh, size_t sw) {
  if (kh != kw || sh != sw) return nullptr;
  if (kh == 3 && sh == 1) return kDwRows<3, 1>.data();
  if (kh == 3 && sh == 2) return kDwRows<3, 2>.data();
  if (kh == 5 && sh == 1) return kDwRows<5, 1>.data();
  if (kh == 5 && sh == 2) return kDwRows<5, 2>.data();
  return nullptr;
}

}  // namespace

void f32_nchwc_dwconv__avx512f(const f32_nchwc_conv_params* cp, const float* x, const float* packed,
                               const float* bias, float* y, size_t b0, size_t b1, size_t p0,
                               size_t p1, const f32_minmax* params) {
  const conv2d_geometry& g = cp->g;
  const size_t taps = g.kh * g.kw, p = g.ho * g.wo;
  if (taps > 64) {  // no depthwise filter this large runs blocked (layout.cc); stay correct
    f32_nchwc_dwconv__scalar(cp, x, packed, bias, y, b0, b1, p0, p1, params);
    return;
  }
  if (const dw_row_fn* rows = dw_rows_for(g.kh, g.kw, g.sh, g.sw)) {
    for (size_t b = b0; b < b1; ++b) {
      const float* xb = x + b * g.h * g.w * kC;
      const float* wb = packed + b * taps * kC;
      const float* bb = bias != nullptr ? bias + b * kC : nullptr;
      float* yb = y + b * p * kC;
      // Each output row's share of [p0, p1), in near-equal pieces of <= kDwRowMax pixels.
      for (size_t px = p0; px < p1;) {
        const size_t oy = px / g.wo, ox = px % g.wo, n = std::min(g.wo - ox, p1 - px);
        const size_t pieces = ceil_div(n, kDwRowMax);
        const ptrdiff_t iy0 = ptrdiff_t(oy * g.sh) - ptrdiff_t(g.pt);
        for (size_t i = 0, o = ox; i < pieces; ++i) {
          const size_t len = n / pieces + (i < n % pieces);
          rows[len - 1](xb, ptrdiff_t(g.h), ptrdiff_t(g.w), iy0,
                        ptrdiff_t(o * g.sw) - ptrdiff_t(g.pl), wb, bb, yb + (oy * g.wo + o) * kC,
                        params);
          o += len;
        }
        px += n;
      }
    }
    return;
  }
  const ptrdiff_t h = ptrdiff_t(g.h), w = ptrdiff_t(g.w);
  size_t tap_off[64];
  for (size_t t = 0; t < taps; ++t) tap_off[t] = ((t / g.kw) * g.w + t % g.kw) * kC;
  // Output columns whose taps all fall inside the row: [ox_lo, ox_hi).
  const size_t ox_lo = ceil_div(g.pl, g.sw);
  const size_t ox_hi =
      g.w + g.pl >= g.kw ? std::min(g.wo, (g.w + g.pl - g.kw) / g.sw + 1) : size_t(0);
  const __m512 lo = _mm512_set1_ps(params->min), hi = _mm512_set1_ps(params->max);
  auto clamp = [&](__m512 v) { return _mm512_min_ps(_mm512_max_ps(v, lo), hi); };
  for (size_t b = b0; b < b1; ++b) {
    const float* xb = x + b * g.h * g.w * kC;
    const float* wb = packed + b * taps * kC;
    const __m512 init = bias != nullptr ? _mm512_loadu_ps(bias + b * kC) : _mm512_setzero_ps();
    float* yb = y + b * p * kC;
    for (size_t px = p0; px < p1;) {
      const size_t oy = px / g.wo, ox = px % g.wo;
      const ptrdiff_t iy0 = ptrdiff_t(oy * g.sh) - ptrdiff_t(g.pt);
      const ptrdiff_t ix0 = ptrdiff_t(ox * g.sw) - ptrdiff_t(g.pl);
      const bool row_inside = iy0 >= 0 && iy0 + ptrdiff_t(g.kh) <= h;
      if (row_inside && ox >= ox_lo && ox + 4 <= ox_hi && px + 4 <= p1) {
        // 4 pixels whose every tap is inside the image share each weight vector load.
        const float* x0 = xb + (iy0 * w + ix0) * ptrdiff_t(kC);
        const size_t step = g.sw * kC;
        __m512 a0 = init, a1 = init, a2 = init, a3 = init;
        for (size_t t = 0; t < taps; ++t) {
          const __m512 wv = _mm512_loadu_ps(wb + t * kC);
          const float* xt = x0 + tap_off[t];
          a0 = _mm512_fmadd_ps(_mm512_loadu_ps(xt), wv, a0);
          a1 = _mm512_fmadd_ps(_mm512_loadu_ps(xt + step), wv, a1);
          a2 = _mm512_fmadd_ps(_mm512_loadu_ps(xt + 2 * step), wv, a2);
          a3 = _mm512_fmadd_ps(_mm512_loadu_ps(xt + 3 * step), wv, a3);
        }
        _mm512_storeu_ps(yb + px * kC, clamp(a0));
        _mm512_storeu_ps(yb + (px + 1) * kC, clamp(a1));
        _mm512_storeu_ps(yb + (px + 2) * kC, clamp(a2));
        _mm512_storeu_ps(yb + (px + 3) * kC, clamp(a3));
        px += 4;
        continue;
      }
      // One pixel, taps outside the image skipped (the zero padding).
      __m512 a0 = init;
      for (size_t ky = 0; ky < g.kh; ++ky) {
        const ptrdiff_t iy = iy0 + ptrdiff_t(ky);
        if (iy < 0 || iy >= h) continue;
        for (size_t kx = 0; kx < g.kw; ++kx) {
          const ptrdiff_t ix = ix0 + ptrdiff_t(kx);
          if (ix < 0 || ix >= w) continue;
          a0 = _mm512_fmadd_ps(_mm512_loadu_ps(xb + (iy * w + ix) * ptrdiff_t(kC)),
                               _mm512_loadu_ps(wb + (ky * g.kw + kx) * kC), a0);
        }
      }
      _mm512_storeu_ps(yb + px * kC, clamp(a0));
      ++px;
    }
  }
}

void f32_nchwc_maxpool__avx512f(const pool2d_geometry* g, size_t b0, size_t b1, const float* x,
                                float* y) {
  const size_t w = g->w;
  f32_nchwc_pool_windows(
      g, b0, b1, x, y,
      [&](const float* in, float* out, ptrdiff_t ylo, ptrdiff_t yhi, ptrdiff_t xlo, ptrdiff_t xhi) {
        // max(acc, v) with acc first: a NaN in v is kept, as the scalar
        // `acc < v ? v : acc`.
        __m512 acc = _mm512_set1_ps(-INFINITY);
        for (ptrdiff_t iy = ylo; iy < yhi; ++iy)
          for (ptrdiff_t ix = xlo; ix < xhi; ++ix)
            acc = _mm512_max_ps(_mm512_loadu_ps(in + (size_t(iy) * w + size_t(ix)) * kC), acc);
        _mm512_storeu_ps(out, acc);
      });
}

namespace {

// r[i] <- column i of the 16 x 16 matrix whose rows are r[0..15] (in place).
inline void transpose16(__m512* r) {
  __m512 t[16], u[16];
  for (int k = 0; k < 8; ++k) {
    t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
  }
  // u[4k + c], 128-bit lane L: column 4L + c of rows 4k..4k+3.
  for (int k = 0; k < 4; ++k) {
    u[4 * k] = _mm512_shuffle_ps(t[4 * k], t[4 * k + 2], 0x44);
    u[4 * k + 1] = _mm512_shuffle_ps(t[4 * k], t[4 * k + 2], 0xEE);
    u[4 * k + 2] = _mm512_shuffle_ps(t[4 * k + 1], t[4 * k + 3], 0x44);
    u[4 * k + 3] = _mm512_shuffle_ps(t[4 * k + 1], t[4 * k + 3], 0xEE);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512 a = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);
    const __m512 b = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
    const __m512 a2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
    const __m512 b2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
    r[c] = _mm512_shuffle_f32x4(a, a2, 0x88);
    r[8 + c] = _mm512_shuffle_f32x4(a, a2, 0xDD);
    r[4 + c] = _mm512_shuffle_f32x4(b, b2, 0x88);
    r[12 + c] = _mm512_shuffle_f32x4(b, b2, 0xDD);
  }
}

}  // namespace

void f32_nchwc_decode_cb__avx512f(const cb_weights* w, size_t o0, size_t width, size_t taps,
                                  size_t ib0, size_t nb, float* seg, float* out) {
  const size_t n = nb * kC * taps, k0 = ib0 * kC * taps;
  if (w->bits != 4 || width % kC != 0) {
    f32_nchwc_decode_cb__scalar(w, o0, width, taps, ib0, nb, seg, out);
    return;
  }
  const __m128i low = _mm_set1_epi16(0x000F), high = _mm_set1_epi16(0x00F0);
  // Each of the 16 rows' table, scaled once per block of rows; the permutes read it from L1.
  alignas(64) float tables[kC][kC];
  for (size_t r0 = 0; r0 < width; r0 += kC) {
    const uint8_t* codes[kC];
    for (size_t r = 0; r < kC; ++r) {
      const size_t row = o0 + r0 + r;
      _mm512_store_ps(tables[r],
                      _mm512_mul_ps(_mm512_loadu_ps(w->table + size_t(w->group[row]) * 16),
                                    _mm512_set1_ps(w->row_scale[row])));
      codes[r] = w->packed + row * w->row_bytes + k0 / 2;
    }
    // 16 codes of each row -> 16 table entries, transposed in registers so each k becomes a
    // vector of the 16 rows, stored at its (ib, t, i) row. k = (ib * 16 + i) * taps + t is
    // stepped, not divided out per store.
    size_t ib = 0, i = 0, t = 0;
    for (size_t kk = 0; kk < n; kk += kC) {
      __m512 v[kC];
      for (size_t r = 0; r < kC; ++r) {
        const __m128i b =
            _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes[r] + kk / 2)));
        // Word j = byte j: its low nibble (code 2j) stays, its high one (code 2j + 1) moves up a
        // byte.
        const __m128i nib =
            _mm_or_si128(_mm_and_si128(b, low), _mm_slli_epi16(_mm_and_si128(b, high), 4));
        v[r] = _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(nib), _mm512_load_ps(tables[r]));
      }
      transpose16(v);
      for (size_t j = 0; j < kC; ++j) {
        _mm512_storeu_ps(out + ((ib * taps + t) * kC + i) * width + r0, v[j]);
        if (++t == taps) {
          t = 0;
          if (++i == kC) i = 0, ++ib;
        }
      }
    }
  }
}

void f32_nchw_to_nchwc__avx512f(size_t pixels, size_t p0, size_t p1, size_t b0, size_t b1,
                                const float* x, float* y) {
  const size_t full = p0 + (p1 - p0) / kC * kC;
  for (size_t b = b0; b < b1; ++b) {
    __m512 r[16];
    for (size_t px = p0; px < full; px += kC) {
      for (size_t i = 0; i < kC; ++i) r[i] = _mm512_loadu_ps(x + (b * kC + i) * pixels + px);
      transpose16(r);
      for (size_t j = 0; j < kC; ++j) _mm512_storeu_ps(y + (b * pixels + px + j) * kC, r[j]);
    }
    if (full < p1) {
      // The last pixels: each channel's tail copied into a zeroed row, the same transpose.
      alignas(64) float tail[kC][kC] = {};
      for (size_t i = 0; i < kC; ++i)
        for (size_t px = full; px < p1; ++px) tail[i][px - full] = x[(b * kC + i) * pixels + px];
      for (size_t i = 0; i < kC; ++i) r[i] = _mm512_load_ps(tail[i]);
      transpose16(r);
      for (size_t j = 0; j < p1 - full; ++j)
        _mm512_storeu_ps(y + (b * pixels + full + j) * kC, r[j]);
    }
  }
}

void f32_nchwc_to_nchw__avx512f(size_t pixels, size_t p0, size_t p1, size_t b0, size_t b1,
                                const float* x, float* y) {
  const size_t full = p0 + (p1 - p0) / kC * kC;
  for (size_t b = b0; b < b1; ++b) {
    __m512 r[16];
    for (size_t px = p0; px < full; px += kC) {
      for (size_t i = 0; i < kC; ++i) r[i] = _mm512_loadu_ps(x + (b * pixels + px + i) * kC);
      transpose16(r);
      for (size_t j = 0; j < kC; ++j) _mm512_storeu_ps(y + (b * kC + j) * pixels + px, r[j]);
    }
    if (full < p1) {
      const size_t n = p1 - full;
      for (size_t i = 0; i < kC; ++i)
        r[i] = i < n ? _mm512_loadu_ps(x + (b * pixels + full + i) * kC) : _mm512_setzero_ps();
      transpose16(r);
      alignas(64) float row[kC];
      for (size_t j = 0; j < kC; ++j) {
        _mm512_store_ps(row, r[j]);
        for (size_t i = 0; i < n; ++i) y[(b * kC + j) * pixels + full + i] = row[i];
      }
    }
  }
}

}  // namespace edgefit
