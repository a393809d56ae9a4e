// NEON+FMA depthwise convolution for 3x3 and 5x5 kernels at stride 1 and 2 (dilation 1). 3x3: 8
// output pixels of a row per step in two accumulators; 5x5: 4 pixels per step (GCC broadcasts the
// 25 weights into registers, and a second pixel vector would spill them), even and odd kernel
// rows in two accumulators to halve the FMA chain. A last partial vector's extra lanes are computed
// from the readable slack past the row (f32-dwconv.h guarantees 32 floats) and not stored.
// Stride 2 de-interleaves with vld2q_f32 and keeps the even lanes.
#include <arm_neon.h>

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

}  // namespace

void f32_dwconv_ukernel_3x3s1__neonfma(size_t ho, size_t wo, const float* xpad, size_t xpad_stride,
                                       const float* w, float bias, float* y,
                                       const f32_dwconv_params* p) {
  dwconv<3, 1>(ho, wo, xpad, xpad_stride, w, bias, y, p);
}
void f32_dwconv_ukernel_3x3s2__neonfma(size_t ho, size_t wo, const float* xpad, size_t xpad_stride,
                                       const float* w, float bias, float* y,
                                       const f32_dwconv_params* p) {
  dwconv<3, 2>(ho, wo, xpad, xpad_stride, w, bias, y, p);
}
void f32_dwconv_ukernel_5x5s1__neonfma(size_t ho, size_t wo, const float* xpad, size_t xpad_stride,
                                       const float* w, float bias, float* y,
                                       const f32_dwconv_params* p) {
  dwconv<5, 1>(ho, wo, xpad, xpad_stride, w, bias, y, p);
}
void f32_dwconv_ukernel_5x5s2__neonfma(size_t ho, size_t wo, const float* xpad, size_t xpad_stride,
                                       const float* w, float bias, float* y,
                                       const f32_dwconv_params* p) {
  dwconv<5, 2>(ho, wo, xpad, xpad_stride, w, bias, y, p);
}

}  // namespace edgefit
