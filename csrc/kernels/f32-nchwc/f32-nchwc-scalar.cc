// Scalar reference of the channel-blocked convolution and the layout helpers every ISA shares.
#include <algorithm>
#include <cstring>
#include <limits>

#include "kernels/f32-nchwc/f32-nchwc.h"

namespace edgefit {

namespace {

// Weight bytes of one pass for one 64-channel group: well inside the 1 MB L2 of the machines
// measured (csrc/README.md), so the pixels of a pass reread them from L2, not L3 / DRAM.
constexpr size_t kPassWeightBytes = 512 * 1024;

}  // namespace

void f32_nchwc_padded(const conv2d_geometry& g, size_t* hp, size_t* wp) {
  *hp = (g.ho - 1) * g.sh + (g.kh - 1) * g.dh + 1;
  *wp = (g.wo - 1) * g.sw + (g.kw - 1) * g.dw + 1;
}

bool f32_nchwc_needs_pad(const conv2d_geometry& g) {
  size_t hp = 0, wp = 0;
  f32_nchwc_padded(g, &hp, &wp);
  // Without padding the output reads rows / columns [0, hp) x [0, wp) of the input in place.
  return g.pt != 0 || g.pl != 0 || hp > g.h || wp > g.w;
}

void f32_nchwc_pad(const conv2d_geometry& g, size_t b0, size_t b1, const float* x, float* xpad,
                   size_t in_block, size_t r0, size_t r1) {
  size_t hp = 0, wp = 0;
  f32_nchwc_padded(g, &hp, &wp);
  const size_t left = std::min(g.pl, wp), n = std::min(g.w, wp - left);
  const size_t c = in_block;
  r1 = std::min(r1, hp);
  const size_t rows = r1 > r0 ? r1 - r0 : 0;
  for (size_t b = b0; b < b1; ++b) {
    float* dst = xpad + b * rows * wp * c;
    for (size_t r = r0; r < r1; ++r, dst += wp * c) {
      if (r < g.pt || r - g.pt >= g.h) {
        std::memset(dst, 0, wp * c * sizeof(float));
        continue;
      }
      std::memset(dst, 0, left * c * sizeof(float));
      std::memcpy(dst + left * c, x + ((b * g.h + r - g.pt) * g.w) * c, n * c * sizeof(float));
      std::memset(dst + (left + n) * c, 0, (wp - left - n) * c * sizeof(float));
    }
  }
}

void f32_nchwc_offsets(const conv2d_geometry& g, size_t wp, size_t* offs, size_t in_block) {
  for (size_t p = 0; p < g.ho * g.wo; ++p)
    offs[p] = ((p / g.wo) * g.sh * wp + (p % g.wo) * g.sw) * in_block;
}

size_t f32_nchwc_pass_blocks(size_t ic, size_t kh, size_t kw, size_t in_block) {
  const size_t block_bytes = kh * kw * in_block * kNchwcBlock * kNchwcGroupBlocks * sizeof(float);
  const size_t blocks = ic / in_block;
  const size_t per = std::max<size_t>(1, kPassWeightBytes / block_bytes);
  // Equal passes: 32 blocks at 14 per pass run as 11 + 11 + 10, not 14 + 14 + 4.
  return ceil_div(blocks, ceil_div(blocks, per));
}

size_t f32_nchwc_packed_size(size_t oc, size_t ic, size_t kh, size_t kw) {
  return oc * ic * kh * kw;
}

void f32_nchwc_pack(size_t oc, size_t ic, size_t kh, size_t kw, const float* w, float* packed,
                    size_t in_block) {
  const size_t c = in_block, taps = kh * kw, groups = ceil_div(oc, kNchwcBlock * kNchwcGroupBlocks);
  for (size_t grp = 0; grp < groups; ++grp) {
    const size_t o0 = grp * kNchwcBlock * kNchwcGroupBlocks, width = f32_nchwc_group_width(oc, grp);
    float* out = packed + o0 * ic * taps;
    for (size_t ib = 0; ib < ic / c; ++ib)
      for (size_t t = 0; t < taps; ++t)
        for (size_t i = 0; i < c; ++i)
          for (size_t o = 0; o < width; ++o) *out++ = w[((o0 + o) * ic + ib * c + i) * taps + t];
  }
}

void f32_nchwc_conv__scalar(const f32_nchwc_conv_params* cp, const float* x, const float* packed,
                            const float* bias, float* y, size_t group, size_t p0, size_t p1,
                            const f32_minmax* params) {
  const conv2d_geometry& g = cp->g;
  const size_t c = cp->in_block, oc_block = kNchwcBlock, taps = g.kh * g.kw, p = g.ho * g.wo;
  const size_t o0 = group * oc_block * kNchwcGroupBlocks;
  const size_t width = f32_nchwc_group_width(cp->oc, group);
  const float* w = packed + o0 * cp->ic * taps;
  for (size_t px = p0; px < p1; ++px)
    for (size_t o = 0; o < width; ++o) {
      const size_t oc = o0 + o, at = ((oc / oc_block) * p + px) * oc_block + oc % oc_block;
      float acc = cp->continues ? y[at] : bias != nullptr ? bias[oc] : 0.0f;
      for (size_t ib = 0; ib < cp->ic / c; ++ib)
        for (size_t t = 0; t < taps; ++t) {
          const float* xb =
              x + ib * cp->hp * cp->wp * c + cp->offs[px] + ((t / g.kw) * cp->wp + t % g.kw) * c;
          const float* wb = w + (ib * taps + t) * c * width + o;
          for (size_t i = 0; i < c; ++i) acc += xb[i] * wb[i * width];
        }
      if (cp->open) {
        y[at] = acc;
        continue;
      }
      if (cp->residual != nullptr) acc += cp->residual[at];
      y[at] = f32_clamp(acc, params);
    }
}

void f32_nchwc_dw_pack(size_t c, size_t kh, size_t kw, const float* w, float* packed) {
  const size_t taps = kh * kw;
  for (size_t ch = 0; ch < c; ++ch)
    for (size_t t = 0; t < taps; ++t)
      packed[((ch / kNchwcBlock) * taps + t) * kNchwcBlock + ch % kNchwcBlock] = w[ch * taps + t];
}

void f32_nchwc_dwconv__scalar(const f32_nchwc_conv_params* cp, const float* x, const float* packed,
                              const float* bias, float* y, size_t b0, size_t b1, size_t p0,
                              size_t p1, const f32_minmax* params) {
  const conv2d_geometry& g = cp->g;
  const size_t c = kNchwcBlock, taps = g.kh * g.kw, p = g.ho * g.wo;
  for (size_t b = b0; b < b1; ++b)
    for (size_t px = p0; px < p1; ++px)
      for (size_t i = 0; i < c; ++i) {
        float acc = bias != nullptr ? bias[b * c + i] : 0.0f;
        for (size_t t = 0; t < taps; ++t) {
          const ptrdiff_t iy = ptrdiff_t((px / g.wo) * g.sh + t / g.kw) - ptrdiff_t(g.pt);
          const ptrdiff_t ix = ptrdiff_t((px % g.wo) * g.sw + t % g.kw) - ptrdiff_t(g.pl);
          if (iy < 0 || ix < 0 || iy >= ptrdiff_t(g.h) || ix >= ptrdiff_t(g.w)) continue;
          acc += packed[(b * taps + t) * c + i] *
                 x[((b * g.h + size_t(iy)) * g.w + size_t(ix)) * c + i];
        }
        y[(b * p + px) * c + i] = f32_clamp(acc, params);
      }
}

void f32_nchwc_decode_cb__scalar(const cb_weights* w, size_t o0, size_t width, size_t taps,
                                 size_t ib0, size_t nb, float* seg, float* out) {
  (void)seg;
  const size_t c = kNchwcBlock, n = nb * c * taps, k0 = ib0 * c * taps;
  for (size_t o = 0; o < width; ++o) {
    const size_t row = o0 + o;
    const uint8_t* codes = w->packed + row * w->row_bytes;
    const float* table = w->table + (size_t(w->group[row]) << w->bits);
    for (size_t k = 0; k < n; ++k)
      out[(((k / (c * taps)) * taps + k % taps) * c + (k / taps) % c) * width + o] =
          table[cb_code(codes, w->row_bytes, w->bits, k0 + k)] * w->row_scale[row];
  }
}

void f32_nchw_to_nchwc__scalar(size_t pixels, size_t p0, size_t p1, size_t b0, size_t b1,
                               const float* x, float* y) {
  const size_t c = kNchwcBlock;
  for (size_t b = b0; b < b1; ++b)
    for (size_t i = 0; i < c; ++i) {
      const float* src = x + (b * c + i) * pixels;
      float* dst = y + b * pixels * c + i;
      for (size_t px = p0; px < p1; ++px) dst[px * c] = src[px];
    }
}

void f32_nchwc_to_nchw__scalar(size_t pixels, size_t p0, size_t p1, size_t b0, size_t b1,
                               const float* x, float* y) {
  const size_t c = kNchwcBlock;
  for (size_t b = b0; b < b1; ++b)
    for (size_t i = 0; i < c; ++i) {
      const float* src = x + b * pixels * c + i;
      float* dst = y + (b * c + i) * pixels;
      for (size_t px = p0; px < p1; ++px) dst[px] = src[px * c];
    }
}

void f32_nchwc_maxpool__scalar(const pool2d_geometry* g, size_t b0, size_t b1, const float* x,
                               float* y) {
  const size_t c = kNchwcBlock, w = g->w;
  f32_nchwc_pool_windows(
      g, b0, b1, x, y,
      [&](const float* in, float* out, ptrdiff_t ylo, ptrdiff_t yhi, ptrdiff_t xlo, ptrdiff_t xhi) {
        for (size_t i = 0; i < c; ++i) out[i] = -std::numeric_limits<float>::infinity();
        for (ptrdiff_t iy = ylo; iy < yhi; ++iy)
          for (ptrdiff_t ix = xlo; ix < xhi; ++ix) {
            const float* v = in + (size_t(iy) * w + size_t(ix)) * c;
            for (size_t i = 0; i < c; ++i) out[i] = out[i] < v[i] ? v[i] : out[i];
          }
      });
}

void f32_nchwc_global_avgpool__scalar(size_t blocks, size_t pixels, const float* x, float* y) {
  const size_t c = kNchwcBlock;
  const float scale = pixels ? 1.0f / float(pixels) : 0.0f;
  for (size_t b = 0; b < blocks; ++b) {
    float acc[kNchwcBlock] = {};
    for (size_t px = 0; px < pixels; ++px)
      for (size_t i = 0; i < c; ++i) acc[i] += x[(b * pixels + px) * c + i];
    for (size_t i = 0; i < c; ++i) y[b * c + i] = acc[i] * scale;
  }
}

}  // namespace edgefit
