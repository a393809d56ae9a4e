// NEON+FMA depthwise convolution for 3x3 and 5x5 kernels at stride 1 and 2 (dilation 1). 3x3: 8
// output pixels of a row per step in two accumulators; 5x5: 4 pixels per step (GCC broadcasts the
// 25 weights into registers, and a second pixel vector would spill them), even and odd kernel
// rows in two accumulators to halve the FMA chain. A last partial vector's extra lanes are computed
// from the readable slack past the row (f32-dwconv.h guarantees 32 floats) and not stored.
// Stride 2 de-interleaves with vld2q_f32 and keeps the even lanes.
// Unpadded entry points: rows padded one at a time into a small ring (f32-dwconv-ring.h; NEON has
// no masked loads), 4 pixels per vector, two output rows per step for 3x3 (each loaded vector
// feeds both), even and odd kernel rows in separate accumulators.
#include <arm_neon.h>

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

// R output rows x 4 pixels at output column ox from padded rows in[0 .. (R-1)*S + K).
template <size_t K, size_t S, size_t R>
inline void window4(const float* const* in, size_t ox, const float32x4_t* wv, float32x4_t vb,
                    float32x4_t* out) {
  float32x4_t acc[R][2];
  for (size_t r = 0; r < R; ++r) {
    acc[r][0] = vb;
    acc[r][1] = vdupq_n_f32(0.0f);
  }
  for (size_t i = 0; i < (R - 1) * S + K; ++i) {
    const float* row = in[i] + ox * S;
    float32x4_t v[K];
    if constexpr (S == 1) {
      for (size_t kx = 0; kx < K; ++kx) v[kx] = vld1q_f32(row + kx);
    } else {
      for (size_t kx = 0; kx < K; kx += 2) {
        const float32x4x2_t d = vld2q_f32(row + kx);
        v[kx] = d.val[0];
        if (kx + 1 < K) v[kx + 1] = d.val[1];
      }
    }
    for (size_t r = 0; r < R; ++r) {
      if (i < r * S || i - r * S >= K) continue;
      const size_t ky = i - r * S;
      for (size_t kx = 0; kx < K; ++kx)
        acc[r][ky % 2] = vfmaq_f32(acc[r][ky % 2], v[kx], wv[ky * K + kx]);
    }
  }
  for (size_t r = 0; r < R; ++r) out[r] = vaddq_f32(acc[r][0], acc[r][1]);
}

template <size_t K, size_t S>
void dwconv_chw(size_t h, size_t w, const float* x, size_t pad_top, size_t pad_left, size_t ho,
                size_t wo, const float* k, float bias, float* y, const f32_dwconv_params* p) {
  float32x4_t wv[K * K];
  for (size_t i = 0; i < K * K; ++i) wv[i] = vdupq_n_f32(k[i]);
  const float32x4_t vmin = vdupq_n_f32(p->minmax.min);
  const float32x4_t vmax = vdupq_n_f32(p->minmax.max);
  const float32x4_t vb = vdupq_n_f32(bias);
  const float* const yend = y + ho * wo;
  auto clamp = [&](float32x4_t v) { return vminq_f32(vmaxq_f32(v, vmin), vmax); };
  // 5x5 computes one row at a time (25 weights + two rows of accumulators would spill).
  auto rows = [&](auto rc, const float* const* in, size_t oy) {
    constexpr size_t R = K == 3 ? decltype(rc)::value : 1;
    for (size_t r0 = 0; r0 < decltype(rc)::value; r0 += R) {
      const float* const* rin = in + r0 * S;
      float* yr = y + (oy + r0) * wo;
      float32x4_t acc[R];
      if (wo >= 4) {
        // Full vectors, then one ending at the last pixel (it recomputes a few).
        for (size_t ox = 0;; ox += 4) {
          if (ox + 4 > wo) ox = wo - 4;
          window4<K, S, R>(rin, ox, wv, vb, acc);
          for (size_t r = 0; r < R; ++r) vst1q_f32(yr + r * wo + ox, clamp(acc[r]));
          if (ox + 4 == wo) break;
        }
      } else {
        // Narrow rows: the extra lanes land in the next rows, written after this one; a store
        // that would pass the channel's end writes only the row's pixels.
        window4<K, S, R>(rin, 0, wv, vb, acc);
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
    }
  };
  dwconv_ring::run<K, S, 4>(h, w, x, pad_top, pad_left, ho, wo, rows);
}

}  // namespace

EDGEFIT_DEFINE_DWCONV_KERNELS(neonfma)

}  // namespace edgefit
