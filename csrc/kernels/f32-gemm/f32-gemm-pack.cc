// Packing for the f32-gemm microkernels (weights into MR-row panels, B into NR-column strips) and
// the blocked driver every dense convolution and the codebook path's decoded panels run through.
#include <algorithm>
#include <cstring>

#include "kernels/f32-gemm/f32-gemm.h"

namespace edgefit {

size_t f32_gemm_packed_size(size_t m, size_t k, size_t mr) {
  const size_t panels = (m + mr - 1) / mr;
  return panels * mr * (k + 1);
}

void f32_gemm_pack(size_t m, size_t k, size_t mr, const float* w, const float* bias,
                   float* packed) {
  const size_t panels = (m + mr - 1) / mr;
  for (size_t pnl = 0; pnl < panels; ++pnl) {
    float* out = packed + pnl * mr * (k + 1);
    for (size_t i = 0; i < mr; ++i) {
      const size_t row = pnl * mr + i;
      out[i] = (row < m && bias != nullptr) ? bias[row] : 0.0f;
    }
    out += mr;
    for (size_t kk = 0; kk < k; ++kk) {
      for (size_t i = 0; i < mr; ++i) {
        const size_t row = pnl * mr + i;
        out[kk * mr + i] = row < m ? w[row * k + kk] : 0.0f;
      }
    }
  }
}

namespace {

// Whole strips of the kernels' widths as fixed-size copies (vector moves, not a memcpy call).
template <size_t kNr>
void copy_strips(size_t full, const float* src, float* dst, size_t strip_floats) {
  for (size_t s = 0; s < full; ++s) std::memcpy(dst + s * strip_floats, src + s * kNr, kNr * 4);
}

}  // namespace

void f32_gemm_strips_from_row(size_t n, size_t nr, const float* src, float* dst,
                              size_t strip_floats) {
  const size_t full = n / nr, rest = n % nr;
  if (nr == 8)
    copy_strips<8>(full, src, dst, strip_floats);
  else if (nr == 16)
    copy_strips<16>(full, src, dst, strip_floats);
  else if (nr == 32)
    copy_strips<32>(full, src, dst, strip_floats);
  else
    for (size_t s = 0; s < full; ++s) std::memcpy(dst + s * strip_floats, src + s * nr, nr * 4);
  if (rest != 0) {
    float* d = dst + full * strip_floats;
    std::memcpy(d, src + full * nr, rest * 4);
    for (size_t i = rest; i < nr; ++i) d[i] = 0.0f;
  }
}

namespace {

// Rows at least this many floats apart (56x56 and larger images) are packed strip by strip.
constexpr size_t kStripMajorMinLdb = 1024;

template <size_t kNr>
void pack_strips(size_t k, size_t full, const float* b, size_t ldb, float* out) {
  for (size_t s = 0; s < full; ++s)
    for (size_t kk = 0; kk < k; ++kk)
      std::memcpy(out + (s * k + kk) * kNr, b + s * kNr + kk * ldb, kNr * 4);
}

}  // namespace

void f32_gemm_pack_b(size_t k, size_t n, size_t nr, const float* b, size_t ldb, float* out) {
  if (ldb < kStripMajorMinLdb) {
    // Short rows: B is one compact region, read sequentially row by row and scattered over
    // the strips.
    for (size_t kk = 0; kk < k; ++kk)
      f32_gemm_strips_from_row(n, nr, b + kk * ldb, out + kk * nr, k * nr);
    return;
  }
  // Long rows: strip by strip, each write stream sequential, nr floats read per row (measured
  // 2x faster at 56x56: 64<-256 0.13 -> 0.09 ms, 128<-256 0.17 -> 0.07 ms per layer; row by
  // row was faster for 7x7 / 14x14 blocks).
  const size_t full = n / nr, rest = n % nr;
  if (nr == 8)
    pack_strips<8>(k, full, b, ldb, out);
  else if (nr == 16)
    pack_strips<16>(k, full, b, ldb, out);
  else if (nr == 32)
    pack_strips<32>(k, full, b, ldb, out);
  else
    for (size_t s = 0; s < full; ++s)
      for (size_t kk = 0; kk < k; ++kk)
        std::memcpy(out + (s * k + kk) * nr, b + s * nr + kk * ldb, nr * 4);
  if (rest != 0) {
    float* d = out + full * k * nr;
    for (size_t kk = 0; kk < k; ++kk, d += nr) {
      std::memcpy(d, b + full * nr + kk * ldb, rest * 4);
      std::memset(d + rest, 0, (nr - rest) * 4);
    }
  }
}

namespace {

// Measured on AMD Zen 4 (csrc/README.md, "Measured choices"): a packed B block of at most
// kBBlockBytes stays in L2 while the panels stream past it, each panel's K-block slice (mr * kc
// floats) in L1. Packing is the general path. Its copy of B pays only when enough panels reuse
// it, so two measured exceptions read B as rows instead: a matrix B of at most kInPlaceMaxK rows
// (few enough for L1's sets) or with few panels is read in place, and an image unfolded for few
// panels is unfolded into rows kRowsBlockBytes at a time (one copy either way, but long runs);
// the latter only past kRowsMinElems elements of B, below which both fit in L1 alike.
constexpr size_t kBBlockBytes = 192 * 1024;
constexpr size_t kMaxNc = 256;
constexpr size_t kInPlaceMaxK = 64;
constexpr size_t kInPlaceMaxPanels = 7;
constexpr size_t kRowsMaxPanels = 11;
constexpr size_t kRowsMinElems = 64 * 1024;
constexpr size_t kRowsBlockBytes = 256 * 1024;
// The next panel's K-block slice is prefetched while the current one runs: with K blocks each
// panel's slice is a separate short stream, cold in a whole model (ResNet-50's weights exceed
// L3), that the hardware prefetcher picks up only after a few misses (2-3 % faster over the
// 25-layer set with cold caches, in two runs: at the edge of this shared machine's noise).
constexpr bool kPrefetchNextPanel = true;

// Row stride of an image unfolded into rows (the unpacked path): an odd number of cache lines,
// so that the k rows a tile walks down fall into different L1 sets. At n = 512 (2 KB rows) the
// rows of a K = 27 stem block shared two sets of L1 (8 ways each) and evicted each other.
size_t unfolded_row_floats(size_t n) {
  const size_t lines = ceil_div(std::max<size_t>(n, 1), 16);
  return (lines | 1) * 16;
}

}  // namespace

f32_gemm_blocking f32_gemm_choose_blocking(f32_gemm_packed_ukernel_fn packed,
                                           f32_gemm_ukernel_fn unpacked, size_t mr, size_t nr,
                                           size_t m, size_t k, size_t p, bool matrix_b) {
  f32_gemm_blocking bl;
  bl.packed = packed;
  bl.unpacked = unpacked;
  bl.mr = mr;
  bl.nr = nr;
  const size_t pcols = ceil_div(std::max<size_t>(p, 1), nr) * nr;
  const size_t panels = ceil_div(m, mr);
  const bool rows = matrix_b ? k <= kInPlaceMaxK || panels <= kInPlaceMaxPanels
                             : panels <= kRowsMaxPanels && k * p >= kRowsMinElems;
  bl.pack = unpacked == nullptr || !rows;
  if (!bl.pack) {
    // Whole K per block (the in-place kernel has no K blocks); columns so that a [k, nc] block
    // stays in L2 while every panel passes over it.
    const size_t fit = kRowsBlockBytes / (std::max<size_t>(k, 1) * sizeof(float)) / nr * nr;
    bl.nc = std::min(pcols, std::min<size_t>(2 * kMaxNc, std::max(nr, fit)));
    bl.kc = k;
    return bl;
  }
  bl.nc = std::min(pcols, std::max(nr, kMaxNc / nr * nr));
  // Equal K blocks no longer than the budget allows (a short last block wastes a pass over C).
  const size_t kc_max = std::max<size_t>(16, kBBlockBytes / (bl.nc * sizeof(float)));
  bl.kc = ceil_div(k, ceil_div(std::max<size_t>(k, 1), kc_max));
  return bl;
}

size_t f32_gemm_blocked_scratch(const f32_gemm_blocking& bl) {
  if (!bl.pack) return bl.kc * unfolded_row_floats(bl.nc);
  return bl.kc * ceil_div(bl.nc, bl.nr) * bl.nr;
}

void f32_gemm_blocked(const f32_gemm_blocking& bl, size_t m, size_t k, const float* panels,
                      size_t panel_floats, size_t pi0, size_t pi1, const f32_gemm_operand& b,
                      size_t j0, size_t n, float* c, size_t ldc, float* scratch,
                      const f32_minmax* params) {
  const size_t mr = bl.mr;
  for (size_t j = j0; j < j0 + n; j += bl.nc) {
    const size_t nn = std::min(bl.nc, j0 + n - j);
    if (!bl.pack) {
      // Rows of B: the matrix in place, or the image unfolded as one strip nn wide.
      const float* rows = b.b + j;
      size_t ldb = b.ldb;
      if (b.geo != nullptr) {
        ldb = unfolded_row_floats(nn);
        b.unfold(b.geo, b.x, 0, k, j, nn, ldb, scratch);
        rows = scratch;
      }
      for (size_t pi = pi0; pi < pi1; ++pi)
        bl.unpacked(std::min(mr, m - pi * mr), nn, k, panels + pi * panel_floats, rows, ldb,
                    c + pi * mr * ldc + j, ldc, params);
      continue;
    }
    for (size_t k0 = 0; k0 < k; k0 += bl.kc) {
      const size_t kb = std::min(bl.kc, k - k0);
      // Packed once per (column block, K block), then reused by every panel of the task: the
      // panel's kb x mr weights stay in L1 while the kernel walks the block's strips.
      if (b.geo != nullptr)
        b.unfold(b.geo, b.x, k0, kb, j, nn, bl.nr, scratch);
      else
        f32_gemm_pack_b(kb, nn, bl.nr, b.b + k0 * b.ldb + j, b.ldb, scratch);
      const bool first = k0 == 0, last = k0 + kb == k;
      for (size_t pi = pi0; pi < pi1; ++pi) {
        const float* panel = panels + pi * panel_floats;
        if (kPrefetchNextPanel && pi + 1 < pi1) {
          const float* next = panel + panel_floats + mr + k0 * mr;
          // Unrolled: the rolled loop spent 4 instructions of bookkeeping per prefetch (qemu:
          // 0.6 % of ResNet-50's instructions on NEON).
#pragma GCC unroll 4
          for (size_t off = 0; off < mr * kb; off += 16) __builtin_prefetch(next + off, 0, 2);
        }
        bl.packed(std::min(mr, m - pi * mr), nn, kb, panel + mr + k0 * mr, first ? panel : nullptr,
                  scratch, c + pi * mr * ldc + j, ldc, last ? params : nullptr);
      }
    }
  }
}

f32_gemm_split f32_gemm_split_tasks(const f32_gemm_blocking& bl, size_t m, size_t p,
                                    size_t threads) {
  const size_t panels = ceil_div(m, bl.mr), strips = ceil_div(p, bl.nr);
  f32_gemm_split s;
  if (threads > 1) {
    // Weights [m, k] vs B [k, p]: split the larger operand so each task touches a part of it and
    // streams (or packs) all of the smaller one.
    if (m <= p) {
      s.col_parts = std::min(strips, threads);
      s.panel_parts = std::min(panels, ceil_div(threads, s.col_parts));
    } else {
      s.panel_parts = std::min(panels, threads);
      s.col_parts = std::min(strips, ceil_div(threads, s.panel_parts));
    }
  }
  s.cols_per = ceil_div(strips, s.col_parts) * bl.nr;
  s.panels_per = ceil_div(panels, s.panel_parts);
  s.col_parts = ceil_div(p, s.cols_per);
  s.panel_parts = ceil_div(panels, s.panels_per);
  return s;
}

}  // namespace edgefit
