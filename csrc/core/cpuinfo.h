// What the CPU can run, probed once; the kernel dispatch (dispatch.cc) is the only reader.
#pragma once

#include <string>

namespace edgefit {

// Instruction-set levels kernels are built for, ordered so a cap can be compared.
enum class Isa : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2, kNeon = 3 };

const char* isa_name(Isa isa);
// Parses "scalar", "avx2", "avx512", "neon"; throws std::invalid_argument otherwise.
Isa parse_isa(const std::string& name);

struct CpuInfo {
  bool avx2 = false;     // AVX2 and FMA (both, with OS support for ymm state)
  bool avx512f = false;  // AVX-512F with OS support for zmm state
  bool neon = false;     // aarch64: always
  bool amd = false;      // x86 vendor
  unsigned family = 0;   // x86 display family (0x19 = Zen 3 / Zen 4)

  static const CpuInfo& host();
  bool supports(Isa isa) const;
  // The highest level this CPU runs.
  Isa best() const;
  // The level used by default: best(), except AVX-512 on AMD Zen 4 (family 0x19), which splits
  // 512-bit FMAs in two; there the AVX2 kernels measured as fast or faster (csrc/README.md).
  Isa preferred() const;
};

}  // namespace edgefit
