// Winograd F(2x2, 3x3) weight packing and the scalar reference transforms (f32-nchwc.h).
#include "kernels/f32-nchwc/f32-nchwc-winograd.h"
#include "kernels/f32-nchwc/f32-nchwc.h"

namespace edgefit {

namespace {

constexpr size_t kC = kNchwcBlock;

// Tile t's 4x4 window starts at input row 2 * ty - 1, column 2 * tx - 1 (padding 1).
struct TileOrigin {
  ptrdiff_t y, x;
};

// fn(b, origin, c, at) for every channel c of block b of tiles [t0, t0 + nt); at: the lane's
// index in the transformed layout without its tile position, ((xi * blocks + b) * stride + t -
// t0) * 16 + c = at + xi * blocks * stride * 16.
template <class F>
void each_tile_lane(size_t w, size_t blocks, size_t t0, size_t nt, size_t stride, F fn) {
  const size_t tw = w / 2;
  for (size_t b = 0; b < blocks; ++b)
    for (size_t t = t0; t < t0 + nt; ++t) {
      const TileOrigin origin{ptrdiff_t(t / tw) * 2 - 1, ptrdiff_t(t % tw) * 2 - 1};
      for (size_t c = 0; c < kC; ++c) fn(b, origin, c, (b * stride + t - t0) * kC + c);
    }
}

}  // namespace

size_t f32_nchwc_wino_packed_size(size_t oc, size_t ic) {
  return 16 * f32_nchwc_packed_size(oc, ic, 1, 1);
}

void f32_nchwc_wino_pack(size_t oc, size_t ic, const float* w, float* packed) {
  // U = G g G^T per (output, input) channel pair, each of its 16 positions written where
  // f32_nchwc_pack puts the weight of a 1x1 convolution: per group of 64 output channels,
  // [ic][group width].
  const size_t each = f32_nchwc_packed_size(oc, ic, 1, 1), group = kC * kNchwcGroupBlocks;
  for (size_t o = 0; o < oc; ++o) {
    const size_t g0 = o / group * group, width = f32_nchwc_group_width(oc, o / group);
    for (size_t i = 0; i < ic; ++i) {
      float u[16];
      f32_wino_weight_tile(w + (o * ic + i) * 9, u);
      float* at = packed + g0 * ic + i * width + (o - g0);
      for (size_t xi = 0; xi < 16; ++xi) at[xi * each] = u[xi];
    }
  }
}

void f32_nchwc_wino_pack_group__scalar(size_t width, size_t ic, size_t ib, const float* w3,
                                       float* u) {
  for (size_t i = ib * kC; i < (ib + 1) * kC; ++i)
    for (size_t o = 0; o < width; ++o) {
      float g[9], t[16];
      for (size_t tap = 0; tap < 9; ++tap) g[tap] = w3[((ib * 9 + tap) * kC + i % kC) * width + o];
      f32_wino_weight_tile(g, t);
      for (size_t xi = 0; xi < 16; ++xi) u[(xi * ic + i) * width + o] = t[xi];
    }
}

void f32_nchwc_wino_in__scalar(size_t h, size_t w, size_t blocks, const float* x, size_t t0,
                               size_t nt, size_t stride, float* v) {
  const size_t xi_stride = blocks * stride * kC;
  each_tile_lane(w, blocks, t0, nt, stride, [&](size_t b, TileOrigin o, size_t c, size_t at) {
    float d[16], out[16];
    for (ptrdiff_t i = 0; i < 4; ++i)
      for (ptrdiff_t j = 0; j < 4; ++j) {
        const ptrdiff_t r = o.y + i, col = o.x + j;
        const bool in = r >= 0 && r < ptrdiff_t(h) && col >= 0 && col < ptrdiff_t(w);
        d[i * 4 + j] = in ? x[((b * h + size_t(r)) * w + size_t(col)) * kC + c] : 0.0f;
      }
    f32_wino_input_tile(d, out);
    for (size_t xi = 0; xi < 16; ++xi) v[at + xi * xi_stride] = out[xi];
  });
}

void f32_nchwc_wino_out__scalar(size_t h, size_t w, size_t blocks, const float* m, size_t t0,
                                size_t nt, size_t stride, const float* bias, float* y,
                                const f32_minmax* params) {
  const size_t xi_stride = blocks * stride * kC;
  each_tile_lane(w, blocks, t0, nt, stride, [&](size_t b, TileOrigin o, size_t c, size_t at) {
    float p[16], out[4];
    for (size_t xi = 0; xi < 16; ++xi) p[xi] = m[at + xi * xi_stride];
    f32_wino_output_tile(p, out);
    const float add = bias != nullptr ? bias[b * kC + c] : 0.0f;
    for (size_t i = 0; i < 2; ++i)
      for (size_t j = 0; j < 2; ++j) {
        const size_t r = size_t(o.y + 1) + i, col = size_t(o.x + 1) + j;
        y[((b * h + r) * w + col) * kC + c] = f32_clamp(out[i * 2 + j] + add, params);
      }
  });
}

}  // namespace edgefit
