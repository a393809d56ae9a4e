// Host API of edgefit's CUDA kernel library (Jetson boards): plain C++, no CUDA headers, so the
// executor (compiled by the host compiler) can call it. Every pointer argument is a device
// pointer unless said otherwise; every kernel call is asynchronous on `stream` and returns a
// cudaError_t value (0 = success; error_string() names it). Semantics are those of the CPU
// kernel families in csrc/kernels/<family>/<family>.h, which the CUDA tests compare against.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cb-gemm/cb-gemm.h"
#include "kernels/common.h"
#include "kernels/f32-conv/f32-conv.h"
#include "kernels/f32-pool/f32-pool.h"

struct CUstream_st;  // cudaStream_t is CUstream_st*; nullptr is the default stream.
struct CUevent_st;   // cudaEvent_t

namespace edgefit {
namespace cuda {

using stream_t = CUstream_st*;
using event_t = CUevent_st*;

// ---- devices, memory, streams -------------------------------------------------------------------

// Number of usable CUDA devices; 0 when there is no driver or no device (never an error).
int device_count();
const char* error_string(int err);
int device_capability(int device, int* major, int* minor);
int malloc_device(void** ptr, size_t bytes);
int free_device(void* ptr);
// Page-locked host memory: the only kind an async copy overlaps with kernels from.
int malloc_pinned(void** ptr, size_t bytes);
int free_pinned(void* ptr);
int copy_to_device(void* dst, const void* host_src, size_t bytes, stream_t stream);
int copy_to_host(void* host_dst, const void* src, size_t bytes, stream_t stream);
int copy_on_device(void* dst, const void* src, size_t bytes, stream_t stream);
// rows x width bytes from src (row pitch spitch) to dst (row pitch dpitch), e.g. concat.
int copy_2d_on_device(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width,
                      size_t rows, stream_t stream);
int stream_create(stream_t* stream);
int stream_destroy(stream_t stream);
int stream_synchronize(stream_t stream);
// Events for timing work on a stream (CudaRuntime::profile): milliseconds between two recorded,
// completed events.
int event_create(event_t* event);
int event_destroy(event_t event);
int event_record(event_t event, stream_t stream);
int event_elapsed_ms(event_t start, event_t end, float* ms);

// ---- split K ------------------------------------------------------------------------------------
// f32_gemm, f32_conv2d and cb_gemm take an optional workspace. When their output has fewer tiles
// than the device has multiprocessors (batch-1 layers at 14x14 and 7x7), K is cut into chunks that
// run as separate blocks; the partial tiles go to the workspace and a second kernel sums them in
// a fixed order (results do not depend on timing). The *_workspace_floats functions give the
// floats a problem's split plan needs (0: it runs unsplit); with a smaller workspace or none, the
// call runs unsplit. One workspace can serve any number of calls queued on one stream.

// ---- f32-gemm (gemm.cu) -------------------------------------------------------------------------

// c[i * ldc + j] = clamp(bias[i] + sum_k w[i * k + kk] * b[kk * ldb + j]) for i < m, j < n:
// the CHW GEMM of 1x1 convolutions. w: row-major [m, k]; bias: [m] or null.
int f32_gemm(size_t m, size_t n, size_t k, const float* w, const float* bias, const float* b,
             size_t ldb, float* c, size_t ldc, const f32_minmax& mm, stream_t stream,
             float* workspace = nullptr, size_t workspace_floats = 0);
size_t f32_gemm_workspace_floats(size_t m, size_t n, size_t k);
// The same product on tensor cores: w pre-converted to f16 (f32_to_f16, once at load), b rounded
// to f16 as it is staged, products accumulated in f32. Needs compute capability >= 7.0
// (cudaErrorNotSupported below it). Accuracy: f16 inputs, about 1e-3 relative.
int f16_gemm(size_t m, size_t n, size_t k, const uint16_t* w_f16, const float* bias, const float* b,
             size_t ldb, float* c, size_t ldc, const f32_minmax& mm, stream_t stream);
// y[bt * o + i] = clamp(bias[i] + dot(w[i, :], x[bt * k : (bt + 1) * k])): linear layers.
int f32_linear(size_t batch, size_t o, size_t k, const float* w, const float* bias, const float* x,
               float* y, const f32_minmax& mm, stream_t stream);
// dst[i] = f16(src[i]) (round to nearest even), bit patterns in uint16_t.
int f32_to_f16(size_t n, const float* src, uint16_t* dst, stream_t stream);

// ---- f32-conv (conv.cu) -------------------------------------------------------------------------

// Grouped 2-D convolution of x [n, ci, h, w] into y [n, co, ho, wo] as an implicit GEMM (the
// im2col columns are formed in shared memory, never in global memory). w: [co, ci / groups *
// kh * kw] row-major (the dense weight as stored), bias [co] or null.
int f32_conv2d(size_t n, size_t ci, size_t co, size_t groups, const conv2d_geometry& g,
               const float* w, const float* bias, const float* x, float* y, const f32_minmax& mm,
               stream_t stream, float* workspace = nullptr, size_t workspace_floats = 0);
size_t f32_conv2d_workspace_floats(size_t n, size_t ci, size_t co, size_t groups,
                                   const conv2d_geometry& g);
// Explicit im2col of one group's channels, as f32_im2col__scalar (for tests and for callers
// that want a materialised column matrix).
int f32_im2col(const conv2d_geometry& g, size_t channels, const float* x, float* cols,
               stream_t stream);

// ---- f32-dwconv (dwconv.cu) ---------------------------------------------------------------------

// Depthwise convolution: y[b, c] = clamp(bias[c] + x[b, c] (*) w[c]) with w [c, kh, kw];
// padding from g.pt / g.pl (the rest follows from ho, wo). No padded copy is made.
int f32_dwconv2d(size_t n, size_t channels, const conv2d_geometry& g, const float* w,
                 const float* bias, const float* x, float* y, const f32_minmax& mm,
                 stream_t stream);

// ---- f32-spmm (spmm.cu) -------------------------------------------------------------------------

// BSR x dense: y(o, p) = clamp(bias[o] + sum_k W[o, k] x(k, p)) for o < block_rows * block,
// p < pixels, W as in f32-spmm.h (block 1, 2 or 4; row_ptr / col_idx / values device copies).
// x(k, p) = x[k * x_cstride + p * x_pstride], y(o, p) = y[o * y_cstride + p * y_pstride]:
// CHW activations use (P, 1); a linear layer's [batch, K] input uses (1, K).
int f32_spmm(size_t pixels, size_t block_rows, uint32_t block, const int32_t* row_ptr,
             const int32_t* col_idx, const float* values, const float* bias, const float* x,
             size_t x_cstride, size_t x_pstride, float* y, size_t y_cstride, size_t y_pstride,
             const f32_minmax& mm, stream_t stream);

// ---- cb-gemm (cbgemm.cu) ------------------------------------------------------------------------

// Codebook GEMM over all w.m rows: y(o, p) = clamp(row_scale[o] * sum_k table[group[o]][code(o,
// k)] x(k, p) + bias[o]); strides as f32_spmm. The cb_weights pointers are device pointers.
// Codes are decoded through the rows' tables held in shared memory; no dense weight is formed.
int cb_gemm(const cb_weights& w, const float* bias, size_t pixels, const float* x, size_t x_cstride,
            size_t x_pstride, float* y, size_t y_cstride, size_t y_pstride, const f32_minmax& mm,
            stream_t stream, float* workspace = nullptr, size_t workspace_floats = 0);
size_t cb_gemm_workspace_floats(size_t m, size_t pixels, size_t k);
// Grouped 2-D convolution with codebook weights as an implicit GEMM (f32_conv2d's im2col gather,
// cb_gemm's decode): w.m = co rows of w.k = ci / groups * kh * kw codes; no column matrix and no
// dense weights are formed.
int cb_conv2d(size_t n, size_t ci, size_t groups, const conv2d_geometry& g, const cb_weights& w,
              const float* bias, const float* x, float* y, const f32_minmax& mm, stream_t stream,
              float* workspace = nullptr, size_t workspace_floats = 0);
size_t cb_conv2d_workspace_floats(size_t n, size_t ci, size_t co, size_t groups,
                                  const conv2d_geometry& g);

// ---- f32-pool (pool.cu) -------------------------------------------------------------------------

// Pooling of `planes` CHW planes of g.h x g.w into g.ho x g.wo, torch's rules (f32-pool.h).
int f32_maxpool2d(size_t planes, const pool2d_geometry& g, const float* x, float* y,
                  stream_t stream);
int f32_avgpool2d(size_t planes, const pool2d_geometry& g, const float* x, float* y,
                  stream_t stream);
int f32_global_avgpool(size_t channels, size_t pixels, const float* x, float* y, stream_t stream);

// ---- f32-elementwise (elementwise.cu) -----------------------------------------------------------

int f32_vclamp(size_t n, const float* x, float* y, const f32_minmax& mm, stream_t stream);
int f32_vhswish(size_t n, const float* x, float* y, stream_t stream);
int f32_vadd(size_t n, const float* a, const float* b, float* y, const f32_minmax& mm,
             stream_t stream);
// y[o, c, i] = clamp(x[o, c, i] * scale[c] + shift[c]) over [outer, channels, inner].
int f32_vaffine(size_t outer, size_t channels, size_t inner, const float* x, const float* scale,
                const float* shift, float* y, const f32_minmax& mm, stream_t stream);
int f32_softmax(size_t outer, size_t n, size_t inner, const float* x, float* y, stream_t stream);

// ---- u8-quant (quant.cu) ------------------------------------------------------------------------

// As u8-quant.h; scale / zero_point are device arrays of `channels` entries.
int f32_quantize_u8(size_t outer, size_t channels, size_t inner, const float* x, const float* scale,
                    const int32_t* zero_point, uint8_t* q, stream_t stream);
int u8_dequantize_f32(size_t outer, size_t channels, size_t inner, const uint8_t* q,
                      const float* scale, const int32_t* zero_point, float* x, stream_t stream);

}  // namespace cuda
}  // namespace edgefit
