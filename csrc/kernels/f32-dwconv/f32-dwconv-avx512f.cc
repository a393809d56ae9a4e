// AVX-512 depthwise convolution, stride 1, over each channel as one flat run of pixels.
//
// When the output is as wide as the input (wo == w) and the padding is centred (as in
// MobileNet-style networks), output pixel q = oy * w + ox reads input pixel
// q + (ky - pad_top) * w + (kx - K / 2) for tap (ky, kx): the same offset for every pixel. So 16
// consecutive output pixels are one vector whatever the row length: a 14x14 plane is 13 vectors
// (94 % of lanes used), a 7x7 one 4 (77 %), where row-at-a-time kernels
// (f32-dwconv-avx2-fma.cc) use 14 of 16 and 7 of 8 lanes and add edge passes per row.
// Each input row is loaded once per vector (the window's next 16 floats); its horizontal taps are
// lane shifts (valignd) of the previous / current / next vector, zeroed where a lane's column
// ox + kx - K / 2 falls outside [0, w). Rows outside the input read as zeros: loads near the
// channel's first and last rows are masked to the channel, so nothing outside it is read.
// The column masks repeat every row, whichever channel: they are worked out once per call (per
// run of up to kChunk pixels) for the whole run of channels. Measured (csrc/README.md): per-vector
// masks cost as much as the convolution on 7x7 planes, and nine unaligned loads per vector
// instead of three ran at 22 GFMA/s against the AVX2 kernel's 28 (every 64-byte load not on a
// line boundary splits).
// Other geometries go to the AVX2 kernels.
#include <immintrin.h>

#include <algorithm>

// GCC 12's own AVX-512 intrinsics pass an undefined source (_mm512_undefined_ps) to their
// builtins and then warn that it "may be used uninitialized" once inlined here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "kernels/f32-dwconv/f32-dwconv.h"

namespace edgefit {
namespace {

constexpr ptrdiff_t kLanes = 16;
constexpr ptrdiff_t kChunkVectors = 256;  // column masks of up to 256 vectors: 4096 pixels
constexpr ptrdiff_t kChunk = kChunkVectors * kLanes;

// 16 input floats from flat index i of the channel: a plain load inside it, else a masked load of
// the lanes inside [0, hw) (zeros elsewhere).
inline __m512 load_in(const float* x, ptrdiff_t i, ptrdiff_t hw) {
  if (i >= 0 && i + kLanes <= hw) return _mm512_loadu_ps(x + i);
  const __m512i idx =
      _mm512_add_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                       _mm512_set1_epi32(int32_t(i)));
  const __mmask16 in = _mm512_cmplt_epu32_mask(idx, _mm512_set1_epi32(int32_t(hw)));
  // Lane 0's address may lie outside the channel; masked lanes are never read.
  const float* at = reinterpret_cast<const float*>(reinterpret_cast<uintptr_t>(x) +
                                                   uintptr_t(i * ptrdiff_t(sizeof(float))));
  return _mm512_maskz_loadu_ps(in, at);
}

// Lane j of the result holds cur[j + C] (C in -15..15) from the window prev | cur | next, zero
// where m is clear.
template <int C>
inline __m512 shifted(__mmask16 m, __m512 prev, __m512 cur, __m512 next) {
  if constexpr (C < 0)
    return _mm512_castsi512_ps(
        _mm512_maskz_alignr_epi32(m, _mm512_castps_si512(cur), _mm512_castps_si512(prev), 16 + C));
  else if constexpr (C > 0)
    return _mm512_castsi512_ps(
        _mm512_maskz_alignr_epi32(m, _mm512_castps_si512(next), _mm512_castps_si512(cur), C));
  else
    return cur;
}

// Taps kx = KX..K-1 of one input row into acc.
template <size_t K, size_t KX = 0>
inline __m512 row_taps(__m512 acc, const __mmask16* col, __m512 prev, __m512 cur, __m512 next,
                       const __m512* wrow) {
  if constexpr (KX == K) {
    return acc;
  } else {
    constexpr int C = int(KX) - int(K / 2);
    acc = _mm512_fmadd_ps(shifted<C>(col[KX], prev, cur, next), wrow[KX], acc);
    return row_taps<K, KX + 1>(acc, col, prev, cur, next, wrow);
  }
}

// Output pixels [q0, q1) of one channel; masks[kx][v] are the column masks of vector v of the run.
template <size_t K>
void run(const float* x, ptrdiff_t w, ptrdiff_t hw, ptrdiff_t pad_top, const float* k, float bias,
         float* y, ptrdiff_t q0, ptrdiff_t q1, const __mmask16 (*masks)[kChunkVectors], __m512 vmin,
         __m512 vmax) {
  __m512 wv[K * K];
  for (size_t i = 0; i < K * K; ++i) {
    wv[i] = _mm512_set1_ps(k[i]);
    // Kept in a register: else GCC folds a broadcast load of the tap into every FMA using it.
    __asm__("" : "+v"(wv[i]));
  }
  const __m512 vb = _mm512_set1_ps(bias);
  ptrdiff_t row[K];  // flat index of row ky's centre tap for output pixel 0
  __m512 prev[K], cur[K];
  for (size_t ky = 0; ky < K; ++ky) {
    row[ky] = (ptrdiff_t(ky) - pad_top) * w;
    prev[ky] = load_in(x, row[ky] + q0 - kLanes, hw);
    cur[ky] = load_in(x, row[ky] + q0, hw);
  }
  for (ptrdiff_t q = q0, v = 0; q < q1; q += kLanes, ++v) {
    __mmask16 col[K];
    for (size_t kx = 0; kx < K; ++kx) col[kx] = masks[kx][v];
    // One accumulator per input row: K short FMA chains instead of one K * K long.
    __m512 part[K];
    for (size_t ky = 0; ky < K; ++ky) {
      const __m512 next = load_in(x, row[ky] + q + kLanes, hw);
      part[ky] = row_taps<K>(ky == 0 ? vb : _mm512_setzero_ps(), col, prev[ky], cur[ky], next,
                             wv + ky * K);
      prev[ky] = cur[ky];
      cur[ky] = next;
    }
    __m512 acc = part[0];
    for (size_t ky = 1; ky < K; ++ky) acc = _mm512_add_ps(acc, part[ky]);
    acc = _mm512_min_ps(_mm512_max_ps(acc, vmin), vmax);
    if (q + kLanes <= q1)
      _mm512_storeu_ps(y + q, acc);
    else
      _mm512_mask_storeu_ps(y + q, __mmask16((1u << (q1 - q)) - 1u), acc);
  }
}

template <size_t K>
void dwconv_flat(size_t channels, size_t h, size_t w, const float* x, size_t pad_top, size_t ho,
                 const float* k, const float* bias, float* y, const f32_dwconv_params* p) {
  const ptrdiff_t W = ptrdiff_t(w), hw = ptrdiff_t(h * w), pixels = ptrdiff_t(ho * w);
  const __m512 vmin = _mm512_set1_ps(p->minmax.min), vmax = _mm512_set1_ps(p->minmax.max);
  __mmask16 masks[K][kChunkVectors];
  for (ptrdiff_t q0 = 0; q0 < pixels; q0 += kChunk) {
    const ptrdiff_t q1 = std::min(pixels, q0 + kChunk);
    // Column of every lane of the run's first vector, then 16 pixels on per vector.
    int32_t first[kLanes];
    for (ptrdiff_t i = 0; i < kLanes; ++i) first[i] = int32_t((q0 + i) % W);
    __m512i ox = _mm512_loadu_si512(first);
    const __m512i step = _mm512_set1_epi32(int32_t(kLanes % W)), wvec = _mm512_set1_epi32(W);
    for (ptrdiff_t v = 0; v * kLanes < q1 - q0; ++v) {
      for (size_t kx = 0; kx < K; ++kx) {
        const __m512i c = _mm512_add_epi32(ox, _mm512_set1_epi32(int32_t(kx) - int32_t(K / 2)));
        masks[kx][v] = _mm512_cmplt_epu32_mask(c, wvec);  // a negative column wraps: outside
      }
      const __m512i next = _mm512_add_epi32(ox, step);
      ox = _mm512_mask_sub_epi32(next, _mm512_cmpge_epi32_mask(next, wvec), next, wvec);
    }
    for (size_t c = 0; c < channels; ++c)
      run<K>(x + c * h * w, W, hw, ptrdiff_t(pad_top), k + c * K * K,
             bias != nullptr ? bias[c] : 0.0f, y + c * ho * w, q0, q1, masks, vmin, vmax);
  }
}

// The flat kernel where it applies, else `other` (the AVX2 kernel of the same size).
// Flat indices are 32-bit lanes (planes far below 2^30 pixels: any image the loader admits).
template <size_t K>
void dwconv_s1(f32_dwconv_chw_ukernel_fn other, size_t channels, size_t h, size_t w, const float* x,
               size_t pad_top, size_t pad_left, size_t ho, size_t wo, const float* k,
               const float* bias, float* y, const f32_dwconv_params* p) {
  if (wo != w || pad_left != K / 2 || h * w >= (size_t(1) << 30) || ho * w >= (size_t(1) << 30))
    return other(channels, h, w, x, pad_top, pad_left, ho, wo, k, bias, y, p);
  dwconv_flat<K>(channels, h, w, x, pad_top, ho, k, bias, y, p);
}

}  // namespace

#define EDGEFIT_DEFINE_DWCONV_S1(K)                                                                \
  void f32_dwconv_ukernel_##K##x##K##s1__avx512f(                                                  \
      size_t channels, size_t h, size_t w, const float* x, size_t pad_top, size_t pad_left,        \
      size_t ho, size_t wo, const float* k, const float* bias, float* y,                           \
      const f32_dwconv_params* p) {                                                                \
    dwconv_s1<K>(f32_dwconv_ukernel_##K##x##K##s1__avx2_fma, channels, h, w, x, pad_top, pad_left, \
                 ho, wo, k, bias, y, p);                                                           \
  }
EDGEFIT_DEFINE_DWCONV_S1(3)
EDGEFIT_DEFINE_DWCONV_S1(5)

}  // namespace edgefit
