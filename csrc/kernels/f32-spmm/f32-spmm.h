// f32 sparse x dense (Fast Sparse ConvNets): y[o, p] = clamp(bias[o] + sum_k W[o, k] x[k, p]) with
// W in block-sparse rows (BSR: blocks of `B` consecutive output channels x 1 input channel,
// B = 1, 2 or 4) and x, y dense CHW activations ([channels, pixels]); also sparse linear layers
// (pixels = batch after a transpose). Kernels step over tiles of pixels x B output channels (the
// name says which: 24x4 = 24 pixels x 4 channels), a last tile overlapping the one before (AVX2)
// or masked (AVX-512). On Zen 4 AVX2 and AVX-512 FMA throughput are equal, yet the AVX-512 tiles
// (64 pixels) ran MobileNetV2's sparse layers 1.3-1.6x faster: each weight block's index and
// broadcasts feed 16 zmm FMAs, and small images take fewer passes (csrc/README.md).
#pragma once

#include "kernels/common.h"

namespace edgefit {

// block_rows block rows starting at row_ptr[0] (row_ptr values index col_idx / values as stored:
// callers pass row_ptr + first_block_row with the original col_idx and values arrays).
// values: B floats per non-zero block (output channel fastest). bias: [block_rows * B] or null.
typedef void (*f32_spmm_ukernel_fn)(size_t pixels, size_t block_rows, const int32_t* row_ptr,
                                    const int32_t* col_idx, const float* values, const float* bias,
                                    const float* x, size_t x_stride, float* y, size_t y_stride,
                                    const f32_minmax* params);

#define EDGEFIT_DECLARE_SPMM(name)                                                             \
  void name(size_t pixels, size_t block_rows, const int32_t* row_ptr, const int32_t* col_idx,  \
            const float* values, const float* bias, const float* x, size_t x_stride, float* y, \
            size_t y_stride, const f32_minmax* params);

EDGEFIT_DECLARE_SPMM(f32_spmm_ukernel_8x1__scalar)
EDGEFIT_DECLARE_SPMM(f32_spmm_ukernel_8x2__scalar)
EDGEFIT_DECLARE_SPMM(f32_spmm_ukernel_8x4__scalar)
#if defined(__x86_64__) || defined(_M_X64)
EDGEFIT_DECLARE_SPMM(f32_spmm_ukernel_32x1__avx2_fma)
EDGEFIT_DECLARE_SPMM(f32_spmm_ukernel_32x2__avx2_fma)
EDGEFIT_DECLARE_SPMM(f32_spmm_ukernel_24x4__avx2_fma)
EDGEFIT_DECLARE_SPMM(f32_spmm_ukernel_64x1__avx512f)
EDGEFIT_DECLARE_SPMM(f32_spmm_ukernel_64x2__avx512f)
EDGEFIT_DECLARE_SPMM(f32_spmm_ukernel_64x4__avx512f)
#endif
#if defined(__aarch64__)
// Provided by csrc/kernels/f32-spmm/*neon*.cc (EDGEFIT_HAVE_NEON_F32_SPMM).
EDGEFIT_DECLARE_SPMM(f32_spmm_ukernel_32x1__neonfma)
EDGEFIT_DECLARE_SPMM(f32_spmm_ukernel_32x2__neonfma)
EDGEFIT_DECLARE_SPMM(f32_spmm_ukernel_32x4__neonfma)
#endif

}  // namespace edgefit
