// AVX2+FMA depthwise convolution for 3x3 and 5x5 kernels at stride 1 and 2: 8 output pixels of
// a row per vector; stride 2 loads 16 inputs and keeps the even ones.
// Unpadded entry points read the channel in place (no padded copy): plain loads inside it, masked
// loads (zeros for the padding) at its edges, or for 3x3 stride 1 "same" padding one load per row
// whose in-register shifts give the edge taps; two output rows per step (see step() below).
#include <immintrin.h>

#include <vector>

#include "kernels/f32-dwconv/f32-dwconv.h"

namespace edgefit {
namespace {

inline __m256i tail_mask(size_t n) {
  alignas(32) static const int32_t kMask[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                0,  0,  0,  0,  0,  0,  0,  0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMask + 8 - n));
}

template <size_t S>
inline __m256 load_strided(const float* p) {
  if constexpr (S == 1) {
    return _mm256_loadu_ps(p);
  } else {
    const __m256 lo = _mm256_loadu_ps(p);
    const __m256 hi = _mm256_loadu_ps(p + 8);
    const __m256 ev = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), _MM_SHUFFLE(3, 1, 2, 0)));
  }
}

template <size_t K, size_t S>
void dwconv(size_t ho, size_t wo, const float* xpad, size_t stride, const float* w, float bias,
            float* y, const f32_dwconv_params* p) {
  __m256 wv[K * K];
  for (size_t i = 0; i < K * K; ++i) wv[i] = _mm256_broadcast_ss(w + i);
  const __m256 vmin = _mm256_set1_ps(p->minmax.min);
  const __m256 vmax = _mm256_set1_ps(p->minmax.max);
  const __m256 vb = _mm256_set1_ps(bias);
  for (size_t oy = 0; oy < ho; ++oy) {
    const float* rows = xpad + oy * S * stride;
    float* yrow = y + oy * wo;
    for (size_t ox = 0; ox < wo; ox += 8) {
      __m256 acc = vb;
      for (size_t ky = 0; ky < K; ++ky) {
        const float* r = rows + ky * stride + ox * S;
        for (size_t kx = 0; kx < K; ++kx)
          acc = _mm256_fmadd_ps(load_strided<S>(r + kx), wv[ky * K + kx], acc);
      }
      acc = _mm256_min_ps(_mm256_max_ps(acc, vmin), vmax);
      if (ox + 8 <= wo)
        _mm256_storeu_ps(yrow + ox, acc);
      else
        _mm256_maskstore_ps(yrow + ox, tail_mask(wo - ox), acc);
    }
  }
}

// ---- Unpadded entry points ----------------------------------------------------------------

// 8 floats of a row from index st (may be negative): plain load inside the row, else a masked load
// of the lanes inside [0, w) (zeros elsewhere: the padding); no byte outside the row is read.
template <bool Edge>
inline __m256 load_row(const float* row, ptrdiff_t st, ptrdiff_t w) {
  if constexpr (!Edge) {
    return _mm256_loadu_ps(row + st);
  } else {
    const __m256i idx =
        _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(int(st)));
    const __m256i in = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), idx),
                                           _mm256_cmpgt_epi32(_mm256_set1_epi32(int(w)), idx));
    return _mm256_maskload_ps(row + st, in);
  }
}

// How a window's taps are loaded: plain loads (inside the row), masked loads (any edge), or, for
// 3x3 stride 1 with one column of padding each side ("same"), one load per row whose shifted
// copies give the taps that reach into the padding: kLeft (first vector), kRight (last vector),
// kNarrow (rows of at most 8 pixels: one masked load per row).
enum Taps { kPlain, kMasked, kLeft, kRight, kNarrow };

inline __m256 shift_in_zero_left(__m256 c) {  // [0, c0 .. c6]
  const __m256 t = _mm256_permutevar8x32_ps(c, _mm256_setr_epi32(0, 0, 1, 2, 3, 4, 5, 6));
  return _mm256_blend_ps(t, _mm256_setzero_ps(), 0x01);
}
inline __m256 shift_in_zero_right(__m256 c) {  // [c1 .. c7, 0]
  const __m256 t = _mm256_permutevar8x32_ps(c, _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 7));
  return _mm256_blend_ps(t, _mm256_setzero_ps(), 0x80);
}

inline __m256 unshuffle(__m256 v) {
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), _MM_SHUFFLE(3, 1, 2, 0)));
}

// R output rows x 8 pixels at output column ox, from input rows in[0 .. (R-1)*S + K) (a zero row
// stands in for rows in the padding). Column c of the window reads x[ox*S + c - pad_left].
// Stride 2 keeps the de-interleaved lane order [0 1 4 5 2 3 6 7] (one in-lane shuffle per tap,
// taps 2j and 2j+1 sharing their two loads) and restores it once at the end.
template <size_t K, size_t S, size_t R, Taps M>
inline void window8(const float* const* in, ptrdiff_t c0, ptrdiff_t w, const __m256* wv, __m256 vb,
                    __m256* out) {
  constexpr bool Edge = M != kPlain;
  // Stride 2 sums even and odd kernel rows apart (half the FMA latency chain); stride 1 has
  // registers for one accumulator per row only (9 weights stay in registers).
  constexpr size_t A = S == 1 ? 1 : 2;
  __m256 acc[R][A];
  for (size_t r = 0; r < R; ++r) {
    acc[r][0] = vb;
    if constexpr (A == 2) acc[r][A - 1] = _mm256_setzero_ps();
  }
  for (size_t i = 0; i < (R - 1) * S + K; ++i) {
    const float* row = in[i];
    __m256 v[K];
    if constexpr (M == kLeft || M == kRight || M == kNarrow) {
      static_assert(K == 3 && S == 1, "shifted taps are for 3x3 stride 1");
      if constexpr (M == kLeft) {  // c0 = -1
        v[1] = _mm256_loadu_ps(row);
        v[0] = shift_in_zero_left(v[1]);
        v[2] = _mm256_loadu_ps(row + 1);
      } else if constexpr (M == kRight) {  // c0 + 9 = w + 1
        v[0] = _mm256_loadu_ps(row + c0);
        v[1] = _mm256_loadu_ps(row + c0 + 1);
        v[2] = shift_in_zero_right(v[1]);
      } else {  // c0 = -1, w <= 8
        v[1] = _mm256_maskload_ps(row, tail_mask(size_t(w)));
        v[0] = shift_in_zero_left(v[1]);
        v[2] = shift_in_zero_right(v[1]);
      }
    } else if constexpr (S == 1) {
      for (size_t kx = 0; kx < K; ++kx) {
        v[kx] = load_row<Edge>(row, c0 + ptrdiff_t(kx), w);
        // Kept in a register for the R rows' FMAs (else GCC folds the load into each of them).
        __asm__("" : "+x"(v[kx]));
      }
    } else {
      for (size_t kx = 0; kx < K; kx += 2) {
        const __m256 lo = load_row<Edge>(row, c0 + ptrdiff_t(kx), w);
        const __m256 hi = load_row<Edge>(row, c0 + ptrdiff_t(kx) + 8, w);
        v[kx] = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
        if (kx + 1 < K) v[kx + 1] = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
      }
    }
    for (size_t r = 0; r < R; ++r) {
      if (i < r * S || i - r * S >= K) continue;
      const size_t ky = i - r * S;
      for (size_t kx = 0; kx < K; ++kx)
        acc[r][ky % A] = _mm256_fmadd_ps(v[kx], wv[ky * K + kx], acc[r][ky % A]);
    }
  }
  for (size_t r = 0; r < R; ++r) {
    out[r] = A == 2 ? _mm256_add_ps(acc[r][0], acc[r][A - 1]) : acc[r][0];
    if constexpr (S == 2) out[r] = unshuffle(out[r]);
  }
}

// Two output rows per step (each loaded input vector feeds both), 8 pixels per vector: vectors
// whose window leaves the row (masked loads), the interior ones (plain loads, a tight loop), and a
// last vector ending at the last pixel (it recomputes a few; no masked store). Rows narrower than
// 8 pixels: one vector whose extra lanes land in the next rows, written after this one; a store
// that would pass the channel's end is masked.
template <size_t K, size_t S, size_t R>
inline void step(const float* const* rows, size_t wo, ptrdiff_t w, ptrdiff_t pl, const __m256* wv,
                 __m256 vb, __m256 vmin, __m256 vmax, float* y, const float* yend) {
  const float* in[R * S + K - S];
  for (size_t i = 0; i < R * S + K - S; ++i) in[i] = rows[i];
  __m256 acc[R];
  auto store = [&](size_t ox) {
    for (size_t r = 0; r < R; ++r)
      _mm256_storeu_ps(y + r * wo + ox, _mm256_min_ps(_mm256_max_ps(acc[r], vmin), vmax));
  };
  if constexpr (K == 3 && S == 1) {
    if (pl == 1 && ptrdiff_t(wo) == w) {  // "same" padding: no masked loads but in narrow rows
      if (wo <= 8) {
        window8<K, S, R, kNarrow>(in, -1, w, wv, vb, acc);
      } else {
        window8<K, S, R, kLeft>(in, -1, w, wv, vb, acc);
        store(0);
        size_t ox = 8;
        for (; ox + 8 < wo; ox += 8) {  // every vector but the last is inside the row
          window8<K, S, R, kPlain>(in, ptrdiff_t(ox) - 1, w, wv, vb, acc);
          store(ox);
        }
        window8<K, S, R, kRight>(in, ptrdiff_t(wo) - 9, w, wv, vb, acc);
        store(wo - 8);
        return;
      }
      if (wo == 8) {
        store(0);
        return;
      }
    }
  }
  if (wo < 8) {
    if (!(K == 3 && S == 1 && pl == 1 && ptrdiff_t(wo) == w))
      window8<K, S, R, kMasked>(in, -pl, w, wv, vb, acc);
    for (size_t r = 0; r < R; ++r) {
      float* o = y + r * wo;
      const __m256 v = _mm256_min_ps(_mm256_max_ps(acc[r], vmin), vmax);
      if (o + 8 <= yend)
        _mm256_storeu_ps(o, v);
      else
        _mm256_maskstore_ps(o, tail_mask(wo), v);
    }
    return;
  }
  // Interior vectors: ox*S >= pl and ox*S - pl + (K - 1) + 8*S <= w.
  const ptrdiff_t reach = ptrdiff_t(K - 1 + 8 * S);
  size_t ox = 0;
  for (; ox + 8 <= wo && ptrdiff_t(ox * S) < pl; ox += 8) {
    window8<K, S, R, kMasked>(in, ptrdiff_t(ox * S) - pl, w, wv, vb, acc);
    store(ox);
  }
  for (; ox + 8 <= wo && ptrdiff_t(ox * S) - pl + reach <= w; ox += 8) {
    window8<K, S, R, kPlain>(in, ptrdiff_t(ox * S) - pl, w, wv, vb, acc);
    store(ox);
  }
  for (; ox + 8 <= wo; ox += 8) {
    window8<K, S, R, kMasked>(in, ptrdiff_t(ox * S) - pl, w, wv, vb, acc);
    store(ox);
  }
  if (ox < wo) {
    ox = wo - 8;
    window8<K, S, R, kMasked>(in, ptrdiff_t(ox * S) - pl, w, wv, vb, acc);
    store(ox);
  }
}

template <size_t K, size_t S>
void dwconv_chw(size_t h, size_t w, const float* x, size_t pad_top, size_t pad_left, size_t ho,
                size_t wo, const float* k, float bias, float* y, const f32_dwconv_params* p) {
  __m256 wv[K * K];
  for (size_t i = 0; i < K * K; ++i) wv[i] = _mm256_broadcast_ss(k + i);
  const __m256 vmin = _mm256_set1_ps(p->minmax.min);
  const __m256 vmax = _mm256_set1_ps(p->minmax.max);
  const __m256 vb = _mm256_set1_ps(bias);
  // The rows of the top / bottom padding: a static zero row for rows up to kZeroRow floats (a
  // thread_local in a shared library costs a __tls_get_addr call per channel, which showed in
  // layers of many small channels, 7x7 x 960), a thread's own buffer beyond.
  constexpr size_t kZeroRow = 2048;
  alignas(64) static const float kZeros[kZeroRow] = {};
  const float* zero_row = kZeros;
  if (w + 8 > kZeroRow) {
    thread_local std::vector<float> wide;
    if (wide.size() < w + 8) wide.assign(w + 8, 0.0f);
    zero_row = wide.data();
  }
  const float* const yend = y + ho * wo;
  constexpr size_t NS = S + K;  // input rows of two output rows
  const float* in[NS];
  for (size_t oy = 0; oy < ho; oy += 2) {
    for (size_t i = 0; i < NS; ++i) {
      const ptrdiff_t iy = ptrdiff_t(oy * S + i) - ptrdiff_t(pad_top);
      in[i] = iy < 0 || iy >= ptrdiff_t(h) ? zero_row : x + size_t(iy) * w;
    }
    if (ho - oy >= 2)
      step<K, S, 2>(in, wo, ptrdiff_t(w), ptrdiff_t(pad_left), wv, vb, vmin, vmax, y + oy * wo,
                    yend);
    else
      step<K, S, 1>(in, wo, ptrdiff_t(w), ptrdiff_t(pad_left), wv, vb, vmin, vmax, y + oy * wo,
                    yend);
  }
}

}  // namespace

EDGEFIT_DEFINE_DWCONV_KERNELS(avx2_fma)

}  // namespace edgefit
