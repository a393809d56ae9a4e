// CPU feature probe: cpuid + xgetbv on x86-64, NEON unconditionally on aarch64.
#include "core/cpuinfo.h"

#include <stdexcept>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace edgefit {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return "scalar";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
    case Isa::kNeon:
      return "neon";
  }
  return "?";
}

Isa parse_isa(const std::string& name) {
  if (name == "scalar") return Isa::kScalar;
  if (name == "avx2") return Isa::kAvx2;
  if (name == "avx512") return Isa::kAvx512;
  if (name == "neon") return Isa::kNeon;
  throw std::invalid_argument("unknown isa '" + name + "' (scalar, avx2, avx512, neon)");
}

namespace {

CpuInfo probe() {
  CpuInfo info;
#if defined(__x86_64__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(0, &a, &b, &c, &d)) info.amd = b == 0x68747541u;  // "Auth"enticAMD
  if (__get_cpuid(1, &a, &b, &c, &d)) {
    info.family = (a >> 8) & 0xF;
    if (info.family == 0xF) info.family += (a >> 20) & 0xFF;
    const bool fma = c & (1u << 12);
    const bool osxsave = c & (1u << 27);
    const bool avx = c & (1u << 28);
    unsigned xcr0 = 0;
    if (osxsave) {
      unsigned hi = 0;
      __asm__("xgetbv" : "=a"(xcr0), "=d"(hi) : "c"(0));
    }
    const bool ymm = (xcr0 & 0x6) == 0x6;
    const bool zmm = (xcr0 & 0xE6) == 0xE6;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
      info.avx2 = avx && fma && ymm && (b & (1u << 5));
      info.avx512f = info.avx2 && zmm && (b & (1u << 16));
    }
  }
#elif defined(__aarch64__)
  info.neon = true;
#endif
  return info;
}

}  // namespace

const CpuInfo& CpuInfo::host() {
  static const CpuInfo info = probe();
  return info;
}

bool CpuInfo::supports(Isa isa) const {
  switch (isa) {
    case Isa::kScalar:
      return true;
    case Isa::kAvx2:
      return avx2;
    case Isa::kAvx512:
      return avx512f;
    case Isa::kNeon:
      return neon;
  }
  return false;
}

Isa CpuInfo::best() const {
  if (neon) return Isa::kNeon;
  if (avx512f) return Isa::kAvx512;
  if (avx2) return Isa::kAvx2;
  return Isa::kScalar;
}

Isa CpuInfo::preferred() const {
  const Isa b = best();
  if (b == Isa::kAvx512 && amd && family == 0x19) return Isa::kAvx2;
  return b;
}

}  // namespace edgefit
