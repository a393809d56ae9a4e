// Transposed-output GEMM driver (f32-gemm.h): weight strips of NR output channels, B's pixels
// broadcast MR at a time, each strip's [P][NR] result transposed into C by the ISA's store.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/f32-gemm/f32-gemm.h"

namespace edgefit {

namespace {

// K rows per tile call: a strip's [kc][NR] weights (2 KB at NR = 16) and the [kc][P] rows of B
// they meet (6 KB at 7x7) stay in L1 while every pixel group passes over them; the partial
// [P][NR] tile column is reloaded per K block from L1. Measured on MobileNetV2's 7x7 layers (in
// one process, alternating): kc = 32 1.10x faster than the column tiles, 64 1.07x, 128 0.97x.
constexpr size_t kTileKc = 32;
// Images up to this many pixels (7x7, 8x8) take the transposed path: at 14x14 (196 = 12 x 16 + 4)
// the column tiles lose little and measured as fast (1024->256: 50.3 vs 51.2 GFMA/s).
constexpr size_t kMaxPixels = 64;
// The strips are one sequential stream of weights, cold in a whole model (ResNet-50's 7x7 layers
// hold 60 MB of them, read from DRAM once per inference), that the hardware prefetcher follows
// only within a 4 KB page. Each K block therefore asks for the lines 4 KB ahead into L2
// (prefetcht2). Measured on Zen 4 with weights cycled past L3, in one process: 2048<-512 at 7x7
// 82.5 -> 97.5 GFLOP/s, 512<-4608 90.6 -> 97.4 (2 / 8 / 16 KB ahead: 90.8-95.0).
constexpr size_t kPrefetchBytes = 4096;

// Direct convolutions (f32_conv_t_*) against the unfold + blocked GEMM they replace, ResNet-50's
// stride-1 3x3 layers in the whole model (alternating processes, per-node medians): 64ch @56x56
// 4-6 % faster at 1 thread and 6-9 % at 2, 256ch @14x14 3-5 % and 7-13 %. 128ch @28x28 was mixed
// at 1 thread (-3 % .. +1 %) and 4-9 % slower at 2, so images between kMaxPixelsSmall and
// kMinPixelsLarge keep the unfold. Stride 2 broadcasts every other pixel and lost in isolation
// (0.87-0.94x), and at 7x7 the unfold + transposed tiles above stay ahead (0.92-0.98x).
// Output pixels per band at most: its [band][NR] tile column (24 KB at NR = 16) stays in L1
// while all taps and channels accumulate into it.
constexpr size_t kConvBandPixels = 384;
// Channels per tile call (speed-ups over the unfold in a C++ bench of single layers, L2 flushed,
// 4 runs each): K blocks of 32 at 56x56 (1.17-1.21x vs 1.07-1.19x at 128), of 128 on smaller
// images (14x14: 1.01-1.07x vs 0.83-0.94x at 32).
constexpr size_t kConvKcLarge = 32, kConvKcSmall = 128, kConvLargePixels = 2048;
constexpr size_t kMaxPixelsSmall = 256;  // 14x14 and 16x16 images
constexpr size_t kMinPixelsLarge = kConvLargePixels;
// Fewer input channels make the taps' K blocks too short to pay for the tile's loads and stores
// (ResNet-50's conv1 has 3).
constexpr size_t kConvMinChannels = 8;

}  // namespace

size_t f32_gemm_t_packed_size(size_t m, size_t k, size_t nr) { return ceil_div(m, nr) * nr * k; }

void f32_gemm_t_pack(size_t m, size_t k, size_t nr, const float* w, float* strips) {
  const size_t n_strips = ceil_div(m, nr);
  for (size_t s = 0; s < n_strips; ++s) {
    float* out = strips + s * k * nr;
    for (size_t kk = 0; kk < k; ++kk)
      for (size_t j = 0; j < nr; ++j) {
        const size_t row = s * nr + j;
        out[kk * nr + j] = row < m ? w[row * k + kk] : 0.0f;
      }
  }
}

bool f32_gemm_t_preferred(const f32_gemm_t_config& cfg, size_t m, size_t p) {
  return cfg.fn != nullptr && p <= kMaxPixels && m >= cfg.nr;
}

size_t f32_gemm_t_scratch(const f32_gemm_t_config& cfg, size_t p) {
  return ceil_div(std::max<size_t>(p, 1), 8) * 8 * cfg.nr;
}

void f32_gemm_t_strips(const f32_gemm_t_config& cfg, size_t m, size_t k, const float* strips,
                       size_t s0, size_t s1, const float* b, size_t ldb, size_t p,
                       const float* bias, float* c, size_t ldc, float* scratch,
                       const f32_minmax* params) {
  const size_t nr = cfg.nr, mr = cfg.mr;
  // Addresses as integers: a prefetch past the last strip must not form an out-of-bounds pointer.
  const uintptr_t strips_end = reinterpret_cast<uintptr_t>(strips + ceil_div(m, nr) * k * nr);
  for (size_t s = s0; s < s1; ++s) {
    const float* ws = strips + s * k * nr;
    for (size_t k0 = 0; k0 < k; k0 += kTileKc) {
      const size_t kb = std::min(kTileKc, k - k0);
      const uintptr_t ahead = reinterpret_cast<uintptr_t>(ws + k0 * nr) + kPrefetchBytes;
      const uintptr_t ahead_end = std::min(strips_end, ahead + kb * nr * sizeof(float));
      for (uintptr_t a = ahead; a < ahead_end; a += 64)
        __builtin_prefetch(reinterpret_cast<const void*>(a), 0, 1);
      for (size_t i0 = 0; i0 < p; i0 += mr)
        cfg.fn(std::min(mr, p - i0), kb, b + k0 * ldb + i0, ldb, ws + k0 * nr, scratch + i0 * nr,
               nr, k0 != 0);
    }
    if (k == 0) std::memset(scratch, 0, p * nr * sizeof(float));
    const size_t row0 = s * nr;
    cfg.store(p, std::min(nr, m - row0), nr, scratch, bias != nullptr ? bias + row0 : nullptr,
              c + row0 * ldc, ldc, params);
  }
}

f32_conv_t_shape f32_conv_t_padded(const conv2d_geometry& g) {
  f32_conv_t_shape ps;
  ps.hp = (g.ho - 1) * g.sh + (g.kh - 1) * g.dh + 1;
  ps.wp = (g.wo - 1) * g.sw + (g.kw - 1) * g.dw + 1;
  // A tile reads one line per channel of its K block: planes a power-of-two number of lines
  // apart (16 lines at 14x14) would put those lines in a few L1 sets.
  ps.plane = (ceil_div(ps.hp * ps.wp, 16) | 1) * 16;
  return ps;
}

bool f32_conv_t_preferred(const f32_gemm_t_config& cfg, const conv2d_geometry& g, size_t channels,
                          size_t m) {
  return cfg.ix != nullptr && g.sh == 1 && g.sw == 1 && g.kh * g.kw > 1 &&
         g.ho * g.wo > kMaxPixels &&
         (g.ho * g.wo <= kMaxPixelsSmall || g.ho * g.wo >= kMinPixelsLarge) &&
         channels >= kConvMinChannels && m >= cfg.nr;
}

void f32_conv_t_pad(const conv2d_geometry& g, size_t c0, size_t c1, const float* x, float* xpad) {
  const f32_conv_t_shape ps = f32_conv_t_padded(g);
  // Columns [0, left) and [left + n, wp) are padding; rows outside [pt, pt + h) all of it.
  const size_t left = std::min(g.pl, ps.wp);
  const size_t n = std::min(g.w, ps.wp - left);
  for (size_t c = c0; c < c1; ++c) {
    float* dst = xpad + c * ps.plane;
    for (size_t r = 0; r < ps.hp; ++r, dst += ps.wp) {
      if (r < g.pt || r - g.pt >= g.h) {
        std::memset(dst, 0, ps.wp * sizeof(float));
        continue;
      }
      std::memset(dst, 0, left * sizeof(float));
      std::memcpy(dst + left, x + (c * g.h + r - g.pt) * g.w, n * sizeof(float));
      std::memset(dst + left + n, 0, (ps.wp - left - n) * sizeof(float));
    }
  }
}

void f32_conv_t_pack(size_t m, size_t channels, size_t kh, size_t kw, size_t nr, const float* w,
                     float* strips) {
  const size_t taps = kh * kw, k = channels * taps;
  std::vector<float> by_tap(m * k);
  for (size_t o = 0; o < m; ++o)
    for (size_t c = 0; c < channels; ++c)
      for (size_t t = 0; t < taps; ++t) by_tap[o * k + t * channels + c] = w[o * k + c * taps + t];
  f32_gemm_t_pack(m, k, nr, by_tap.data(), strips);
}

void f32_conv_t_offsets(const conv2d_geometry& g, size_t* offs) {
  const size_t wp = f32_conv_t_padded(g).wp;
  for (size_t p = 0; p < g.ho * g.wo; ++p) offs[p] = (p / g.wo) * g.sh * wp + (p % g.wo) * g.sw;
}

size_t f32_conv_t_band_pixels(size_t p) {
  // Equal bands, a multiple of 24 pixels (whole 6-pixel tiles, whole 8-pixel store blocks), so
  // that no band is a sliver that streams a whole strip of weights for a few pixels (cut at 384,
  // 784 pixels would leave a band of 16).
  const size_t bands = ceil_div(std::max<size_t>(p, 1), kConvBandPixels);
  return ceil_div(ceil_div(std::max<size_t>(p, 1), bands), 24) * 24;
}

size_t f32_conv_t_scratch(const f32_gemm_t_config& cfg) { return kConvBandPixels * cfg.nr; }

void f32_conv_t_run(const f32_gemm_t_config& cfg, const conv2d_geometry& g, size_t channels,
                    size_t m, const float* strips, size_t s0, size_t s1, size_t b0, size_t b1,
                    const float* xpad, const size_t* offs, const float* bias, float* c, size_t ldc,
                    float* scratch, const f32_minmax* params) {
  const f32_conv_t_shape ps = f32_conv_t_padded(g);
  const size_t plane = ps.plane, taps = g.kh * g.kw, k = channels * taps;
  const size_t nr = cfg.nr, mr = cfg.mr, p = g.ho * g.wo;
  const size_t kc = p >= kConvLargePixels ? kConvKcLarge : kConvKcSmall;
  const size_t band_pixels = f32_conv_t_band_pixels(p);
  for (size_t s = s0; s < s1; ++s) {
    const float* ws = strips + s * k * nr;
    const size_t row0 = s * nr;
    for (size_t band = b0; band < b1 && band * band_pixels < p; ++band) {
      const size_t p0 = band * band_pixels, p1 = std::min(p, p0 + band_pixels);
      for (size_t t = 0; t < taps; ++t) {
        const size_t tap_off = (t / g.kw) * g.dh * ps.wp + (t % g.kw) * g.dw;
        for (size_t c0 = 0; c0 < channels; c0 += kc) {
          const size_t kb = std::min(kc, channels - c0);
          const float* wt = ws + (t * channels + c0) * nr;
          const float* bt = xpad + c0 * plane + tap_off;
          const bool accumulate = t != 0 || c0 != 0;
          for (size_t i = p0; i < p1; i += mr)
            cfg.ix(std::min(mr, p1 - i), kb, bt, plane, offs + i, wt, scratch + (i - p0) * nr, nr,
                   accumulate);
        }
      }
      if (k == 0) std::memset(scratch, 0, (p1 - p0) * nr * sizeof(float));
      cfg.store(p1 - p0, std::min(nr, m - row0), nr, scratch,
                bias != nullptr ? bias + row0 : nullptr, c + row0 * ldc + p0, ldc, params);
    }
  }
}

}  // namespace edgefit
