// Kernel selection: one config per kernel family, chosen from CpuInfo (capped by a requested
// ISA level for testing). Kernels never probe the CPU; this is the only place that looks.
#pragma once

#include <string>
#include <vector>

#include "core/cpuinfo.h"
#include "kernels/cb-gemm/cb-gemm.h"
#include "kernels/f32-conv/f32-conv.h"
#include "kernels/f32-dwconv/f32-dwconv.h"
#include "kernels/f32-elementwise/f32-elementwise.h"
#include "kernels/f32-gemm/f32-gemm.h"
#include "kernels/f32-nchwc/f32-nchwc.h"
#include "kernels/f32-pool/f32-pool.h"
#include "kernels/f32-spmm/f32-spmm.h"
#include "kernels/u8-quant/u8-quant.h"

namespace edgefit {

template <typename Fn>
struct Kernel {
  const char* name = nullptr;
  Fn fn = nullptr;
};

struct GemmConfig {
  Kernel<f32_gemm_ukernel_fn> gemm;           // reads B as rows (small K / few panels)
  Kernel<f32_gemm_packed_ukernel_fn> packed;  // the same tile over packed B strips
  size_t mr = 0;                              // rows per packed panel
  size_t nr = 0;                              // columns per register tile = packed B strip width
  Kernel<f32_gemv_ukernel_fn> gemv;
  Kernel<f32_im2col_fn> im2col;                // the whole [K, P] matrix (sparse / codebook)
  Kernel<f32_im2col_packed_fn> im2col_packed;  // blocks straight into packed strips (dense)
  // Transposed-output tiles for small images (f32_gemm_t_*); t.fn null where the ISA has none.
  f32_gemm_t_config t;
  const char* t_name = nullptr;
  const char* t_ix_name = nullptr;  // t.ix: direct k x k convolutions (f32_conv_t_*)
};

struct DwconvConfig {
  Kernel<f32_dwconv_ukernel_fn> generic;                 // any kernel / stride / dilation
  Kernel<f32_dwconv_ukernel_fn> k3s1, k3s2, k5s1, k5s2;  // null where no fast variant exists
  // The same kernels' unpadded entry points (same names; what the executor runs).
  Kernel<f32_dwconv_chw_ukernel_fn> chw_generic, chw_k3s1, chw_k3s2, chw_k5s1, chw_k5s2;
};

struct SpmmConfig {
  Kernel<f32_spmm_ukernel_fn> by_block[3];  // block 1, 2, 4
  size_t tile = 8;                          // pixels per register tile
};

struct CbGemmConfig {
  Kernel<cb_gemm_ukernel_fn> gemm;
  size_t mr = 4;
};

struct ElementwiseConfig {
  Kernel<f32_vclamp_fn> clamp;
  Kernel<f32_vhswish_fn> hswish;
  Kernel<f32_vadd_fn> add;
  Kernel<f32_vaffine_fn> affine;
  Kernel<f32_softmax_fn> softmax;
};

struct PoolConfig {
  Kernel<void (*)(const pool2d_geometry*, const float*, float*)> max, avg;
  Kernel<void (*)(size_t, size_t, const float*, float*)> global_avg;
};

// Convolutions over channel-blocked activations (f32-nchwc.h); conv.fn null where the ISA has
// no tiles for them, and then the executor keeps every tensor NCHW (core/layout.h).
struct NchwcConfig {
  Kernel<f32_nchwc_conv_fn> conv;
  Kernel<f32_nchwc_dwconv_fn> dwconv;  // set whenever conv is, as are the reorders
  Kernel<f32_nchwc_reorder_fn> to_blocked, to_plain;
  Kernel<f32_nchwc_decode_cb_fn> decode_cb;  // codebook weights, pass by pass
  Kernel<f32_nchwc_maxpool_fn> maxpool;
  Kernel<f32_nchwc_wino_in_fn> wino_in;  // Winograd F(2x2, 3x3) transforms
  Kernel<f32_nchwc_wino_out_fn> wino_out;
  Kernel<f32_nchwc_wino_pack_group_fn> wino_pack_group;  // decoded codebook groups
};

struct KernelSet {
  Isa isa = Isa::kScalar;
  GemmConfig gemm;
  DwconvConfig dwconv;
  SpmmConfig spmm;
  CbGemmConfig cb;
  ElementwiseConfig elementwise;
  PoolConfig pool;
  NchwcConfig nchwc;
};

GemmConfig select_gemm(Isa isa);
DwconvConfig select_dwconv(Isa isa);
SpmmConfig select_spmm(Isa isa);
CbGemmConfig select_cb_gemm(Isa isa);
ElementwiseConfig select_elementwise(Isa isa);
PoolConfig select_pool(Isa isa);
NchwcConfig select_nchwc(Isa isa);

// The best level `cpu` supports, no higher than `cap`, then every family's config for it.
KernelSet select_kernels(const CpuInfo& cpu, Isa cap);

struct KernelInfo {
  std::string name, family, isa;
  bool available;  // this CPU can run it
};
// Every kernel variant compiled into this build.
std::vector<KernelInfo> kernel_registry(const CpuInfo& cpu);

}  // namespace edgefit
