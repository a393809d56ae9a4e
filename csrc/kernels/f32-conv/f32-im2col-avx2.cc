// AVX2 im2col straight into the f32-gemm packed-B strips: 8 output pixels at a time, read from
// the input row(s) they fall on by masked loads (stride 1; stride 2: two loads + even lanes) or
// a masked gather (other strides); masks zero the padding and the pixels past the block.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "kernels/f32-conv/f32-conv.h"

namespace edgefit {

namespace {

// 8 output pixels span at most 3 output rows when wo >= 4 (smaller images use scalar).
constexpr size_t kMaxSegs = 3;
// (tap, chunk) descriptors worked out per group of chunks (8 pixels each), then applied to every
// channel: the loads depend on the tap (ky, kx), never on the channel. Channels outermost, taps
// inside, as the scalar unfold: a channel's input rows stay in L1 across its taps, and the rows
// of the block are written in order.
constexpr size_t kMaxDescs = 1024;
constexpr size_t kMaxGroupChunks = 64;

// Where one output row's run of a chunk starts: lanes [l0, l1) are pixels (oy, ox0 + l - l0).
struct RowSeg {
  uint32_t oy, ox0;
  uint8_t l0, l1;
};

enum : uint8_t { kZero = 0, kFull = 1, kMasked = 2, kStride2 = 3, kGather = 4 };

// One chunk for one tap: lanes [a[s], b[s]) of segment s read x[c][off[s] + l * sw].
struct TapChunk {
  int32_t off[kMaxSegs];
  uint8_t a[kMaxSegs], b[kMaxSegs];
  uint8_t nseg, kind;
};

inline __m256i lane_mask(const __m256i iota, int a, int b) {
  return _mm256_and_si256(_mm256_cmpgt_epi32(iota, _mm256_set1_epi32(a - 1)),
                          _mm256_cmpgt_epi32(_mm256_set1_epi32(b), iota));
}

}  // namespace

void f32_im2col_packed__avx2(const conv2d_geometry* g, const float* x, size_t k0, size_t kc,
                             size_t p0, size_t np, size_t nr, float* out) {
  const size_t taps = g->kh * g->kw, hw = g->h * g->w, strip_floats = kc * nr;
  // Plain rows (one strip, nr >= np) stay scalar: long memcpy runs measured faster there
  // (3x3 64ch at 56x56: 0.33 vs 0.43 ms; 7x7/2 3ch: 0.64 vs 0.79 ms, few channels per tap).
  if (nr >= np || nr % 8 != 0 || g->wo < 4 || hw * g->sw >= (size_t(1) << 30) || taps > kMaxDescs ||
      np == 0 || kc == 0) {
    f32_im2col_packed__scalar(g, x, k0, kc, p0, np, nr, out);
    return;
  }
  const size_t chunks = (np + nr - 1) / nr * nr / 8;  // whole strips, zero past np
  const size_t group = std::max<size_t>(1, std::min(kMaxGroupChunks, kMaxDescs / taps));
  const ptrdiff_t sw = ptrdiff_t(g->sw);
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i iota_sw = _mm256_mullo_epi32(iota, _mm256_set1_epi32(int32_t(sw)));
  const __m256i lo_idx = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
  const __m256i hi_idx = _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7);
  const __m256i even = _mm256_setr_epi32(-1, 0, -1, 0, -1, 0, -1, 0);
  RowSeg segs[kMaxGroupChunks][kMaxSegs];
  uint8_t nsegs[kMaxGroupChunks];
  TapChunk desc[kMaxDescs];
  for (size_t q0 = 0; q0 < chunks; q0 += group) {
    const size_t nq = std::min(group, chunks - q0);
    // The output rows each chunk's valid pixels fall on (independent of the tap).
    for (size_t q = 0; q < nq; ++q) {
      const size_t first = (q0 + q) * 8;
      const size_t lanes = first < np ? std::min<size_t>(8, np - first) : 0;
      size_t n = 0, l = 0, p = p0 + first;
      while (l < lanes) {
        const size_t oy = p / g->wo, ox = p % g->wo;
        const size_t run = std::min(lanes - l, g->wo - ox);
        segs[q][n++] = RowSeg{uint32_t(oy), uint32_t(ox), uint8_t(l), uint8_t(l + run)};
        l += run;
        p += run;
      }
      nsegs[q] = uint8_t(n);
    }
    for (size_t t = 0; t < taps; ++t) {
      const size_t ky = t / g->kw, kx = t % g->kw;
      // Valid ox for this kx: pl <= ox * sw + kx * dw < w + pl (as in the scalar unfold).
      const ptrdiff_t off_x = ptrdiff_t(kx * g->dw) - ptrdiff_t(g->pl);
      const ptrdiff_t hi_num = ptrdiff_t(g->w) - off_x;
      const size_t lo_kx = off_x >= 0 ? 0 : size_t((-off_x + sw - 1) / sw);
      const size_t hi_kx = hi_num <= 0 ? 0 : size_t((hi_num + sw - 1) / sw);
      for (size_t q = 0; q < nq; ++q) {
        TapChunk& d = desc[t * nq + q];
        d.nseg = 0;
        for (size_t s = 0; s < nsegs[q]; ++s) {
          const RowSeg& r = segs[q][s];
          const ptrdiff_t iy = ptrdiff_t(r.oy * g->sh + ky * g->dh) - ptrdiff_t(g->pt);
          if (iy < 0 || iy >= ptrdiff_t(g->h)) continue;
          const size_t ox1 = r.ox0 + (r.l1 - r.l0);
          const size_t lo = std::max<size_t>(lo_kx, r.ox0), hi = std::min(hi_kx, ox1);
          if (hi <= lo) continue;
          d.a[d.nseg] = uint8_t(r.l0 + (lo - r.ox0));
          d.b[d.nseg] = uint8_t(r.l0 + (hi - r.ox0));
          d.off[d.nseg] = int32_t(iy * ptrdiff_t(g->w) + (ptrdiff_t(r.ox0) - r.l0) * sw + off_x);
          ++d.nseg;
        }
        const bool full = d.nseg == 1 && sw == 1 && d.a[0] == 0 && d.b[0] == 8;
        d.kind = d.nseg == 0 ? kZero
                 : full      ? kFull
                 : sw == 1   ? kMasked
                 : sw == 2   ? kStride2
                             : kGather;
      }
    }
    const size_t c_begin = k0 / taps, c_end = (k0 + kc + taps - 1) / taps;
    for (size_t c = c_begin; c < c_end; ++c) {
      const float* xc = x + c * hw;
      const size_t t_begin = c == c_begin ? k0 - c * taps : 0;
      const size_t t_end = std::min(taps, k0 + kc - c * taps);
      for (size_t t = t_begin; t < t_end; ++t) {
        const size_t kk = c * taps + t - k0;
        const TapChunk* dt = desc + t * nq;
        for (size_t q = 0; q < nq; ++q) {
          const TapChunk& d = dt[q];
          __m256 v;
          if (d.kind == kFull) {
            v = _mm256_loadu_ps(xc + d.off[0]);
          } else if (d.kind == kMasked) {
            // Masked-off lanes are neither read nor faulted on, so off may point before x.
            v = _mm256_maskload_ps(xc + d.off[0], lane_mask(iota, d.a[0], d.b[0]));
            for (size_t s = 1; s < d.nseg; ++s)
              v = _mm256_or_ps(v,
                               _mm256_maskload_ps(xc + d.off[s], lane_mask(iota, d.a[s], d.b[s])));
          } else if (d.kind == kStride2) {
            // Lanes at the even positions of 16 floats: two masked loads (odd positions off, so
            // nothing past a lane's element is read), the evens picked by a shuffle per 128-bit
            // half and a cross-half permute.
            v = _mm256_setzero_ps();
            for (size_t s = 0; s < d.nseg; ++s) {
              const __m256i m = lane_mask(iota, d.a[s], d.b[s]);
              const __m256i mlo = _mm256_and_si256(_mm256_permutevar8x32_epi32(m, lo_idx), even);
              const __m256i mhi = _mm256_and_si256(_mm256_permutevar8x32_epi32(m, hi_idx), even);
              const __m256 lo = _mm256_maskload_ps(xc + d.off[s], mlo);
              const __m256 hi = _mm256_maskload_ps(xc + d.off[s] + 8, mhi);
              const __m256 ev = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
              v = _mm256_or_ps(v, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev),
                                                                         _MM_SHUFFLE(3, 1, 2, 0))));
            }
          } else if (d.kind == kGather) {
            v = _mm256_setzero_ps();
            for (size_t s = 0; s < d.nseg; ++s)
              v = _mm256_mask_i32gather_ps(v, xc,
                                           _mm256_add_epi32(_mm256_set1_epi32(d.off[s]), iota_sw),
                                           _mm256_castsi256_ps(lane_mask(iota, d.a[s], d.b[s])), 4);
          } else {
            v = _mm256_setzero_ps();
          }
          const size_t first = (q0 + q) * 8;
          _mm256_storeu_ps(out + (first / nr) * strip_floats + kk * nr + first % nr, v);
        }
      }
    }
  }
}

}  // namespace edgefit
