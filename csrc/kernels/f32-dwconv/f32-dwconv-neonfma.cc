// NEON+FMA depthwise convolution for 3x3 and 5x5 kernels at stride 1 and 2 (dilation 1).
// Padded entry points (legacy; tools and tests): 3x3 does 8 output pixels of a row per step in two
// accumulators; 5x5 4 pixels per step (GCC broadcasts the 25 weights into registers, and a second
// pixel vector would spill them), even and odd kernel rows in two accumulators to halve the FMA
// chain. A last partial vector's extra lanes are computed from the readable slack past the row
// (f32-dwconv.h guarantees 32 floats) and not stored. Stride 2 de-interleaves with vld2q_f32.
// Unpadded entry points (the executor's): 3x3 with one pixel of padding reads the channel in
// place (dw3x3_direct below); other geometries pad rows one at a time into a small ring
// (f32-dwconv-ring.h; NEON has no masked loads). Both do 4 pixels per vector and, for 3x3, 4
// output rows per step (each loaded vector feeds up to 3 of them).
#include <arm_neon.h>

#include <algorithm>
#include <cstddef>

#include "kernels/f32-dwconv/f32-dwconv-ring.h"
#include "kernels/f32-dwconv/f32-dwconv.h"

namespace edgefit {
namespace {

template <size_t S>
inline float32x4_t load_px(const float* p) {
  if constexpr (S == 1)
    return vld1q_f32(p);
  else
    return vld2q_f32(p).val[0];
}

// Weight t of the K*K window from the vectors holding 4 weights each.
template <size_t T>
inline float32x4_t fma_w(float32x4_t acc, float32x4_t x, const float32x4_t* wv) {
  return vfmaq_laneq_f32(acc, x, wv[T / 4], T % 4);
}

template <size_t K, size_t S, size_t KY = 0, size_t KX = 0>
inline void window(float32x4_t& a0, float32x4_t& a1, const float* r, size_t stride,
                   const float32x4_t* wv, bool two) {
  if constexpr (KY < K) {
    const float* p = r + KY * stride + KX;
    if (two) {
      a0 = fma_w<KY * K + KX>(a0, load_px<S>(p), wv);
      a1 = fma_w<KY * K + KX>(a1, load_px<S>(p + 4 * S), wv);
    } else if (KY % 2 == 0) {
      a0 = fma_w<KY * K + KX>(a0, load_px<S>(p), wv);
    } else {
      a1 = fma_w<KY * K + KX>(a1, load_px<S>(p), wv);
    }
    if constexpr (KX + 1 < K)
      window<K, S, KY, KX + 1>(a0, a1, r, stride, wv, two);
    else
      window<K, S, KY + 1, 0>(a0, a1, r, stride, wv, two);
  }
}

inline void store_partial(float* p, float32x4_t v, size_t n) {
  vst1q_lane_f32(p, v, 0);
  if (n > 1) vst1q_lane_f32(p + 1, v, 1);
  if (n > 2) vst1q_lane_f32(p + 2, v, 2);
}

template <size_t K, size_t S>
void dwconv(size_t ho, size_t wo, const float* xpad, size_t stride, const float* w, float bias,
            float* y, const f32_dwconv_params* p) {
  constexpr size_t NW = (K * K + 3) / 4;
  // Weights 4 per q register; the last register's unused lanes are zero (w has only K*K floats).
  float wpad[NW * 4] = {};
  for (size_t i = 0; i < K * K; ++i) wpad[i] = w[i];
  float32x4_t wv[NW];
  for (size_t i = 0; i < NW; ++i) wv[i] = vld1q_f32(wpad + 4 * i);
  const float32x4_t vmin = vdupq_n_f32(p->minmax.min);
  const float32x4_t vmax = vdupq_n_f32(p->minmax.max);
  const float32x4_t vb = vdupq_n_f32(bias);
  for (size_t oy = 0; oy < ho; ++oy) {
    const float* rows = xpad + oy * S * stride;
    float* yrow = y + oy * wo;
    size_t ox = 0;
    for (; K == 3 && ox + 8 <= wo; ox += 8) {
      float32x4_t a0 = vb, a1 = vb;
      window<K, S>(a0, a1, rows + ox * S, stride, wv, true);
      vst1q_f32(yrow + ox, vminq_f32(vmaxq_f32(a0, vmin), vmax));
      vst1q_f32(yrow + ox + 4, vminq_f32(vmaxq_f32(a1, vmin), vmax));
    }
    for (; ox < wo; ox += 4) {
      float32x4_t a0 = vb, a1 = vdupq_n_f32(0.0f);
      window<K, S>(a0, a1, rows + ox * S, stride, wv, false);
      a0 = vminq_f32(vmaxq_f32(vaddq_f32(a0, a1), vmin), vmax);
      if (ox + 4 <= wo)
        vst1q_f32(yrow + ox, a0);
      else
        store_partial(yrow + ox, a0, wo - ox);
    }
  }
}

// The K input vectors (taps kx = 0 .. K-1) of 4 output pixels from ox, one zero-padded ring row.
template <size_t K, size_t S>
inline void padded_taps(const float* row, size_t ox, float32x4_t* v) {
  row += ox * S;
  if constexpr (S == 1) {
#pragma GCC unroll 16
    for (size_t kx = 0; kx < K; ++kx) v[kx] = vld1q_f32(row + kx);
  } else {
#pragma GCC unroll 16
    for (size_t kx = 0; kx < K; kx += 2) {
      const float32x4x2_t d = vld2q_f32(row + kx);
      v[kx] = d.val[0];
      if (kx + 1 < K) v[kx + 1] = d.val[1];
    }
  }
}

// R output rows x 4 pixels at output column ox from input rows in[0 .. (R-1)*S + K), whose taps
// taps(in[i], ox, v) loads. Each loaded input vector feeds every output row whose window covers
// it. A lone row (5x5, or a channel's last row) splits its FMA chain over even and odd kernel
// rows. The loops are unrolled whole (GCC left 4 rows' 9-row loop rolled, weights reloaded from
// the stack).
template <size_t K, size_t S, size_t R, class Taps>
inline void window4(const float* const* in, size_t ox, const float32x4_t* wv, float32x4_t vb,
                    float32x4_t* out, Taps taps) {
  constexpr size_t A = R == 1 ? 2 : 1;
  float32x4_t acc[R][A];
#pragma GCC unroll 16
  for (size_t r = 0; r < R; ++r) {
    acc[r][0] = vb;
    if constexpr (A == 2) acc[r][A - 1] = vdupq_n_f32(0.0f);
  }
#pragma GCC unroll 16
  for (size_t i = 0; i < (R - 1) * S + K; ++i) {
    float32x4_t v[K];
    taps(in[i], ox, v);
#pragma GCC unroll 16
    for (size_t r = 0; r < R; ++r) {
      if (i < r * S || i - r * S >= K) continue;
      const size_t ky = i - r * S;
#pragma GCC unroll 16
      for (size_t kx = 0; kx < K; ++kx)
        acc[r][ky % A] = vfmaq_f32(acc[r][ky % A], v[kx], wv[ky * K + kx]);
    }
  }
#pragma GCC unroll 16
  for (size_t r = 0; r < R; ++r) out[r] = A == 2 ? vaddq_f32(acc[r][0], acc[r][A - 1]) : acc[r][0];
}

// ---- 3x3 with one pixel of padding, read in place (no ring copy).
// MobileNet-style layers (pad 1; stride 1 "same", or stride 2 on an even size) need no padded
// copy: the left pad is a lane shifted in from a zero vector, the right pad (stride 1) one shifted
// in at the end, and rows above / below the channel read a static zero row. Under qemu this
// removed the ring's per-row copies and per-step slot arithmetic, about 1/3 of MobileNetV2's
// depthwise instructions.
constexpr size_t kZeroRowFloats = 1024;
alignas(16) const float kZeroRow[kZeroRowFloats] = {};

// Whether dw3x3_direct<S> covers this geometry (else the ring does).
template <size_t S>
bool dw3x3_direct_fits(size_t h, size_t w, size_t pad_top, size_t pad_left, size_t ho, size_t wo) {
  if (pad_top != 1 || pad_left != 1 || w > kZeroRowFloats) return false;
  if constexpr (S == 1)
    return ho == h && wo == w && w >= 5;  // w >= 5: the first and last vectors differ
  else
    return h % 2 == 0 && w % 2 == 0 && ho == h / 2 && wo == w / 2 && wo >= 4;
}

enum class Edge { kLeft, kInner, kRight };

// The 3 input vectors (taps kx = 0, 1, 2) of 4 output pixels from ox, one input row. Stride 2
// de-interleaves: the kx = 1 / 2 taps are the even / odd lanes at 2*ox, kx = 0 the odd lanes
// one pair earlier.
template <size_t S, Edge E>
inline void taps3(const float* row, size_t ox, float32x4_t* v) {
  const float32x4_t zero = vdupq_n_f32(0.0f);
  if constexpr (S == 1) {
    v[1] = vld1q_f32(row + ox);
    v[0] = E == Edge::kLeft ? vextq_f32(zero, v[1], 3) : vld1q_f32(row + ox - 1);
    v[2] = E == Edge::kRight ? vextq_f32(v[1], zero, 1) : vld1q_f32(row + ox + 1);
  } else {
    const float32x4x2_t d = vld2q_f32(row + 2 * ox);
    v[1] = d.val[0];
    v[2] = d.val[1];
    v[0] = E == Edge::kLeft ? vextq_f32(zero, d.val[1], 3) : vld2q_f32(row + 2 * ox - 2).val[1];
  }
}

// R output rows x 4 pixels at ox of the in-place 3x3, clamped and stored to yr[r] + ox.
template <size_t S, size_t R, Edge E>
inline void dw3x3_vector(const float* const* in, size_t ox, const float32x4_t* wv, float32x4_t vb,
                         float32x4_t vmin, float32x4_t vmax, float* const* yr) {
  float32x4_t acc[R];
  window4<3, S, R>(in, ox, wv, vb, acc, taps3<S, E>);
#pragma GCC unroll 16
  for (size_t r = 0; r < R; ++r) vst1q_f32(yr[r] + ox, vminq_f32(vmaxq_f32(acc[r], vmin), vmax));
}

template <size_t S>
void dw3x3_direct(size_t h, size_t w, const float* x, size_t ho, size_t wo, const float32x4_t* wv,
                  float32x4_t vb, float32x4_t vmin, float32x4_t vmax, float* y) {
  constexpr size_t kRows = 4;  // output rows per step: each loaded vector feeds up to 3 of them
  auto rows = [&](auto rc, const float* const* in, size_t oy) {
    constexpr size_t R = decltype(rc)::value;
    float* yr[R];
    for (size_t r = 0; r < R; ++r) yr[r] = y + (oy + r) * wo;
    dw3x3_vector<S, R, Edge::kLeft>(in, 0, wv, vb, vmin, vmax, yr);
    // Stride 1: inner vectors read x[ox + 4], so the last vector (x[w] is the pad) is a right
    // edge. Stride 2 reads at most x[2 * ox + 7] = x[w - 1] for the last full vector.
    const size_t inner_end = S == 1 ? w - 4 : wo - 3;  // inner vectors start below this
    size_t ox = 4;
    for (; ox < inner_end; ox += 4)
      dw3x3_vector<S, R, Edge::kInner>(in, ox, wv, vb, vmin, vmax, yr);
    if (S == 1)
      dw3x3_vector<S, R, Edge::kRight>(in, wo - 4, wv, vb, vmin, vmax, yr);
    else if (ox < wo)  // a last vector ending at the row's end (it recomputes a few pixels)
      dw3x3_vector<S, R, Edge::kInner>(in, wo - 4, wv, vb, vmin, vmax, yr);
  };
  const float* in[(kRows - 1) * S + 3];
  for (size_t oy = 0; oy < ho; oy += kRows) {
    const size_t r = std::min(kRows, ho - oy);
    for (size_t i = 0; i < (r - 1) * S + 3; ++i) {
      const ptrdiff_t iy = ptrdiff_t(oy * S + i) - 1;
      in[i] = iy < 0 || iy >= ptrdiff_t(h) ? kZeroRow : x + size_t(iy) * w;
    }
    dwconv_ring::rows_of<kRows>(r, rows, in, oy);
  }
}

template <size_t K, size_t S>
void dwconv_chw(size_t h, size_t w, const float* x, size_t pad_top, size_t pad_left, size_t ho,
                size_t wo, const float* k, float bias, float* y, const f32_dwconv_params* p) {
  float32x4_t wv[K * K];
  for (size_t i = 0; i < K * K; ++i) wv[i] = vdupq_n_f32(k[i]);
  const float32x4_t vmin = vdupq_n_f32(p->minmax.min);
  const float32x4_t vmax = vdupq_n_f32(p->minmax.max);
  const float32x4_t vb = vdupq_n_f32(bias);
  if constexpr (K == 3) {
    if (dw3x3_direct_fits<S>(h, w, pad_top, pad_left, ho, wo))
      return dw3x3_direct<S>(h, w, x, ho, wo, wv, vb, vmin, vmax, y);
  }
  const float* const yend = y + ho * wo;
  auto clamp = [&](float32x4_t v) { return vminq_f32(vmaxq_f32(v, vmin), vmax); };
  // 3x3: 4 output rows per step, so each loaded vector feeds up to 3 of them (2 rows per step
  // cost 3 instructions per fmla under qemu, 4 rows ~2.2). 5x5: one row per step (25 weights + a
  // second row's accumulators and loads would spill).
  constexpr size_t kRows = K == 3 ? 4 : 1;
  auto rows = [&](auto rc, const float* const* rin, size_t oy) {
    constexpr size_t R = decltype(rc)::value;
    float* yr = y + oy * wo;
    float32x4_t acc[R];
    if (wo >= 4) {
      // Full vectors, then one ending at the last pixel (it recomputes a few).
      for (size_t ox = 0;; ox += 4) {
        if (ox + 4 > wo) ox = wo - 4;
        window4<K, S, R>(rin, ox, wv, vb, acc, padded_taps<K, S>);
        for (size_t r = 0; r < R; ++r) vst1q_f32(yr + r * wo + ox, clamp(acc[r]));
        if (ox + 4 == wo) break;
      }
    } else {
      // Narrow rows: the extra lanes land in the next rows, written after this one; a store
      // that would pass the channel's end writes only the row's pixels.
      window4<K, S, R>(rin, 0, wv, vb, acc, padded_taps<K, S>);
      for (size_t r = 0; r < R; ++r) {
        float* o = yr + r * wo;
        if (o + 4 <= yend) {
          vst1q_f32(o, clamp(acc[r]));
        } else {
          float t[4];
          vst1q_f32(t, clamp(acc[r]));
          for (size_t j = 0; j < wo; ++j) o[j] = t[j];
        }
      }
    }
  };
  dwconv_ring::run<K, S, 4, kRows>(h, w, x, pad_top, pad_left, ho, wo, rows);
}

}  // namespace

EDGEFIT_DEFINE_DWCONV_KERNELS(neonfma)

}  // namespace edgefit
