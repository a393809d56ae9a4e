// Calls one kernel `calls` times on a fixed shape, for guest instruction counts under qemu-aarch64
// with the insncount plugin: count(calls = 1) - count(calls = 0) is one call, set-up excluded.
// Usage: neon-bench KERNEL CALLS   (KERNEL from the table in main; prints a checksum)
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cb-gemm/cb-gemm.h"
#include "kernels/f32-dwconv/f32-dwconv.h"
#include "kernels/f32-gemm/f32-gemm.h"
#include "kernels/f32-spmm/f32-spmm.h"

using namespace edgefit;

namespace {

// Shapes (printed by --shapes so the measurement script can compute MACs per call).
constexpr size_t kGemmM = 8, kGemmN = 64, kGemmK = 64;   // one 8-row panel, 64 columns
constexpr size_t kGemvM = 64, kGemvK = 256;              // a 256 -> 64 linear layer
constexpr size_t kSpRows = 16, kSpCh = 64, kSpPx = 256;  // 16 x 64 1x1 conv, 16x16 pixels
constexpr size_t kCbM = 4, kCbK = 256, kCbN = 64;        // 4 rows, 4-bit codes
constexpr size_t kDwH = 16, kDwW = 16;                   // 3x3 s1 over a 16x16 channel
constexpr int kSpKeepEvery = 4;                          // 75 % sparse

std::vector<float> filled(size_t n, float seed) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = float((i * 37 + size_t(seed * 11)) % 19) / 19.0f - 0.5f;
  return v;
}

const f32_minmax kNone = {-std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::infinity()};

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "--shapes") == 0) {
    // kernel  MACs-per-call (the useful multiply-adds; fmla does 4)
    std::printf("gemm %zu\ngemv %zu\nspmm %zu\ncb4 %zu\ndw3x3 %zu\n", kGemmM * kGemmN * kGemmK,
                kGemvM * kGemvK, kSpRows * (kSpCh / kSpKeepEvery) * kSpPx, kCbM * kCbK * kCbN,
                kDwH * kDwW * 9);
    return 0;
  }
  if (argc != 3) {
    std::fprintf(stderr, "usage: neon-bench KERNEL CALLS | --shapes\n");
    return 2;
  }
  const std::string kernel = argv[1];
  const int calls = std::atoi(argv[2]);
  double checksum = 0.0;

  // GEMM: one 8-row panel for the NEON kernel, two 4-row panels for the scalar reference.
  const std::vector<float> w = filled(kGemmM * kGemmK, 1), bias = filled(kGemmM, 2);
  const std::vector<float> b = filled(kGemmK * kGemmN, 3);
  std::vector<float> p8(f32_gemm_packed_size(kGemmM, kGemmK, 8));
  std::vector<float> p4(f32_gemm_packed_size(kGemmM, kGemmK, 4));
  f32_gemm_pack(kGemmM, kGemmK, 8, w.data(), bias.data(), p8.data());
  f32_gemm_pack(kGemmM, kGemmK, 4, w.data(), bias.data(), p4.data());
  std::vector<float> c(kGemmM * kGemmN);

  const std::vector<float> gw = filled(kGemvM * kGemvK, 4), gx = filled(kGemvK, 5);
  const std::vector<float> gb = filled(kGemvM, 12);
  std::vector<float> gy(kGemvM);

  std::vector<int32_t> row_ptr(1, 0), col_idx;
  std::vector<float> values;
  for (size_t r = 0; r < kSpRows; ++r) {
    for (size_t ch = r % kSpKeepEvery; ch < kSpCh; ch += kSpKeepEvery) {
      col_idx.push_back(int32_t(ch));
      values.push_back(float(ch % 7) / 7.0f - 0.4f);
    }
    row_ptr.push_back(int32_t(col_idx.size()));
  }
  const std::vector<float> sx = filled(kSpCh * kSpPx, 6);
  std::vector<float> sy(kSpRows * kSpPx);

  const size_t row_bytes = kCbK / 2;
  std::vector<uint8_t> packed(kCbM * row_bytes);
  for (size_t i = 0; i < packed.size(); ++i) packed[i] = uint8_t(i * 131 + 7);
  const std::vector<float> table = filled(16, 7), scale = filled(kCbM, 8);
  const std::vector<int32_t> group(kCbM, 0);
  const cb_weights cw{kCbM,         kCbK,         4,           row_bytes, packed.data(),
                      table.data(), group.data(), scale.data()};
  const std::vector<float> cx = filled(kCbK * kCbN, 9);
  std::vector<float> cy(kCbM * kCbN);

  const size_t stride = kDwW + 2;
  const std::vector<float> xpad = filled((kDwH + 2) * stride + 32, 10), dw = filled(9, 11);
  const f32_dwconv_params dp{3, 3, 1, 1, 1, 1, kNone};
  std::vector<float> dy(kDwH * kDwW);

  // Resolved once, so the loop adds only a switch (a few instructions) to each call.
  static const char* const kNames[] = {"gemm",  "gemm-scalar", "gemv", "gemv-scalar",
                                       "spmm",  "spmm-scalar", "cb4",  "cb4-scalar",
                                       "dw3x3", "dw3x3-scalar"};
  int id = -1;
  for (int i = 0; i < 10; ++i)
    if (kernel == kNames[i]) id = i;
  if (id < 0) {
    std::fprintf(stderr, "unknown kernel '%s'\n", kernel.c_str());
    return 2;
  }
  for (int call = 0; call < calls; ++call) {
    switch (id) {
      case 0:
        f32_gemm_ukernel_8x8__neonfma(8, kGemmN, kGemmK, p8.data(), b.data(), kGemmN, c.data(),
                                      kGemmN, &kNone);
        break;
      case 1:
        for (size_t i0 = 0; i0 < kGemmM; i0 += 4)
          f32_gemm_ukernel_4x8__scalar(4, kGemmN, kGemmK, p4.data() + (i0 / 4) * 4 * (kGemmK + 1),
                                       b.data(), kGemmN, c.data() + i0 * kGemmN, kGemmN, &kNone);
        break;
      case 2:
        f32_gemv_ukernel_4x4__neonfma(kGemvM, kGemvK, gw.data(), gb.data(), gx.data(), gy.data(),
                                      &kNone);
        break;
      case 3:
        f32_gemv_ukernel_4x1__scalar(kGemvM, kGemvK, gw.data(), gb.data(), gx.data(), gy.data(),
                                     &kNone);
        break;
      case 4:
        f32_spmm_ukernel_32x1__neonfma(kSpPx, kSpRows, row_ptr.data(), col_idx.data(),
                                       values.data(), nullptr, sx.data(), kSpPx, sy.data(), kSpPx,
                                       &kNone);
        break;
      case 5:
        f32_spmm_ukernel_8x1__scalar(kSpPx, kSpRows, row_ptr.data(), col_idx.data(), values.data(),
                                     nullptr, sx.data(), kSpPx, sy.data(), kSpPx, &kNone);
        break;
      case 6:
        cb_gemm_ukernel_4x16__neonfma(0, kCbM, kCbN, &cw, nullptr, cx.data(), kCbN, cy.data(), kCbN,
                                      &kNone);
        break;
      case 7:
        cb_gemm_ukernel_4x8__scalar(0, kCbM, kCbN, &cw, nullptr, cx.data(), kCbN, cy.data(), kCbN,
                                    &kNone);
        break;
      case 8:
        f32_dwconv_ukernel_3x3s1__neonfma(kDwH, kDwW, xpad.data(), stride, dw.data(), 0.1f,
                                          dy.data(), &dp);
        break;
      case 9:
        f32_dwconv_ukernel_kxk__scalar(kDwH, kDwW, xpad.data(), stride, dw.data(), 0.1f, dy.data(),
                                       &dp);
        break;
    }
  }
  for (const auto* v : {&c, &gy, &sy, &cy, &dy})
    for (float f : *v) checksum += f;
  std::printf("checksum %.6f\n", checksum);
  return 0;
}
