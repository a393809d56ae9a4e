// One fuzz input through the runtime's own path: load the bytes (load_model_bytes), prepare the
// executor (node validation, kernel choice, weight packing, arena plan) and run it once on zero
// inputs. Shared by the libFuzzer target (fuzz_loader.cc) and the regression cases (test_main.cc).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/executor.h"
#include "core/loader.h"

namespace edgefit {
namespace fuzzing {

// Header byte 63 (high byte of `flags`, which the loader ignores) steers the harness, so the
// fuzzer can flip these choices like any other byte:
constexpr uint8_t kKeepHeader = 0x80;  // keep file size and CRC as given (else fixed up)
constexpr uint8_t kTwoThreads = 0x10;  // a 2-thread pool instead of 1
// Bits 5-6: the kernel set ("" = what a Session picks; a cap above the CPU falls back).
inline const char* isa_cap(uint8_t ctl) {
  static const char* const kCaps[4] = {"", "scalar", "avx2", "avx512"};
  return kCaps[(ctl >> 5) & 3];
}

// Models that pass the loader but whose activations exceed this are only loaded: a legal model
// that big is no bug, and zero-filling gigabytes per input would stall the fuzzer.
constexpr size_t kMaxActivationBytes = size_t(64) << 20;

enum class Outcome { kRejected, kLoadedOnly, kRan };

struct Result {
  Outcome outcome = Outcome::kRejected;
  std::string error;  // the LoadError's message when rejected
};

// Fixes up the header's file size and CRC-32 (unless kKeepHeader is set): without it nearly
// every mutation would stop at the checksum and the graph parser would never see it.
inline std::vector<uint8_t> prepare_bytes(const uint8_t* data, size_t size) {
  std::vector<uint8_t> b(data, data + size);
  if (size >= sizeof(FileHeader) && !(b[63] & kKeepHeader)) {
    const uint64_t n = size;
    std::memcpy(b.data() + offsetof(FileHeader, file_size), &n, sizeof n);
    const uint32_t crc = crc32_ieee(b.data() + 64, size - 64);
    std::memcpy(b.data() + offsetof(FileHeader, crc32), &crc, sizeof crc);
  }
  return b;
}

// Any exception other than LoadError escapes: a hostile artifact must get a LoadError (a clear
// message), never a crash, an out-of-bounds access or a stray std:: exception.
inline Result run_one(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> b = prepare_bytes(data, size);
  const uint8_t ctl = size >= sizeof(FileHeader) ? b[63] : 0;
  Result r;
  try {
    Model m = load_model_bytes(b.data(), b.size(), "fuzz");
    size_t act = 0;
    for (const ValueDef& v : m.values)
      if (v.kind != ValueKind::kConstant) {
        // numel < 2^40 per value (loader); the sum saturates at the cap.
        act += std::min(v.numel() * dtype_size(v.dtype), kMaxActivationBytes + 1);
        if (act > kMaxActivationBytes) {
          r.outcome = Outcome::kLoadedOnly;
          return r;
        }
      }
    Runtime rt(std::move(m), (ctl & kTwoThreads) ? 2 : 1, isa_cap(ctl));
    rt.run_on_zeros();
    r.outcome = Outcome::kRan;
  } catch (const LoadError& e) {
    r.outcome = Outcome::kRejected;
    r.error = e.what();
  }
  return r;
}

}  // namespace fuzzing
}  // namespace edgefit
