// Compressed weights read on the host: the cb-gemm view of a codebook weight, and int8 or
// codebook weights decoded to dense f32 where a kernel needs them dense (the CPU executor's
// depthwise filters and int8 layers; the CUDA runtime's uploads).
#pragma once

#include <cstddef>

#include "core/loader.h"
#include "kernels/cb-gemm/cb-gemm.h"

namespace edgefit {

// A codebook weight as the cb-gemm kernels read it ([m, k] rows of codes, table, groups, scales),
// its pointers into the artifact.
cb_weights codebook_weights(const ValueDef& w, size_t m, size_t k);

// An int8 (per-row scales) or codebook weight [rows, cols] decoded into out (rows * cols floats).
void decode_weights_f32(const ValueDef& w, float* out);

}  // namespace edgefit
