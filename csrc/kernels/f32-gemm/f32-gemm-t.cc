// Transposed-output GEMM driver (f32-gemm.h): weight strips of NR output channels, B's pixels
// broadcast MR at a time, each strip's [P][NR] result transposed into C by the ISA's store.
#include <algorithm>
#include <cstdint>
#include <cstring>

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

}  // namespace edgefit
