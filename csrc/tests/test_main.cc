// C++ tests of the core (runs under ctest, and under ASan/UBSan with -DEDGEFIT_SANITIZE=ON):
// CRC-32, the loader on hostile bytes, the arena planner, and every fast kernel this CPU can run
// against its scalar reference over edge shapes.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/cpuinfo.h"
#include "core/dispatch.h"
#include "core/executor.h"
#include "core/loader.h"
#include "core/planner.h"
#include "core/thread_pool.h"

using namespace edgefit;

static int g_failures = 0;
#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++g_failures;                                                                 \
    }                                                                               \
  } while (0)

static std::vector<float> randv(std::mt19937& rng, size_t n) {
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

static float max_err(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0;
  for (size_t i = 0; i < a.size(); ++i)
    m = std::max(m, std::fabs(a[i] - b[i]) / (1.0f + std::fabs(b[i])));
  return m;
}

static void test_crc() {
  const char* s = "123456789";
  CHECK(crc32_ieee(reinterpret_cast<const uint8_t*>(s), 9) == 0xCBF43926u);
}

static void test_loader_rejects_garbage() {
  std::mt19937 rng(1);
  for (size_t n : {0, 10, 63, 64, 100, 4096}) {
    std::vector<uint8_t> b(n);
    for (auto& x : b) x = uint8_t(rng());
    if (n >= 8) std::memcpy(b.data(), "EDGEFIT\0", 8);
    bool threw = false;
    try {
      load_model_bytes(b.data(), b.size());
    } catch (const LoadError&) {
      threw = true;
    }
    CHECK(threw);
  }
}

static void test_planner() {
  std::vector<BufferRequest> reqs = {{100, 0, 1}, {200, 1, 2}, {300, 2, 3}, {50, 3, 4}};
  const ArenaPlan p = plan_arena(reqs);
  for (size_t i = 0; i < reqs.size(); ++i)
    for (size_t j = i + 1; j < reqs.size(); ++j) {
      const bool live = !(reqs[i].last < reqs[j].first || reqs[j].last < reqs[i].first);
      const bool disjoint = p.offsets[i] + reqs[i].bytes <= p.offsets[j] ||
                            p.offsets[j] + reqs[j].bytes <= p.offsets[i];
      if (live) CHECK(disjoint);
    }
  CHECK(p.arena_bytes < 100 + 200 + 300 + 50 + 4 * 64);
}

static void test_thread_pool() {
  ThreadPool pool(3);
  std::vector<int> hit(1000, 0);
  for (int rep = 0; rep < 20; ++rep) pool.parallel_for(hit.size(), [&](size_t i) { hit[i]++; });
  for (int h : hit) CHECK(h == 20);
}

static void test_kernels(Isa isa) {
  std::mt19937 rng(7);
  const KernelSet ref = select_kernels(CpuInfo::host(), Isa::kScalar);
  const KernelSet fast = select_kernels(CpuInfo::host(), isa);
  const f32_minmax mm{-1.5f, 2.0f};
  // GEMM over edge shapes (row tails, column tails, k = 1).
  for (size_t m : {1, 5, 6, 13})
    for (size_t n : {1, 7, 16, 33})
      for (size_t k : {1, 3, 64}) {
        auto w = randv(rng, m * k), b = randv(rng, k * n), bias = randv(rng, m);
        auto run = [&](const GemmConfig& g) {
          std::vector<float> packed(f32_gemm_packed_size(m, k, g.mr));
          f32_gemm_pack(m, k, g.mr, w.data(), bias.data(), packed.data());
          std::vector<float> c(m * n);
          for (size_t p = 0; p * g.mr < m; ++p)
            g.gemm.fn(std::min(g.mr, m - p * g.mr), n, k, packed.data() + p * g.mr * (k + 1),
                      b.data(), n, c.data() + p * g.mr * n, n, &mm);
          return c;
        };
        CHECK(max_err(run(fast.gemm), run(ref.gemm)) < 1e-5f);
        std::vector<float> y0(m), y1(m), x = randv(rng, k);
        ref.gemm.gemv.fn(m, k, w.data(), bias.data(), x.data(), y0.data(), &mm);
        fast.gemm.gemv.fn(m, k, w.data(), bias.data(), x.data(), y1.data(), &mm);
        CHECK(max_err(y1, y0) < 1e-5f);
      }
  // SpMM, every block size.
  for (size_t bi = 0; bi < 3; ++bi) {
    const size_t B = size_t(1) << bi;
    for (size_t pixels : {1, 9, 32, 45, 100}) {
      const size_t brows = 3, k = 11;
      std::vector<int32_t> row_ptr = {0}, col;
      for (size_t r = 0; r < brows; ++r) {
        for (size_t c = 0; c < k; ++c)
          if (rng() % 3 == 0) col.push_back(int32_t(c));
        row_ptr.push_back(int32_t(col.size()));
      }
      auto vals = randv(rng, col.size() * B), x = randv(rng, k * pixels),
           bias = randv(rng, brows * B);
      std::vector<float> y0(brows * B * pixels), y1(y0.size());
      ref.spmm.by_block[bi].fn(pixels, brows, row_ptr.data(), col.data(), vals.data(), bias.data(),
                               x.data(), pixels, y0.data(), pixels, &mm);
      fast.spmm.by_block[bi].fn(pixels, brows, row_ptr.data(), col.data(), vals.data(), bias.data(),
                                x.data(), pixels, y1.data(), pixels, &mm);
      CHECK(max_err(y1, y0) < 1e-5f);
    }
  }
  // Codebook GEMM, bits 2..8, a K longer than one decode chunk.
  for (uint32_t bits = 2; bits <= 8; ++bits)
    for (size_t k : {1, 7, 600}) {
      const size_t m = 7, n = 19, rb = (k * bits + 7) / 8;
      std::vector<uint8_t> packed(m * rb);
      for (auto& p : packed) p = uint8_t(rng());
      auto table = randv(rng, 2 << bits), scale = randv(rng, m), x = randv(rng, k * n),
           bias = randv(rng, m);
      std::vector<int32_t> group(m);
      for (size_t i = 0; i < m; ++i) group[i] = int32_t(i % 2);
      cb_weights w{m, k, bits, rb, packed.data(), table.data(), group.data(), scale.data()};
      std::vector<float> y0(m * n), y1(m * n);
      for (size_t m0 = 0; m0 < m; m0 += 4) {
        ref.cb.gemm.fn(m0, std::min<size_t>(4, m - m0), n, &w, bias.data(), x.data(), n,
                       y0.data() + m0 * n, n, &mm);
        fast.cb.gemm.fn(m0, std::min<size_t>(4, m - m0), n, &w, bias.data(), x.data(), n,
                        y1.data() + m0 * n, n, &mm);
      }
      CHECK(max_err(y1, y0) < 1e-4f);
      // The executor's path: panels decoded once (cb_gemm_decode_panel) and multiplied by the
      // dense f32-gemm microkernel; and whole rows decoded (depthwise weights).
      const size_t gmr = fast.gemm.mr;
      std::vector<float> panel(gmr * (k + 1)), y2(m * n);
      for (size_t m0 = 0; m0 < m; m0 += gmr) {
        const size_t rows = std::min(gmr, m - m0);
        cb_gemm_decode_panel(m0, rows, gmr, &w, bias.data(), panel.data());
        fast.gemm.gemm.fn(rows, n, k, panel.data(), x.data(), n, y2.data() + m0 * n, n, &mm);
      }
      CHECK(max_err(y2, y0) < 1e-4f);
#if defined(__x86_64__) || defined(_M_X64)
      if (fast.cb.gemm.fn == cb_gemm_ukernel_6x16__avx2_fma) {
        // The vectorised 6-row decode gives the generic decode's panel bit for bit.
        std::vector<float> pa(6 * (k + 1) + 8), pb(pa.size());
        for (size_t m0 = 0; m0 < m; m0 += 6) {
          cb_gemm_decode_panel(m0, std::min<size_t>(6, m - m0), 6, &w, bias.data(), pa.data());
          cb_gemm_decode_panel_6__avx2(m0, std::min<size_t>(6, m - m0), &w, bias.data(), pb.data());
          pa.resize(6 * (k + 1));
          pb.resize(6 * (k + 1));
          CHECK(pa == pb);
          pa.resize(6 * (k + 1) + 8);
          pb.resize(6 * (k + 1) + 8);
        }
      }
#endif
      std::vector<float> dense(m * k);
      cb_gemm_decode_rows(0, m, &w, dense.data());
      const size_t entries = size_t(1) << bits;
      float derr = 0.0f;
      for (size_t i = 0; i < m; ++i)
        for (size_t kk = 0; kk < k; ++kk) {
          const float want =
              table[size_t(group[i]) * entries + cb_code(&packed[i * rb], rb, bits, kk)] * scale[i];
          derr = std::max(derr, std::fabs(dense[i * k + kk] - want));
        }
      CHECK(derr == 0.0f);
    }
  // Depthwise 3x3 / 5x5, stride 1 / 2 over odd sizes.
  for (size_t kk : {3, 5})
    for (size_t s : {1, 2})
      for (size_t ho : {1, 4, 7})
        for (size_t wo : {1, 8, 13}) {
          const size_t hp = (ho - 1) * s + kk, wp = (wo - 1) * s + kk;
          auto x = randv(rng, hp * wp + 64), w = randv(rng, kk * kk);
          f32_dwconv_params p{kk, kk, s, s, 1, 1, mm};
          Kernel<f32_dwconv_ukernel_fn> f = kk == 3
                                                ? (s == 1 ? fast.dwconv.k3s1 : fast.dwconv.k3s2)
                                                : (s == 1 ? fast.dwconv.k5s1 : fast.dwconv.k5s2);
          if (!f.fn) continue;
          std::vector<float> y0(ho * wo), y1(ho * wo);
          ref.dwconv.generic.fn(ho, wo, x.data(), wp, w.data(), 0.5f, y0.data(), &p);
          f.fn(ho, wo, x.data(), wp, w.data(), 0.5f, y1.data(), &p);
          CHECK(max_err(y1, y0) < 1e-5f);
        }
  // Elementwise.
  for (size_t n : {1, 8, 17, 1000}) {
    auto a = randv(rng, n), b = randv(rng, n);
    std::vector<float> y0(n), y1(n);
    ref.elementwise.add.fn(n, a.data(), b.data(), y0.data(), &mm);
    fast.elementwise.add.fn(n, a.data(), b.data(), y1.data(), &mm);
    CHECK(max_err(y1, y0) == 0.0f);
    ref.elementwise.hswish.fn(n, a.data(), y0.data());
    fast.elementwise.hswish.fn(n, a.data(), y1.data());
    CHECK(max_err(y1, y0) < 1e-6f);
  }
}

// Fuzz mode: `edgefit_core_tests MODEL.efm [N]` flips random bytes of a valid artifact (with the
// checksum fixed up so the parser sees them), loads it, and runs what the loader accepts. Meant
// for the ASan/UBSan build: any out-of-bounds access aborts.
static int fuzz(const char* path, size_t rounds) {
  const Model base = load_model(path);
  std::vector<uint8_t> raw(base.bytes->data(), base.bytes->data() + base.bytes->size());
  std::mt19937 rng(123);
  size_t rejected = 0, ran = 0;
  for (size_t r = 0; r < rounds; ++r) {
    std::vector<uint8_t> b = raw;
    const size_t flips = 1 + rng() % 3;
    for (size_t i = 0; i < flips; ++i) b[64 + rng() % (b.size() - 64)] = uint8_t(rng());
    if (rng() % 5 == 0) {
      b.resize(64 + rng() % (b.size() - 64));
      const uint64_t n = b.size();
      std::memcpy(b.data() + 16, &n, 8);
    }
    const uint32_t crc = crc32_ieee(b.data() + 64, b.size() - 64);
    std::memcpy(b.data() + 56, &crc, 4);
    try {
      Runtime rt(load_model_bytes(b.data(), b.size()), 1, "");
      std::vector<std::vector<uint8_t>> in, out;
      std::vector<const void*> ip;
      std::vector<void*> op;
      for (const auto& t : rt.inputs()) in.emplace_back(t.bytes(), 0);
      for (const auto& t : rt.outputs()) out.emplace_back(t.bytes());
      for (auto& v : in) ip.push_back(v.data());
      for (auto& v : out) op.push_back(v.data());
      rt.run(ip, op);
      ++ran;
    } catch (const std::exception&) {
      ++rejected;
    }
  }
  std::printf("fuzz %s: %zu mutations, %zu rejected, %zu ran\n", path, rounds, rejected, ran);
  return 0;
}

int main(int argc, char** argv) {
  if (argc > 1) return fuzz(argv[1], argc > 2 ? std::stoul(argv[2]) : 500);
  test_crc();
  test_loader_rejects_garbage();
  test_planner();
  test_thread_pool();
  const CpuInfo& cpu = CpuInfo::host();
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kNeon}) {
    if (!cpu.supports(isa)) {
      std::printf("skip %s kernels: this CPU cannot run them\n", isa_name(isa));
      continue;
    }
    test_kernels(isa);
    std::printf("%s kernels checked against scalar\n", isa_name(isa));
  }
  if (g_failures) {
    std::fprintf(stderr, "%d check(s) failed\n", g_failures);
    return 1;
  }
  std::printf("all C++ tests passed\n");
  return 0;
}
