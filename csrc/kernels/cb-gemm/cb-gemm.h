// Codebook (palettized) GEMM: y[o, p] = clamp(row_scale[o] * sum_k table[group[o]][code(o, k)] *
// x[k, p] + bias[o]) with x, y dense CHW ([K, pixels], [M, pixels]). The n-bit codes are decoded
// through the small table inside the kernel (a few rows at a time); the dense weight matrix is
// never materialised. Codes are packed LSB first, each row starting on a byte
// (docs/artifact-format.md, encoding 3).
#pragma once

#include "kernels/common.h"

namespace edgefit {

struct cb_weights {
  size_t m, k;             // logical [M, K]
  uint32_t bits;           // 2..8
  size_t row_bytes;        // ceil(K * bits / 8)
  const uint8_t* packed;   // [M, row_bytes]
  const float* table;      // [G, 2^bits]
  const int32_t* group;    // [M], each in [0, G)
  const float* row_scale;  // [M]
};

// Code k of a packed row (bits <= 8; never reads past the row).
inline uint32_t cb_code(const uint8_t* row, size_t row_bytes, uint32_t bits, size_t k) {
  const size_t bit = k * bits;
  const size_t byte = bit >> 3;
  uint32_t v = row[byte];
  if (byte + 1 < row_bytes) v |= uint32_t(row[byte + 1]) << 8;
  return (v >> (bit & 7)) & ((1u << bits) - 1u);
}

// Decodes rows [m0, m0 + mr) (mr <= MR) into one f32-gemm panel of MR * (K + 1) floats, the
// layout f32_gemm_pack writes (MR biases, then K x MR weights with row_scale folded in; rows past
// mr are zero), so any f32-gemm microkernel of that MR can multiply it.
void cb_gemm_decode_panel(size_t m0, size_t mr, size_t MR, const cb_weights* w, const float* bias,
                          float* panel);

// Decodes rows [m0, m0 + rows) into dense [rows, K] floats (row_scale folded in).
void cb_gemm_decode_rows(size_t m0, size_t rows, const cb_weights* w, float* out);

// Rows [m0, m0 + mr) (mr <= the kernel's MR), all n pixels; bias is the full [M] array or null.
typedef void (*cb_gemm_ukernel_fn)(size_t m0, size_t mr, size_t n, const cb_weights* w,
                                   const float* bias, const float* x, size_t ldx, float* y,
                                   size_t ldy, const f32_minmax* params);

void cb_gemm_ukernel_4x8__scalar(size_t m0, size_t mr, size_t n, const cb_weights* w,
                                 const float* bias, const float* x, size_t ldx, float* y,
                                 size_t ldy, const f32_minmax* params);
#if defined(__x86_64__) || defined(_M_X64)
// cb_gemm_decode_panel for MR = 6 with the 4-bit decode vectorised (other widths: the generic
// one). Needs AVX2 and 2 floats of writable slack after the panel.
void cb_gemm_decode_panel_6__avx2(size_t m0, size_t mr, const cb_weights* w, const float* bias,
                                  float* panel);
// Rows [m0, m0 + rows) (rows <= 16) decoded into one f32-gemm transposed-tile weight strip:
// [K][16] floats, row i of the strip in column i, row_scale folded in, zero past rows (the layout
// f32_gemm_t_pack writes). Needs AVX2.
void cb_gemm_decode_strip_16__avx2(size_t m0, size_t rows, const cb_weights* w, float* strip);
void cb_gemm_ukernel_6x16__avx2_fma(size_t m0, size_t mr, size_t n, const cb_weights* w,
                                    const float* bias, const float* x, size_t ldx, float* y,
                                    size_t ldy, const f32_minmax* params);
#endif
#if defined(__aarch64__)
// Provided by csrc/kernels/cb-gemm/*neon*.cc (EDGEFIT_HAVE_NEON_CB_GEMM).
void cb_gemm_ukernel_4x16__neonfma(size_t m0, size_t mr, size_t n, const cb_weights* w,
                                   const float* bias, const float* x, size_t ldx, float* y,
                                   size_t ldy, const f32_minmax* params);
#endif

// Maximum MR of any cb-gemm kernel (callers size per-thread decode scratch with it).
constexpr size_t kCbGemmMaxMr = 8;

}  // namespace edgefit
