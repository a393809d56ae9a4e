// The unpadded depthwise entry points' shared driver (ISA-neutral): a ring of zero-padded input
// rows in a small per-thread buffer (L1-resident), each input row copied once, out-of-range rows
// read as a zero row. An ISA supplies the row kernel that computes R output rows at a time from
// the (R-1)*S + K padded rows they read.
#pragma once

#include <algorithm>
#include <type_traits>
#include <vector>

#include "kernels/f32-dwconv/f32-dwconv.h"

namespace edgefit {
namespace dwconv_ring {

// Floats per padded row: the data after pad_left, every column a window touches, and `vec` * S
// more for the over-read of a last partial vector (whose extra lanes are discarded).
inline size_t padded_width(size_t w, size_t pad_left, size_t wo, size_t K, size_t S, size_t vec) {
  const size_t need = std::max(pad_left + w, std::max(wo, vec) * S + K) + vec * S;
  return (need + 7) / 8 * 8;
}

// rows(std::integral_constant<size_t, R>, const float* const* in, size_t oy) computes output rows
// oy .. oy+R-1 from in[0 .. (R-1)*S + K); R is 1 or 2 (the last step of an odd ho is 1). Vec: the
// row kernel's vector width in floats.
template <size_t K, size_t S, size_t Vec, class Rows>
inline void run(size_t h, size_t w, const float* x, size_t pad_top, size_t pad_left, size_t ho,
                size_t wo, Rows&& rows) {
  constexpr size_t R = 2;
  constexpr size_t NS = (R - 1) * S + K;  // rows one step reads
  // The ring also holds the next step's new rows: they are copied one step ahead, so the row
  // kernel never loads from stores still in flight (a store-forwarding stall on every vector).
  constexpr size_t NR = NS + R * S;
  const size_t wp = padded_width(w, pad_left, wo, K, S, Vec);
  thread_local std::vector<float> buf;
  // Pads (left, right and the zero row) are written here once; copies only fill the data part.
  buf.assign((NR + 1) * wp, 0.0f);
  float* const zero = buf.data() + NR * wp;
  const ptrdiff_t ih = ptrdiff_t(h);
  ptrdiff_t next = 0;  // first input row not yet copied into the ring
  auto slot = [&](ptrdiff_t iy) { return buf.data() + size_t(iy) % NR * wp; };
  auto copy_to = [&](ptrdiff_t end) {  // copies rows next .. end-1 (those inside the channel)
    if (next < 0) next = 0;
    for (; next < std::min(end, ih); ++next) {
      // Inline (vectorised) copy: rows are often 7-28 floats, where a memcpy call costs more.
      float* __restrict d = slot(next) + pad_left;
      const float* __restrict src = x + size_t(next) * w;
      for (size_t j = 0; j < w; ++j) d[j] = src[j];
    }
  };
  const float* in[NS];
  for (size_t oy = 0; oy < ho; oy += R) {
    const size_t r = std::min(R, ho - oy);
    const ptrdiff_t base = ptrdiff_t(oy * S) - ptrdiff_t(pad_top);
    copy_to(base + ptrdiff_t(NR));
    const size_t need = (r - 1) * S + K;
    for (size_t i = 0; i < need; ++i) {
      const ptrdiff_t iy = base + ptrdiff_t(i);
      in[i] = iy < 0 || iy >= ih ? zero : slot(iy);
    }
    if (r == 2)
      rows(std::integral_constant<size_t, 2>{}, in, oy);
    else
      rows(std::integral_constant<size_t, 1>{}, in, oy);
  }
}

}  // namespace dwconv_ring
}  // namespace edgefit
