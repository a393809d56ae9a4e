// One selection function per kernel family; scalar is always the fallback.
#include "core/dispatch.h"

namespace edgefit {

#define K(fn) {#fn, fn}

GemmConfig select_gemm(Isa isa) {
  GemmConfig c;
  c.im2col = K(f32_im2col__scalar);
  c.im2col_packed = K(f32_im2col_packed__scalar);
  c.t = {f32_gemm_t_ukernel_4x8__scalar, f32_gemm_t_store__scalar, 4, 8,
         f32_gemm_t_ix_ukernel_4x8__scalar};
  c.t_name = "f32_gemm_t_ukernel_4x8__scalar";
  c.t_ix_name = "f32_gemm_t_ix_ukernel_4x8__scalar";
#if defined(__x86_64__)
  if (isa == Isa::kAvx2 || isa == Isa::kAvx512) {
    c.im2col_packed = K(f32_im2col_packed__avx2);
    c.t = {f32_gemm_t_ukernel_6x16__avx2_fma, f32_gemm_t_store__avx2, 6, 16,
           f32_gemm_t_ix_ukernel_6x16__avx2_fma};
    c.t_name = "f32_gemm_t_ukernel_6x16__avx2_fma";
    c.t_ix_name = "f32_gemm_t_ix_ukernel_6x16__avx2_fma";
  }
  if (isa == Isa::kAvx512) {
    c.gemm = K(f32_gemm_ukernel_6x32__avx512f);
    c.packed = K(f32_gemm_packed_ukernel_6x32__avx512f);
    c.mr = 6;
    c.nr = 32;
    c.gemv = K(f32_gemv_ukernel_4x8__avx2_fma);
    return c;
  }
  if (isa == Isa::kAvx2) {
    c.gemm = K(f32_gemm_ukernel_6x16__avx2_fma);
    c.packed = K(f32_gemm_packed_ukernel_6x16__avx2_fma);
    c.mr = 6;
    c.nr = 16;
    c.gemv = K(f32_gemv_ukernel_4x8__avx2_fma);
    return c;
  }
#endif
#if defined(__aarch64__) && defined(EDGEFIT_HAVE_NEON_F32_GEMM)
  if (isa == Isa::kNeon) {
    c.gemm = K(f32_gemm_ukernel_8x8__neonfma);
    c.packed = K(f32_gemm_packed_ukernel_8x8__neonfma);
    c.mr = 8;
    c.nr = 8;
    c.gemv = K(f32_gemv_ukernel_4x4__neonfma);
    c.t = {};  // no NEON transposed tile yet: small images stay on the column tiles
    c.t_name = nullptr;
    c.t_ix_name = nullptr;
    return c;
  }
#endif
  (void)isa;
  c.gemm = K(f32_gemm_ukernel_4x8__scalar);
  c.packed = K(f32_gemm_packed_ukernel_4x8__scalar);
  c.mr = 4;
  c.nr = 8;
  c.gemv = K(f32_gemv_ukernel_4x1__scalar);
  return c;
}

DwconvConfig select_dwconv(Isa isa) {
  DwconvConfig c;
  // Every kernel has a padded and an unpadded entry point of one name (f32-dwconv.h): K() picks
  // the overload by the field's type.
  c.generic = K(f32_dwconv_ukernel_kxk__scalar);
  c.chw_generic = K(f32_dwconv_ukernel_kxk__scalar);
#if defined(__x86_64__)
  if (isa == Isa::kAvx2 || isa == Isa::kAvx512) {
    c.k3s1 = K(f32_dwconv_ukernel_3x3s1__avx2_fma);
    c.chw_k3s1 = K(f32_dwconv_ukernel_3x3s1__avx2_fma);
    c.k3s2 = K(f32_dwconv_ukernel_3x3s2__avx2_fma);
    c.chw_k3s2 = K(f32_dwconv_ukernel_3x3s2__avx2_fma);
    c.k5s1 = K(f32_dwconv_ukernel_5x5s1__avx2_fma);
    c.chw_k5s1 = K(f32_dwconv_ukernel_5x5s1__avx2_fma);
    c.k5s2 = K(f32_dwconv_ukernel_5x5s2__avx2_fma);
    c.chw_k5s2 = K(f32_dwconv_ukernel_5x5s2__avx2_fma);
  }
  if (isa == Isa::kAvx512) {
    c.chw_k3s1 = K(f32_dwconv_ukernel_3x3s1__avx512f);
    c.chw_k5s1 = K(f32_dwconv_ukernel_5x5s1__avx512f);
  }
#endif
#if defined(__aarch64__) && defined(EDGEFIT_HAVE_NEON_F32_DWCONV)
  if (isa == Isa::kNeon) {
    c.k3s1 = K(f32_dwconv_ukernel_3x3s1__neonfma);
    c.chw_k3s1 = K(f32_dwconv_ukernel_3x3s1__neonfma);
    c.k3s2 = K(f32_dwconv_ukernel_3x3s2__neonfma);
    c.chw_k3s2 = K(f32_dwconv_ukernel_3x3s2__neonfma);
    c.k5s1 = K(f32_dwconv_ukernel_5x5s1__neonfma);
    c.chw_k5s1 = K(f32_dwconv_ukernel_5x5s1__neonfma);
    c.k5s2 = K(f32_dwconv_ukernel_5x5s2__neonfma);
    c.chw_k5s2 = K(f32_dwconv_ukernel_5x5s2__neonfma);
  }
#endif
  (void)isa;
  return c;
}

SpmmConfig select_spmm(Isa isa) {
  SpmmConfig c;
#if defined(__x86_64__)
  if (isa == Isa::kAvx512) {
    c.by_block[0] = K(f32_spmm_ukernel_64x1__avx512f);
    c.by_block[1] = K(f32_spmm_ukernel_64x2__avx512f);
    c.by_block[2] = K(f32_spmm_ukernel_64x4__avx512f);
    c.tile = 64;
    return c;
  }
  if (isa == Isa::kAvx2) {
    c.by_block[0] = K(f32_spmm_ukernel_32x1__avx2_fma);
    c.by_block[1] = K(f32_spmm_ukernel_32x2__avx2_fma);
    c.by_block[2] = K(f32_spmm_ukernel_24x4__avx2_fma);
    c.tile = 24;
    return c;
  }
#endif
#if defined(__aarch64__) && defined(EDGEFIT_HAVE_NEON_F32_SPMM)
  if (isa == Isa::kNeon) {
    c.by_block[0] = K(f32_spmm_ukernel_32x1__neonfma);
    c.by_block[1] = K(f32_spmm_ukernel_32x2__neonfma);
    c.by_block[2] = K(f32_spmm_ukernel_32x4__neonfma);
    c.tile = 32;
    return c;
  }
#endif
  (void)isa;
  c.by_block[0] = K(f32_spmm_ukernel_8x1__scalar);
  c.by_block[1] = K(f32_spmm_ukernel_8x2__scalar);
  c.by_block[2] = K(f32_spmm_ukernel_8x4__scalar);
  c.tile = 8;
  return c;
}

CbGemmConfig select_cb_gemm(Isa isa) {
  CbGemmConfig c;
#if defined(__x86_64__)
  if (isa == Isa::kAvx2 || isa == Isa::kAvx512) {
    c.gemm = K(cb_gemm_ukernel_6x16__avx2_fma);
    c.mr = 6;
    return c;
  }
#endif
#if defined(__aarch64__) && defined(EDGEFIT_HAVE_NEON_CB_GEMM)
  if (isa == Isa::kNeon) {
    c.gemm = K(cb_gemm_ukernel_4x16__neonfma);
    c.mr = 4;
    return c;
  }
#endif
  (void)isa;
  c.gemm = K(cb_gemm_ukernel_4x8__scalar);
  c.mr = 4;
  return c;
}

ElementwiseConfig select_elementwise(Isa isa) {
  ElementwiseConfig c;
  c.softmax = K(f32_softmax__scalar);
#if defined(__x86_64__)
  if (isa == Isa::kAvx2 || isa == Isa::kAvx512) {
    c.clamp = K(f32_vclamp__avx2);
    c.hswish = K(f32_vhswish__avx2_fma);
    c.add = K(f32_vadd__avx2);
    c.affine = K(f32_vaffine__avx2_fma);
    return c;
  }
#endif
#if defined(__aarch64__) && defined(EDGEFIT_HAVE_NEON_F32_ELEMENTWISE)
  if (isa == Isa::kNeon) {
    c.clamp = K(f32_vclamp__neon);
    c.hswish = K(f32_vhswish__neon);
    c.add = K(f32_vadd__neon);
    c.affine = K(f32_vaffine__neon);
    return c;
  }
#endif
  (void)isa;
  c.clamp = K(f32_vclamp__scalar);
  c.hswish = K(f32_vhswish__scalar);
  c.add = K(f32_vadd__scalar);
  c.affine = K(f32_vaffine__scalar);
  return c;
}

PoolConfig select_pool(Isa isa) {
  PoolConfig c;
  c.max = K(f32_maxpool2d__scalar);
  c.avg = K(f32_avgpool2d__scalar);
  c.global_avg = K(f32_global_avgpool__scalar);
#if defined(__x86_64__)
  if (isa == Isa::kAvx2 || isa == Isa::kAvx512) {
    c.global_avg = K(f32_global_avgpool__avx2);
    c.max = K(f32_maxpool2d__avx2);
  }
#endif
#if defined(__aarch64__) && defined(EDGEFIT_HAVE_NEON_F32_POOL)
  if (isa == Isa::kNeon) {
    c.global_avg = K(f32_global_avgpool__neon);
    c.max = K(f32_maxpool2d__neon);
  }
#endif
  (void)isa;
  return c;
}

NchwcConfig select_nchwc(Isa isa) {
  NchwcConfig c;
#if defined(__x86_64__)
  if (isa == Isa::kAvx512) {
    c.conv = K(f32_nchwc_conv__avx512f);
    c.dwconv = K(f32_nchwc_dwconv__avx512f);
    c.to_blocked = K(f32_nchw_to_nchwc__avx512f);
    c.to_plain = K(f32_nchwc_to_nchw__avx512f);
    c.decode_cb = K(f32_nchwc_decode_cb__avx512f);
    c.maxpool = K(f32_nchwc_maxpool__avx512f);
    c.wino_in = K(f32_nchwc_wino_in__avx512f);
    c.wino_out = K(f32_nchwc_wino_out__avx512f);
    c.wino_pack_group = K(f32_nchwc_wino_pack_group__avx512f);
  }
#endif
  (void)isa;
  return c;
}

KernelSet select_kernels(const CpuInfo& cpu, Isa cap) {
  Isa isa = cpu.best();
  if (int(cap) < int(isa)) isa = cap;
  // A cap the CPU cannot honour (e.g. "neon" on x86) falls back to the best level below it.
  while (!cpu.supports(isa)) isa = Isa(int(isa) - 1);
  KernelSet s;
  s.isa = isa;
  s.gemm = select_gemm(isa);
  s.dwconv = select_dwconv(isa);
  s.spmm = select_spmm(isa);
  s.cb = select_cb_gemm(isa);
  s.elementwise = select_elementwise(isa);
  s.pool = select_pool(isa);
  s.nchwc = select_nchwc(isa);
  return s;
}

namespace {

// A variant's ISA is named after its "__" (f32_gemm_ukernel_6x16__avx2_fma -> avx2).
Isa isa_of(const std::string& name) {
  const std::string how = name.substr(name.rfind("__") + 2);
  if (how.rfind("avx512", 0) == 0) return Isa::kAvx512;
  if (how.rfind("avx2", 0) == 0) return Isa::kAvx2;
  if (how.rfind("neon", 0) == 0) return Isa::kNeon;
  return Isa::kScalar;
}

}  // namespace

std::vector<KernelInfo> kernel_registry(const CpuInfo& cpu) {
  std::vector<KernelInfo> out;
  auto add = [&](const char* name, const char* family) {
    if (name == nullptr) return;
    for (const auto& k : out)
      if (k.name == name) return;
    const Isa isa = isa_of(name);
    out.push_back({name, family, isa_name(isa), cpu.supports(isa)});
  };
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kNeon}) {
    const GemmConfig g = select_gemm(isa);
    add(g.gemm.name, "f32-gemm");
    add(g.packed.name, "f32-gemm");
    add(g.gemv.name, "f32-gemm");
    add(g.t_name, "f32-gemm");
    add(g.t_ix_name, "f32-gemm");
    add(g.im2col.name, "f32-conv");
    add(g.im2col_packed.name, "f32-conv");
    const DwconvConfig d = select_dwconv(isa);
    for (auto k : {d.generic, d.k3s1, d.k3s2, d.k5s1, d.k5s2}) add(k.name, "f32-dwconv");
    for (auto k : {d.chw_k3s1, d.chw_k3s2, d.chw_k5s1, d.chw_k5s2}) add(k.name, "f32-dwconv");
    for (auto k : select_spmm(isa).by_block) add(k.name, "f32-spmm");
    add(select_cb_gemm(isa).gemm.name, "cb-gemm");
    const ElementwiseConfig e = select_elementwise(isa);
    for (const char* n : {e.clamp.name, e.hswish.name, e.add.name, e.affine.name, e.softmax.name})
      add(n, "f32-elementwise");
    const PoolConfig p = select_pool(isa);
    for (const char* n : {p.max.name, p.avg.name, p.global_avg.name}) add(n, "f32-pool");
    add(select_nchwc(isa).conv.name, "f32-nchwc");
    add(select_nchwc(isa).dwconv.name, "f32-nchwc");
    add(select_nchwc(isa).to_blocked.name, "f32-nchwc");
    add(select_nchwc(isa).to_plain.name, "f32-nchwc");
    add(select_nchwc(isa).decode_cb.name, "f32-nchwc");
    add(select_nchwc(isa).maxpool.name, "f32-nchwc");
    add(select_nchwc(isa).wino_in.name, "f32-nchwc");
    add(select_nchwc(isa).wino_out.name, "f32-nchwc");
    add(select_nchwc(isa).wino_pack_group.name, "f32-nchwc");
    // What blocked regions run around their convolutions: scalar code, but run only where the
    // convolutions are (listed as available elsewhere it would never be selected).
    if (select_nchwc(isa).conv.fn != nullptr && cpu.supports(isa))
      add("f32_nchwc_global_avgpool__scalar", "f32-nchwc");
  }
#if defined(__x86_64__)
  // The codebook path's strip decode on small images (named in the kernels the executor reports).
  add("cb_gemm_decode_strip_16__avx2", "cb-gemm");
#endif
  add("f32_quantize_u8__scalar", "u8-quant");
  add("u8_dequantize_f32__scalar", "u8-quant");
  return out;
}

}  // namespace edgefit
