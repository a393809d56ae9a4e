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

// Calls rows(std::integral_constant<size_t, r>, ...) for a run-time r in 1..N.
template <size_t N, class Rows>
inline void rows_of(size_t r, Rows& rows, const float* const* in, size_t oy) {
  if constexpr (N > 1) {
    if (r < N) return rows_of<N - 1>(r, rows, in, oy);
  }
  rows(std::integral_constant<size_t, N>{}, in, oy);
}

// rows(std::integral_constant<size_t, r>, const float* const* in, size_t oy) computes output rows
// oy .. oy+r-1 from in[0 .. (r-1)*S + K); r is R but for the last step of a channel, which may
// have 1..R-1 rows. Vec: the row kernel's vector width in floats.
template <size_t K, size_t S, size_t Vec, size_t R, class Rows>
inline void run(size_t h, size_t w, const float* x, size_t pad_top, size_t pad_left, size_t ho,
                size_t wo, Rows&& rows) {
  constexpr size_t NS = (R - 1) * S + K;  // rows one step reads
  // The ring also holds the next step's new rows: they are copied one step ahead, so the row
  // kernel never loads from stores still in flight (a store-forwarding stall on every vector).
  constexpr size_t NR = NS + R * S;
  const size_t wp = padded_width(w, pad_left, wo, K, S, Vec);
  // Pads (left, right and the zero row) are zeroed only when the geometry changes: copies fill
  // just the data part, so the channels of one layer share them (zeroing per channel cost ~1 %
  // of MobileNetV2's instructions under qemu).
  thread_local std::vector<float> buf;
  thread_local size_t buf_w = 0, buf_pad_left = 0;
  if (buf.size() != (NR + 1) * wp || buf_w != w || buf_pad_left != pad_left) {
    buf.assign((NR + 1) * wp, 0.0f);
    buf_w = w;
    buf_pad_left = pad_left;
  }
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
    rows_of<R>(r, rows, in, oy);
  }
}

}  // namespace dwconv_ring
}  // namespace edgefit
