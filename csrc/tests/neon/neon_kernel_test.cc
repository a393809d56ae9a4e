// aarch64 test driver: every NEON kernel against its scalar reference over edge shapes (tails,
// k = 1, odd sizes, tiny inputs, relu6 and narrow clamps). Inputs end at a PROT_NONE page, so an
// over-read past the contract faults (reported with the case); outputs sit in sentinel-filled
// buffers compared whole, so a write outside the reference's region fails too.
// Usage: neon-kernel-tests [substring-of-kernel-name]   (exit 0 = all passed)
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cb-gemm/cb-gemm.h"
#include "kernels/f32-dwconv/f32-dwconv.h"
#include "kernels/f32-elementwise/f32-elementwise.h"
#include "kernels/f32-gemm/f32-gemm.h"
#include "kernels/f32-pool/f32-pool.h"
#include "kernels/f32-spmm/f32-spmm.h"

using namespace edgefit;

namespace {

constexpr float kSentinel = 777.0f;
char g_case[256] = "";  // the case running now, printed if an over-read faults

void on_fault(int) {
  const char msg[] = "FAULT (read past the input contract) in case: ";
  (void)!write(2, msg, sizeof msg - 1);
  (void)!write(2, g_case, std::strlen(g_case));
  (void)!write(2, "\n", 1);
  _exit(3);
}

uint64_t g_rng = 0x9E3779B97F4A7C15ull;
float uniform(float lo, float hi) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return lo + (hi - lo) * float(g_rng >> 40) / float(1ull << 24);
}

// `n` elements of T that end exactly at an unreadable page; freed when it goes out of scope.
template <typename T>
class Guarded {
 public:
  explicit Guarded(size_t n) : n_(n) {
    const size_t page = size_t(sysconf(_SC_PAGESIZE));
    const size_t bytes = n * sizeof(T);
    map_bytes_ = (bytes + page - 1) / page * page + page;
    base_ = static_cast<char*>(
        mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (base_ == MAP_FAILED) std::abort();
    mprotect(base_ + map_bytes_ - page, page, PROT_NONE);
    data_ = reinterpret_cast<T*>(base_ + map_bytes_ - page - bytes);
  }
  ~Guarded() { munmap(base_, map_bytes_); }
  Guarded(const Guarded&) = delete;
  Guarded& operator=(const Guarded&) = delete;
  T* data() { return data_; }
  T& operator[](size_t i) { return data_[i]; }
  size_t size() const { return n_; }
  void fill_uniform(float lo, float hi) {
    for (size_t i = 0; i < n_; ++i) data_[i] = T(uniform(lo, hi));
  }

 private:
  size_t n_, map_bytes_;
  char* base_;
  T* data_;
};

// An output buffer with 16 sentinel floats on each side.
struct Out {
  explicit Out(size_t n) : v(n + 32, kSentinel) {}
  float* data() { return v.data() + 16; }
  std::vector<float> v;
};

struct Stats {
  const char* kernel;
  int cases = 0, failures = 0;
};

// Whole-buffer comparison: sentinels must match exactly, values within atol + rtol * |ref|.
void compare(Stats& s, const Out& got, const Out& ref, float atol) {
  ++s.cases;
  const float rtol = 2e-6f;
  for (size_t i = 0; i < ref.v.size(); ++i) {
    const float g = got.v[i], r = ref.v[i];
    const bool sentinel = r == kSentinel || g == kSentinel;
    const bool ok = sentinel ? g == r : std::fabs(g - r) <= atol + rtol * std::fabs(r);
    if (!ok) {
      if (s.failures < 5)
        std::fprintf(stderr, "MISMATCH %s [%s] at %zd: got %.9g want %.9g\n", s.kernel, g_case,
                     ptrdiff_t(i) - 16, g, r);
      ++s.failures;
      return;
    }
  }
}

bool report(const Stats& s) {
  std::printf("%s %s: %d cases%s\n", s.failures ? "FAIL" : "PASS", s.kernel, s.cases,
              s.failures ? " (mismatches above)" : "");
  return s.failures == 0;
}

const float kInf = std::numeric_limits<float>::infinity();
const f32_minmax kClamps[] = {{-kInf, kInf}, {0.0f, 6.0f}, {-0.3f, 0.25f}, {0.0f, kInf}};

bool selected(const char* name, const char* filter) {
  return filter == nullptr || std::strstr(name, filter) != nullptr;
}

bool test_gemm() {
  Stats s{"f32_gemm_ukernel_8x8__neonfma"};
  for (size_t mr = 1; mr <= 8; ++mr)
    for (size_t n : {1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 33})
      for (size_t k : {0, 1, 2, 3, 7, 16, 31})
        for (const f32_minmax& cl : kClamps) {
          const size_t ldb = n + (k % 3), ldc = n + 5;
          std::snprintf(g_case, sizeof g_case, "mr=%zu n=%zu k=%zu ldb=%zu clamp=[%g,%g]", mr, n, k,
                        ldb, cl.min, cl.max);
          std::vector<float> w(mr * k), bias(mr);
          for (auto& v : w) v = uniform(-1.5f, 1.5f);
          for (auto& v : bias) v = uniform(-1.0f, 1.0f);
          Guarded<float> b(k == 0 ? 1 : (k - 1) * ldb + n);
          b.fill_uniform(-1.5f, 1.5f);
          Guarded<float> p8(f32_gemm_packed_size(mr, k, 8));
          f32_gemm_pack(mr, k, 8, w.data(), bias.data(), p8.data());
          std::vector<float> p4(f32_gemm_packed_size(mr, k, 4));
          f32_gemm_pack(mr, k, 4, w.data(), bias.data(), p4.data());
          Out got(mr * ldc), ref(mr * ldc);
          for (size_t i0 = 0; i0 < mr; i0 += 4)
            f32_gemm_ukernel_4x8__scalar(mr - i0 < 4 ? mr - i0 : 4, n, k,
                                         p4.data() + (i0 / 4) * 4 * (k + 1), b.data(), ldb,
                                         ref.data() + i0 * ldc, ldc, &cl);
          f32_gemm_ukernel_8x8__neonfma(mr, n, k, p8.data(), b.data(), ldb, got.data(), ldc, &cl);
          compare(s, got, ref, 1e-6f * float(k + 1));
        }
  return report(s);
}

bool test_gemv() {
  Stats s{"f32_gemv_ukernel_4x4__neonfma"};
  for (size_t m : {1, 2, 3, 4, 5, 7, 8, 9, 17})
    for (size_t k : {1, 2, 3, 4, 5, 7, 8, 9, 31, 64})
      for (bool with_bias : {false, true})
        for (const f32_minmax& cl : kClamps) {
          std::snprintf(g_case, sizeof g_case, "m=%zu k=%zu bias=%d clamp=[%g,%g]", m, k,
                        int(with_bias), cl.min, cl.max);
          Guarded<float> w(m * k), x(k), bias(m);
          w.fill_uniform(-1.5f, 1.5f);
          x.fill_uniform(-1.5f, 1.5f);
          bias.fill_uniform(-1.0f, 1.0f);
          const float* bp = with_bias ? bias.data() : nullptr;
          Out got(m), ref(m);
          f32_gemv_ukernel_4x1__scalar(m, k, w.data(), bp, x.data(), ref.data(), &cl);
          f32_gemv_ukernel_4x4__neonfma(m, k, w.data(), bp, x.data(), got.data(), &cl);
          compare(s, got, ref, 1e-6f * float(k + 1));
        }
  return report(s);
}

// A random block-sparse matrix (block_rows x channels, blocks of B rows x 1 column) in BSR form.
struct Bsr {
  std::vector<int32_t> row_ptr, col_idx;
  std::vector<float> values;
};

Bsr random_bsr(size_t block_rows, size_t channels, size_t B, float density) {
  Bsr m;
  m.row_ptr.push_back(0);
  for (size_t r = 0; r < block_rows; ++r) {
    for (size_t c = 0; c < channels; ++c) {
      if (uniform(0.0f, 1.0f) >= density) continue;
      m.col_idx.push_back(int32_t(c));
      for (size_t b = 0; b < B; ++b) m.values.push_back(uniform(-1.5f, 1.5f));
    }
    m.row_ptr.push_back(int32_t(m.col_idx.size()));
  }
  return m;
}

using SpmmFn = f32_spmm_ukernel_fn;

bool test_spmm(const char* name, SpmmFn fast, SpmmFn ref_fn, size_t B) {
  Stats s{name};
  for (size_t pixels : {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 48, 63, 64, 65, 100})
    for (size_t channels : {1, 3, 17})
      for (float density : {0.0f, 0.3f, 1.0f})
        for (const f32_minmax& cl : kClamps) {
          const size_t block_rows = 5, first = 2;  // rows [first, block_rows): row_ptr[0] > 0
          const bool with_bias = channels != 3;
          const size_t xs = pixels + (channels % 2), ys = pixels + 3;
          std::snprintf(g_case, sizeof g_case, "pixels=%zu channels=%zu density=%g clamp=[%g,%g]",
                        pixels, channels, density, cl.min, cl.max);
          const Bsr m = random_bsr(block_rows, channels, B, density);
          Guarded<float> x((channels - 1) * xs + pixels);
          x.fill_uniform(-1.5f, 1.5f);
          Guarded<float> bias(block_rows * B);
          bias.fill_uniform(-1.0f, 1.0f);
          const size_t rows = block_rows - first;
          const float* bp = with_bias ? bias.data() + first * B : nullptr;
          Guarded<int32_t> rp(rows + 1);
          for (size_t i = 0; i <= rows; ++i) rp[i] = m.row_ptr[first + i];
          const int32_t* ci = m.col_idx.empty() ? rp.data() : m.col_idx.data();
          const float* vals = m.values.empty() ? bias.data() : m.values.data();
          Out got(rows * B * ys), ref(rows * B * ys);
          ref_fn(pixels, rows, rp.data(), ci, vals, bp, x.data(), xs, ref.data(), ys, &cl);
          fast(pixels, rows, rp.data(), ci, vals, bp, x.data(), xs, got.data(), ys, &cl);
          compare(s, got, ref, 1e-6f * float(channels + 1));
        }
  return report(s);
}

// Packs random codes (LSB first, each row on a byte) for an [m, k] codebook matrix.
std::vector<uint8_t> pack_codes(size_t m, size_t k, uint32_t bits, size_t row_bytes) {
  std::vector<uint8_t> packed(m * row_bytes, 0);
  for (size_t r = 0; r < m; ++r)
    for (size_t kk = 0; kk < k; ++kk) {
      const uint32_t code = uint32_t(uniform(0.0f, float(1u << bits))) & ((1u << bits) - 1u);
      const size_t bit = kk * bits;
      packed[r * row_bytes + bit / 8] |= uint8_t(code << (bit % 8));
      if ((bit % 8) + bits > 8)
        packed[r * row_bytes + bit / 8 + 1] |= uint8_t(code >> (8 - bit % 8));
    }
  return packed;
}

bool test_cb_gemm() {
  Stats s{"cb_gemm_ukernel_4x16__neonfma"};
  for (uint32_t bits : {2u, 3u, 4u, 5u, 8u})
    for (size_t k : {1, 2, 7, 15, 16, 17, 33, 255, 256, 257, 600})
      for (size_t n : {1, 3, 4, 5, 15, 16, 17, 37})
        for (size_t mr : {1, 2, 3, 4}) {
          const size_t m0 = (k + n) % 2 ? 3 : 0, m = m0 + mr, groups = 2;
          const bool with_bias = (k + mr) % 2 == 0;
          const f32_minmax& cl = kClamps[(k + n + mr) % 3];
          const size_t ldx = n + (k % 2), ldy = n + 2;
          std::snprintf(g_case, sizeof g_case, "bits=%u k=%zu n=%zu m0=%zu mr=%zu clamp=[%g,%g]",
                        bits, k, n, m0, mr, cl.min, cl.max);
          const size_t row_bytes = (k * bits + 7) / 8, entries = size_t(1) << bits;
          const std::vector<uint8_t> codes = pack_codes(m, k, bits, row_bytes);
          Guarded<uint8_t> packed(codes.size());
          std::memcpy(packed.data(), codes.data(), codes.size());
          Guarded<float> table(groups * entries), scale(m), bias(m);
          table.fill_uniform(-1.5f, 1.5f);
          scale.fill_uniform(0.5f, 2.0f);
          bias.fill_uniform(-1.0f, 1.0f);
          Guarded<int32_t> group(m);
          for (size_t r = 0; r < m; ++r) group[r] = int32_t(r % groups);
          Guarded<float> x((k - 1) * ldx + n);
          x.fill_uniform(-1.5f, 1.5f);
          const cb_weights w{
              m, k, bits, row_bytes, packed.data(), table.data(), group.data(), scale.data()};
          const float* bp = with_bias ? bias.data() : nullptr;
          Out got(mr * ldy), ref(mr * ldy);
          cb_gemm_ukernel_4x8__scalar(m0, mr, n, &w, bp, x.data(), ldx, ref.data(), ldy, &cl);
          cb_gemm_ukernel_4x16__neonfma(m0, mr, n, &w, bp, x.data(), ldx, got.data(), ldy, &cl);
          compare(s, got, ref, 2e-6f * float(k + 1));
        }
  return report(s);
}

bool test_dwconv(const char* name, f32_dwconv_ukernel_fn fast, size_t K, size_t S) {
  Stats s{name};
  for (size_t ho : {1, 2, 5})
    for (size_t wo : {1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17})
      for (size_t extra : {0, 3})
        for (const f32_minmax& cl : kClamps) {
          const size_t stride = (wo - 1) * S + K + extra, rows = (ho - 1) * S + K;
          std::snprintf(g_case, sizeof g_case, "ho=%zu wo=%zu stride=%zu clamp=[%g,%g]", ho, wo,
                        stride, cl.min, cl.max);
          // The contract's slack: 32 readable floats past the last element a window touches.
          Guarded<float> xpad((rows - 1) * stride + (wo - 1) * S + K + 32);
          xpad.fill_uniform(-1.5f, 1.5f);
          Guarded<float> w(K * K);
          w.fill_uniform(-1.5f, 1.5f);
          const float bias = uniform(-1.0f, 1.0f);
          const f32_dwconv_params p{K, K, S, S, 1, 1, cl};
          Out got(ho * wo), ref(ho * wo);
          f32_dwconv_ukernel_kxk__scalar(ho, wo, xpad.data(), stride, w.data(), bias, ref.data(),
                                         &p);
          fast(ho, wo, xpad.data(), stride, w.data(), bias, got.data(), &p);
          compare(s, got, ref, 1e-6f * float(K * K + 1));
        }
  return report(s);
}

// The unpadded entry point (the one the executor calls) over padding 0..2 on every side: the
// channel ends at an unreadable page, so reading past it faults; stores are checked by sentinels.
bool test_dwconv_chw(const char* name, f32_dwconv_chw_ukernel_fn fast, size_t K, size_t S) {
  Stats s{name};
  for (size_t h : {1, 2, 3, 4, 5, 6, 7, 8, 9, 14})
    for (size_t w : {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 14, 16, 28})
      for (size_t pt : {0, 1, 2})
        for (size_t pl : {0, 1, 2})
          for (size_t pb : {pt, size_t(0)})
            for (const f32_minmax& cl : {kClamps[0], kClamps[1]}) {
              if (h + pt + pb < K || w + 2 * pl < K) continue;
              const size_t ho = (h + pt + pb - K) / S + 1, wo = (w + 2 * pl - K) / S + 1;
              std::snprintf(g_case, sizeof g_case, "h=%zu w=%zu pad t%zu l%zu b%zu clamp=[%g,%g]",
                            h, w, pt, pl, pb, cl.min, cl.max);
              Guarded<float> x(h * w);
              x.fill_uniform(-1.5f, 1.5f);
              Guarded<float> k(K * K);
              k.fill_uniform(-1.5f, 1.5f);
              const float bias = uniform(-1.0f, 1.0f);
              const f32_dwconv_params p{K, K, S, S, 1, 1, cl};
              Out got(ho * wo), ref(ho * wo);
              f32_dwconv_ukernel_kxk__scalar(1, h, w, x.data(), pt, pl, ho, wo, k.data(), &bias,
                                             ref.data(), &p);
              fast(1, h, w, x.data(), pt, pl, ho, wo, k.data(), &bias, got.data(), &p);
              compare(s, got, ref, 1e-6f * float(K * K + 1));
            }
  return report(s);
}

bool test_elementwise(const char* filter) {
  bool ok = true;
  const size_t sizes[] = {0, 1, 3, 4, 5, 7, 8, 9, 17, 100};
  auto run = [&](const char* name, auto&& body) {
    if (!selected(name, filter)) return;
    Stats s{name};
    for (size_t n : sizes)
      for (bool in_place : {false, true})
        for (const f32_minmax& cl : kClamps) {
          std::snprintf(g_case, sizeof g_case, "n=%zu in_place=%d clamp=[%g,%g]", n, int(in_place),
                        cl.min, cl.max);
          body(s, n, in_place, cl);
        }
    ok = report(s) && ok;
  };
  // In place: the input is copied into the output buffer first and the kernel reads it there.
  run("f32_vclamp__neon", [](Stats& s, size_t n, bool in_place, const f32_minmax& cl) {
    Guarded<float> x(n + 1);
    x.fill_uniform(-8.0f, 8.0f);
    Out got(n), ref(n);
    f32_vclamp__scalar(n, x.data(), ref.data(), &cl);
    if (in_place) std::memcpy(got.data(), x.data(), n * sizeof(float));
    f32_vclamp__neon(n, in_place ? got.data() : x.data(), got.data(), &cl);
    compare(s, got, ref, 0.0f);
  });
  run("f32_vhswish__neon", [](Stats& s, size_t n, bool in_place, const f32_minmax&) {
    Guarded<float> x(n + 1);
    x.fill_uniform(-8.0f, 8.0f);
    Out got(n), ref(n);
    f32_vhswish__scalar(n, x.data(), ref.data());
    if (in_place) std::memcpy(got.data(), x.data(), n * sizeof(float));
    f32_vhswish__neon(n, in_place ? got.data() : x.data(), got.data());
    compare(s, got, ref, 0.0f);
  });
  run("f32_vadd__neon", [](Stats& s, size_t n, bool in_place, const f32_minmax& cl) {
    Guarded<float> a(n + 1), b(n + 1);
    a.fill_uniform(-8.0f, 8.0f);
    b.fill_uniform(-8.0f, 8.0f);
    Out got(n), ref(n);
    f32_vadd__scalar(n, a.data(), b.data(), ref.data(), &cl);
    if (in_place) std::memcpy(got.data(), a.data(), n * sizeof(float));
    f32_vadd__neon(n, in_place ? got.data() : a.data(), b.data(), got.data(), &cl);
    compare(s, got, ref, 0.0f);
  });
  run("f32_vaffine__neon", [](Stats& s, size_t n, bool in_place, const f32_minmax& cl) {
    const size_t channels = 3;
    Guarded<float> x(channels * n + 1), scale(channels), shift(channels);
    x.fill_uniform(-8.0f, 8.0f);
    scale.fill_uniform(-2.0f, 2.0f);
    shift.fill_uniform(-1.0f, 1.0f);
    Out got(channels * n), ref(channels * n);
    f32_vaffine__scalar(channels, n, x.data(), scale.data(), shift.data(), ref.data(), &cl);
    if (in_place) std::memcpy(got.data(), x.data(), channels * n * sizeof(float));
    f32_vaffine__neon(channels, n, in_place ? got.data() : x.data(), scale.data(), shift.data(),
                      got.data(), &cl);
    compare(s, got, ref, 1e-6f);
  });
  return ok;
}

bool test_global_avgpool() {
  Stats s{"f32_global_avgpool__neon"};
  for (size_t channels : {1, 3, 7})
    for (size_t pixels : {1, 2, 3, 4, 5, 7, 8, 9, 12, 17, 49, 196}) {
      std::snprintf(g_case, sizeof g_case, "channels=%zu pixels=%zu", channels, pixels);
      Guarded<float> x(channels * pixels);
      x.fill_uniform(-4.0f, 4.0f);
      Out got(channels), ref(channels);
      f32_global_avgpool__scalar(channels, pixels, x.data(), ref.data());
      f32_global_avgpool__neon(channels, pixels, x.data(), got.data());
      compare(s, got, ref, 1e-6f);  // summation order differs
    }
  return report(s);
}

}  // namespace

int main(int argc, char** argv) {
  const char* filter = argc > 1 ? argv[1] : nullptr;
  signal(SIGSEGV, on_fault);
  signal(SIGBUS, on_fault);
  bool ok = true;
  int ran = 0;
  auto maybe = [&](const char* name, auto&& fn) {
    if (!selected(name, filter)) return;
    ++ran;
    ok = fn() && ok;
  };
  maybe("f32_gemm_ukernel_8x8__neonfma", test_gemm);
  maybe("f32_gemv_ukernel_4x4__neonfma", test_gemv);
  maybe("f32_spmm_ukernel_32x1__neonfma", [] {
    return test_spmm("f32_spmm_ukernel_32x1__neonfma", f32_spmm_ukernel_32x1__neonfma,
                     f32_spmm_ukernel_8x1__scalar, 1);
  });
  maybe("f32_spmm_ukernel_32x2__neonfma", [] {
    return test_spmm("f32_spmm_ukernel_32x2__neonfma", f32_spmm_ukernel_32x2__neonfma,
                     f32_spmm_ukernel_8x2__scalar, 2);
  });
  maybe("f32_spmm_ukernel_32x4__neonfma", [] {
    return test_spmm("f32_spmm_ukernel_32x4__neonfma", f32_spmm_ukernel_32x4__neonfma,
                     f32_spmm_ukernel_8x4__scalar, 4);
  });
  maybe("cb_gemm_ukernel_4x16__neonfma", test_cb_gemm);
  maybe("f32_dwconv_ukernel_3x3s1__neonfma", [] {
    return test_dwconv("f32_dwconv_ukernel_3x3s1__neonfma", f32_dwconv_ukernel_3x3s1__neonfma, 3,
                       1);
  });
  maybe("f32_dwconv_ukernel_3x3s1__neonfma", [] {
    return test_dwconv_chw("f32_dwconv_ukernel_3x3s1__neonfma/unpadded",
                           f32_dwconv_ukernel_3x3s1__neonfma, 3, 1);
  });
  maybe("f32_dwconv_ukernel_3x3s2__neonfma", [] {
    return test_dwconv("f32_dwconv_ukernel_3x3s2__neonfma", f32_dwconv_ukernel_3x3s2__neonfma, 3,
                       2);
  });
  maybe("f32_dwconv_ukernel_3x3s2__neonfma", [] {
    return test_dwconv_chw("f32_dwconv_ukernel_3x3s2__neonfma/unpadded",
                           f32_dwconv_ukernel_3x3s2__neonfma, 3, 2);
  });
  maybe("f32_dwconv_ukernel_5x5s1__neonfma", [] {
    return test_dwconv("f32_dwconv_ukernel_5x5s1__neonfma", f32_dwconv_ukernel_5x5s1__neonfma, 5,
                       1);
  });
  maybe("f32_dwconv_ukernel_5x5s1__neonfma", [] {
    return test_dwconv_chw("f32_dwconv_ukernel_5x5s1__neonfma/unpadded",
                           f32_dwconv_ukernel_5x5s1__neonfma, 5, 1);
  });
  maybe("f32_dwconv_ukernel_5x5s2__neonfma", [] {
    return test_dwconv("f32_dwconv_ukernel_5x5s2__neonfma", f32_dwconv_ukernel_5x5s2__neonfma, 5,
                       2);
  });
  maybe("f32_dwconv_ukernel_5x5s2__neonfma", [] {
    return test_dwconv_chw("f32_dwconv_ukernel_5x5s2__neonfma/unpadded",
                           f32_dwconv_ukernel_5x5s2__neonfma, 5, 2);
  });
  maybe("f32_global_avgpool__neon", test_global_avgpool);
  if (test_elementwise(filter) == false) ok = false;
  const bool any_elementwise = filter == nullptr || std::strstr(
                                                        "f32_vclamp__neon f32_vhswish__neon "
                                                        "f32_vadd__neon f32_vaffine__neon",
                                                        filter) != nullptr;
  if (ran == 0 && !any_elementwise) {
    std::fprintf(stderr, "no kernel matches '%s'\n", filter);
    return 2;
  }
  std::printf("%s\n", ok ? "ALL PASSED" : "FAILURES");
  return ok ? 0 : 1;
}
