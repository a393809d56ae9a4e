// Reference codebook GEMM: decodes each weight through its row's table as it is used.
#include "kernels/cb-gemm/cb-gemm.h"

namespace edgefit {

namespace {

// Row `row` decoded with stride `stride` between consecutive k (1: a dense row, MR: a panel).
void decode_row(size_t row, const cb_weights* w, float* out, size_t stride) {
  const size_t entries = size_t(1) << w->bits, k = w->k;
  const uint8_t* codes = w->packed + row * w->row_bytes;
  const float* table = w->table + size_t(w->group[row]) * entries;
  // The row's table scaled once: 2^bits multiplies instead of K.
  float scaled[256];
  for (size_t e = 0; e < entries; ++e) scaled[e] = table[e] * w->row_scale[row];
  if (w->bits == 4) {
    size_t kk = 0;
    for (; kk + 2 <= k; kk += 2) {
      const uint8_t b = codes[kk >> 1];
      out[kk * stride] = scaled[b & 15u];
      out[(kk + 1) * stride] = scaled[b >> 4];
    }
    if (kk < k) out[kk * stride] = scaled[codes[kk >> 1] & 15u];
  } else if (w->bits == 8) {
    for (size_t kk = 0; kk < k; ++kk) out[kk * stride] = scaled[codes[kk]];
  } else {
    for (size_t kk = 0; kk < k; ++kk)
      out[kk * stride] = scaled[cb_code(codes, w->row_bytes, w->bits, kk)];
  }
}

}  // namespace

void cb_gemm_decode_panel(size_t m0, size_t mr, size_t MR, const cb_weights* w, const float* bias,
                          float* panel) {
  for (size_t i = 0; i < MR; ++i) {
    if (i >= mr) {
      panel[i] = 0.0f;
      for (size_t kk = 0; kk < w->k; ++kk) panel[MR + i + kk * MR] = 0.0f;
      continue;
    }
    panel[i] = bias != nullptr ? bias[m0 + i] : 0.0f;
    decode_row(m0 + i, w, panel + MR + i, MR);
  }
}

void cb_gemm_decode_rows(size_t m0, size_t rows, const cb_weights* w, float* out) {
  for (size_t i = 0; i < rows; ++i) decode_row(m0 + i, w, out + i * w->k, 1);
}

void cb_gemm_ukernel_4x8__scalar(size_t m0, size_t mr, size_t n, const cb_weights* w,
                                 const float* bias, const float* x, size_t ldx, float* y,
                                 size_t ldy, const f32_minmax* params) {
  const size_t entries = size_t(1) << w->bits;
  for (size_t i = 0; i < mr; ++i) {
    const size_t row = m0 + i;
    const uint8_t* codes = w->packed + row * w->row_bytes;
    const float* table = w->table + size_t(w->group[row]) * entries;
    const float b = bias != nullptr ? bias[row] : 0.0f;
    for (size_t j0 = 0; j0 < n; j0 += 8) {
      const size_t nr = n - j0 < 8 ? n - j0 : 8;
      float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (size_t kk = 0; kk < w->k; ++kk) {
        const float wv = table[cb_code(codes, w->row_bytes, w->bits, kk)];
        const float* xr = x + kk * ldx + j0;
        for (size_t j = 0; j < nr; ++j) acc[j] += wv * xr[j];
      }
      for (size_t j = 0; j < nr; ++j)
        y[i * ldy + j0 + j] = f32_clamp(acc[j] * w->row_scale[row] + b, params);
    }
  }
}

}  // namespace edgefit
