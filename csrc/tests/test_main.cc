// C++ tests of the core (runs under ctest, and under ASan/UBSan with -DEDGEFIT_SANITIZE=ON):
// CRC-32, the loader on hostile bytes, the arena planner, and every fast kernel this CPU can run
// against its scalar reference over edge shapes.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/cpuinfo.h"
#include "core/dispatch.h"
#include "core/executor.h"
#include "core/loader.h"
#include "core/planner.h"
#include "core/thread_pool.h"
#include "core/weight_store.h"
#include "tests/fuzz_harness.h"

using namespace edgefit;

static int g_failures = 0;
#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++g_failures;                                                                 \
    }                                                                               \
  } while (0)

// n floats placed against an unreadable page, after them (at_end) or before them: a kernel that
// reads outside its buffer faults instead of passing.
class GuardedFloats {
 public:
  GuardedFloats(size_t n, bool at_end) {
    const size_t page = size_t(sysconf(_SC_PAGESIZE)), bytes = n * sizeof(float);
    const size_t data_pages = (bytes + page - 1) / page;
    map_bytes_ = (data_pages + 2) * page;
    base_ = static_cast<char*>(
        mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (base_ == MAP_FAILED) std::abort();
    mprotect(base_, page, PROT_NONE);
    mprotect(base_ + map_bytes_ - page, page, PROT_NONE);
    data_ = reinterpret_cast<float*>(at_end ? base_ + map_bytes_ - page - bytes : base_ + page);
  }
  ~GuardedFloats() { munmap(base_, map_bytes_); }
  GuardedFloats(const GuardedFloats&) = delete;
  GuardedFloats& operator=(const GuardedFloats&) = delete;
  float* data() { return data_; }

 private:
  size_t map_bytes_;
  char* base_;
  float* data_;
};

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

// Inputs kept from fuzzing the loader (csrc/tests/fuzz_cases/, as libFuzzer saved them; the
// harness fixes up size and CRC as in the fuzzer): reject-*.efm must get a LoadError, run-*.efm
// must load and run. Under ASan/UBSan (make test-sanitize) a memory error or UB aborts.
static void test_fuzz_cases() {
#ifdef EDGEFIT_FUZZ_CASES
  size_t cases = 0;
  for (const auto& entry : std::filesystem::directory_iterator(EDGEFIT_FUZZ_CASES)) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() != ".efm") continue;
    std::ifstream f(entry.path(), std::ios::binary);
    const std::vector<uint8_t> b((std::istreambuf_iterator<char>(f)), {});
    const bool reject = name.rfind("reject-", 0) == 0;
    fuzzing::Outcome got = fuzzing::Outcome::kLoadedOnly;
    try {
      got = fuzzing::run_one(b.data(), b.size()).outcome;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "fuzz case %s: %s\n", name.c_str(), e.what());
    }
    if (got != (reject ? fuzzing::Outcome::kRejected : fuzzing::Outcome::kRan))
      std::fprintf(stderr, "fuzz case %s: expected it to be %s\n", name.c_str(),
                   reject ? "rejected" : "run");
    CHECK(got == (reject ? fuzzing::Outcome::kRejected : fuzzing::Outcome::kRan));
    ++cases;
  }
  CHECK(cases > 0);
  std::printf("%zu fuzz cases checked\n", cases);
#endif
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

  // A cooling window: b may not take bytes a or c use within one step of its lifetime, and a and
  // c keep the offsets they get without it.
  std::vector<BufferRequest> plain = {{1000, 0, 1}, {1000, 2, 3}, {1000, 4, 5}};
  const ArenaPlan q0 = plan_arena(plain);
  CHECK(q0.offsets[0] == 0 && q0.offsets[1] == 0 && q0.offsets[2] == 0);
  plain[1].cool = 1;
  const ArenaPlan q1 = plan_arena(plain);
  CHECK(q1.offsets[0] == 0 && q1.offsets[2] == 0);
  CHECK(q1.offsets[1] == 1024);
  CHECK(q1.arena_bytes == 2048);
  // Steps outside the window do not count: a gap of two steps on each side, a window of 1.
  std::vector<BufferRequest> gapped = {{1000, 0, 0}, {1000, 2, 3, 1}, {1000, 5, 6}};
  CHECK(plan_arena(gapped).offsets[1] == 0);
  gapped[1].cool = 2;
  CHECK(plan_arena(gapped).offsets[1] == 1024);
}

// Blocks are zeroed, 64-byte aligned and disjoint, a request larger than a chunk gets its own, and
// sealing (huge-page collapse) leaves the bytes as they were.
static void test_weight_store() {
  constexpr size_t kHuge = size_t(2) << 20;
  void* pages = alloc_pages(3 * kHuge + 100, true);
  CHECK(reinterpret_cast<uintptr_t>(pages) % kHuge == 0);
  std::memset(pages, 7, 3 * kHuge + 100);  // every byte asked for is writable
  free_pages(pages, 3 * kHuge + 100);

  WeightStore store;
  std::vector<std::pair<float*, size_t>> blocks;
  for (size_t floats : {size_t(1), size_t(1000), size_t(3) << 20, size_t(20) << 20, size_t(17)}) {
    float* p = store.alloc(floats);
    CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0);
    bool zero = true;
    for (size_t i = 0; i < floats; ++i) zero = zero && p[i] == 0.0f;
    CHECK(zero);
    for (size_t i = 0; i < floats; ++i) p[i] = float(blocks.size() + 1);
    blocks.emplace_back(p, floats);
  }
  store.seal();
  for (size_t b = 0; b < blocks.size(); ++b) {
    bool intact = true;
    for (size_t i = 0; i < blocks[b].second; ++i)
      intact = intact && blocks[b].first[i] == float(b + 1);
    CHECK(intact);  // also: no two blocks overlap (each still holds its own value)
  }
}

static void test_thread_pool() {
  ThreadPool pool(3);
  // Every task exactly once, for fewer, as many and more tasks than threads (shares of 0..n).
  for (size_t n : {1, 2, 3, 4, 7, 1000}) {
    std::vector<int> hit(n, 0);
    for (int rep = 0; rep < 20; ++rep) pool.parallel_for(n, [&](size_t i) { hit[i]++; });
    for (int h : hit) CHECK(h == 20);
  }
  // A thread whose share is held up does not hold up the rest: task 0 (the caller's share)
  // waits until every other task has run, so the workers must take the caller's remaining
  // tasks as well as their own (timeout: a failure, not a hang).
  ThreadPool two(2);
  std::atomic<size_t> done{0};
  bool others_finished = false;
  const size_t n = 8;
  two.parallel_for(n, [&](size_t i) {
    if (i == 0) {
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (done.load() < n - 1 && std::chrono::steady_clock::now() < until)
        std::this_thread::yield();
      others_finished = done.load() == n - 1;
    }
    done.fetch_add(1);
  });
  CHECK(others_finished);
  CHECK(done.load() == n);

  // The caller's wait for a busy worker is counted (what a profile reports as a node's wait):
  // task 1 (the worker's share) starts, then sleeps 30 ms; task 0 returns once it has started.
  const int64_t before = two.waited_ns();
  std::atomic<bool> started{false};
  two.parallel_for(2, [&](size_t i) {
    if (i == 1) {
      started.store(true);
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
      return;
    }
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!started.load() && std::chrono::steady_clock::now() < until) std::this_thread::yield();
  });
  CHECK(started.load());
  CHECK(two.waited_ns() - before >= 20'000'000);
  // One thread: nothing to wait for.
  ThreadPool one(1);
  one.parallel_for(4, [](size_t) { std::this_thread::sleep_for(std::chrono::milliseconds(1)); });
  CHECK(one.waited_ns() == 0);
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
  // SpMM widths around the tiles (an overlapping last tile, 8-pixel steps, masks below 8) and
  // a guard column past the pixels that no store may touch.
  for (size_t bi = 0; bi < 3; ++bi) {
    const size_t B = size_t(1) << bi;
    for (size_t pixels : {7, 8, 15, 23, 24, 31, 49, 196}) {
      const size_t brows = 5, k = 40, ld = pixels + 3;
      std::vector<int32_t> row_ptr = {0}, col;
      for (size_t r = 0; r < brows; ++r) {
        for (size_t c = 0; c < k; ++c)
          if (rng() % 4 == 0) col.push_back(int32_t(c));
        row_ptr.push_back(int32_t(col.size()));
      }
      auto vals = randv(rng, col.size() * B), x = randv(rng, k * ld), bias = randv(rng, brows * B);
      std::vector<float> y0(brows * B * ld, 5.0f), y1(y0.size(), 5.0f);
      ref.spmm.by_block[bi].fn(pixels, brows, row_ptr.data(), col.data(), vals.data(), bias.data(),
                               x.data(), ld, y0.data(), ld, &mm);
      fast.spmm.by_block[bi].fn(pixels, brows, row_ptr.data(), col.data(), vals.data(), bias.data(),
                                x.data(), ld, y1.data(), ld, &mm);
      CHECK(max_err(y1, y0) < 1e-5f);
      for (size_t r = 0; r < brows * B; ++r)
        for (size_t p = pixels; p < ld; ++p) CHECK(y1[r * ld + p] == 5.0f);
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
        // The 16-row strip decode (small images' transposed tiles) is the generic 16-row
        // panel without its biases, bit for bit, zero past the last row.
        std::vector<float> p16(16 * (k + 1)), strip(16 * k, 7.0f);
        cb_gemm_decode_panel(0, m, 16, &w, nullptr, p16.data());
        cb_gemm_decode_strip_16__avx2(0, m, &w, strip.data());
        CHECK(std::equal(strip.begin(), strip.end(), p16.begin() + 16));
      }
#endif
      std::vector<float> dense(m * k);
      cb_gemm_decode_rows(0, m, &w, dense.data());
      const size_t entries = size_t(1) << bits;
      // Counted as inequalities, not max |dense - want|: GCC contracts `x - a * b` into one fused
      // multiply-subtract on aarch64, whose exact product makes an exact decode look wrong.
      size_t mismatches = 0;
      for (size_t i = 0; i < m; ++i)
        for (size_t kk = 0; kk < k; ++kk) {
          const float want =
              table[size_t(group[i]) * entries + cb_code(&packed[i * rb], rb, bits, kk)] * scale[i];
          mismatches += dense[i * k + kk] != want;
        }
      CHECK(mismatches == 0);
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
  // Depthwise, unpadded entry points: padding 0..2 on each side (bottom / right through ho, wo),
  // and a guard past the output that no store may touch.
  for (size_t kk : {3, 5})
    for (size_t s : {1, 2})
      for (size_t h : {1, 2, 5, 9})
        for (size_t w : {1, 3, 7, 8, 13, 30})
          for (size_t pt : {0, 1, 2})
            for (size_t pl : {0, 1, 2}) {
              if (h + 2 * pt < kk || w + 2 * pl < kk) continue;
              const size_t ho = (h + 2 * pt - kk) / s + 1, wo = (w + 2 * pl - kk) / s + 1;
              Kernel<f32_dwconv_chw_ukernel_fn> f =
                  kk == 3 ? (s == 1 ? fast.dwconv.chw_k3s1 : fast.dwconv.chw_k3s2)
                          : (s == 1 ? fast.dwconv.chw_k5s1 : fast.dwconv.chw_k5s2);
              if (!f.fn) continue;
              auto x = randv(rng, h * w), wt = randv(rng, kk * kk);
              f32_dwconv_params p{kk, kk, s, s, 1, 1, mm};
              std::vector<float> y0(ho * wo + 8, 9.0f), y1(ho * wo + 8, 9.0f);
              const float bias = 0.5f;
              ref.dwconv.chw_generic.fn(1, h, w, x.data(), pt, pl, ho, wo, wt.data(), &bias,
                                        y0.data(), &p);
              f.fn(1, h, w, x.data(), pt, pl, ho, wo, wt.data(), &bias, y1.data(), &p);
              CHECK(max_err(y1, y0) < 1e-5f);
              for (size_t i = ho * wo; i < y1.size(); ++i) CHECK(y1[i] == 9.0f);
              // The padded reference over an explicitly padded copy agrees (zeros are zeros).
              if (s == 1 && pt == pl) {
                const size_t hp = h + 2 * pt, wp = w + 2 * pl;
                std::vector<float> xpad(hp * wp + 64, 0.0f), y2(ho * wo);
                for (size_t r = 0; r < h; ++r)
                  std::memcpy(&xpad[(r + pt) * wp + pl], &x[r * w], w * sizeof(float));
                ref.dwconv.generic.fn(ho, wo, xpad.data(), wp, wt.data(), 0.5f, y2.data(), &p);
                y0.resize(ho * wo);
                CHECK(max_err(y2, y0) < 1e-5f);
              }
            }
  // Runs of channels (3, each its own kernel and bias, no bias) on planes of many vectors, read
  // from buffers against guard pages (nothing outside the channels may be read). Stride 1 with
  // "same" padding across (wo == w): the AVX-512 kernels run each channel as one flat run of
  // pixels, loads near the first and last rows masked (pad_top 0..2 moves which rows those are),
  // one plane larger than their 4096-pixel run of column masks. Stride 2: 16 output pixels of a
  // row per vector, rows of 7 to 35 outputs (one partial vector to three), odd widths.
  for (size_t s : {1, 2})
    for (size_t kk : {3, 5})
      for (auto [h, w] : {std::pair<size_t, size_t>{7, 7},
                          {14, 14},
                          {28, 28},
                          {3, 40},
                          {17, 5},
                          {1, 70},
                          {40, 1},
                          {70, 61}})
        for (size_t pt : {0, 1, 2})
          for (bool with_bias : {true, false}) {
            const size_t pl = kk / 2, nc = 3;
            if (h + 2 * pt < kk || w + 2 * pl < kk) continue;
            const size_t ho = (h + 2 * pt - kk) / s + 1, wo = (w + 2 * pl - kk) / s + 1;
            const auto f = kk == 3 ? (s == 1 ? fast.dwconv.chw_k3s1 : fast.dwconv.chw_k3s2)
                                   : (s == 1 ? fast.dwconv.chw_k5s1 : fast.dwconv.chw_k5s2);
            if (!f.fn) continue;
            // The channels against an unreadable page after them (with bias) or before them.
            const auto values = randv(rng, nc * h * w);
            GuardedFloats x(nc * h * w, with_bias);
            std::copy(values.begin(), values.end(), x.data());
            auto wt = randv(rng, nc * kk * kk), bias = randv(rng, nc);
            const float* b = with_bias ? bias.data() : nullptr;
            f32_dwconv_params p{kk, kk, s, s, 1, 1, mm};
            std::vector<float> y0(nc * ho * wo + 40, 9.0f), y1(nc * ho * wo + 40, 9.0f);
            ref.dwconv.chw_generic.fn(nc, h, w, x.data(), pt, pl, ho, wo, wt.data(), b, y0.data(),
                                      &p);
            f.fn(nc, h, w, x.data(), pt, pl, ho, wo, wt.data(), b, y1.data(), &p);
            CHECK(max_err(y1, y0) < 1e-5f);
            for (size_t i = nc * ho * wo; i < y1.size(); ++i) CHECK(y1[i] == 9.0f);
          }

  // Max pooling against the reference: windows over padding and, with ceil mode, past the
  // bottom / right edge (torch: the last window starts inside the input or its left padding).
  for (size_t h : {1, 4, 7, 12})
    for (size_t w : {1, 5, 8, 13, 30})
      for (size_t kk : {1, 2, 3})
        for (size_t s : {1, 2})
          for (size_t pd : {0, 1})
            for (bool ceil_mode : {false, true}) {
              if (2 * pd > kk || h + 2 * pd < kk || w + 2 * pd < kk) continue;
              auto out = [&](size_t n) {
                size_t o = (n + 2 * pd - kk + (ceil_mode ? s - 1 : 0)) / s + 1;
                if (ceil_mode && (o - 1) * s >= n + pd) --o;
                return o;
              };
              const pool2d_geometry g{h, w, out(h), out(w), kk, kk, s, s, pd, pd, pd, pd, false};
              auto x = randv(rng, h * w);
              std::vector<float> y0(g.ho * g.wo + 8, 9.0f), y1(g.ho * g.wo + 8, 9.0f);
              ref.pool.max.fn(&g, x.data(), y0.data());
              fast.pool.max.fn(&g, x.data(), y1.data());
              CHECK(y0 == y1);
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

// The blocked GEMM driver with this ISA's packed-B kernel (and the in-place kernel for small K)
// against plain loops: matrix B and k x k convolutions unfolded into strips (padding, stride,
// dilation), forced K blocks (accumulating into C, clamped once at the end), column / panel tails,
// and every task split.
static void test_blocked_gemm(Isa isa) {
  std::mt19937 rng(11);
  const GemmConfig gc = select_kernels(CpuInfo::host(), isa).gemm;
  const f32_minmax mm{-1.5f, 2.0f};
  struct Conv {
    size_t c, h, w, k, s, pad, d;
  };
  for (const Conv& cv :
       {Conv{1, 5, 5, 1, 1, 0, 1}, Conv{3, 7, 9, 3, 1, 1, 1}, Conv{5, 8, 6, 3, 2, 1, 1},
        Conv{2, 9, 9, 3, 1, 2, 2}, Conv{2, 11, 7, 5, 2, 2, 1}, Conv{70, 4, 4, 1, 1, 0, 1},
        Conv{8, 6, 6, 1, 2, 0, 1}})
    for (size_t m : {1, 7, 13, 20, 100})
      for (size_t kc : {0, 5, 16}) {
        const size_t ho = (cv.h + 2 * cv.pad - cv.d * (cv.k - 1) - 1) / cv.s + 1;
        const size_t wo = (cv.w + 2 * cv.pad - cv.d * (cv.k - 1) - 1) / cv.s + 1;
        const size_t K = cv.c * cv.k * cv.k, P = ho * wo;
        const conv2d_geometry g{cv.h, cv.w, ho,     wo,     cv.k, cv.k,
                                cv.s, cv.s, cv.pad, cv.pad, cv.d, cv.d};
        auto x = randv(rng, cv.c * cv.h * cv.w), w = randv(rng, m * K), bias = randv(rng, m);
        // Reference: the convolution by definition.
        std::vector<float> want(m * P);
        for (size_t o = 0; o < m; ++o)
          for (size_t p = 0; p < P; ++p) {
            float acc = bias[o];
            for (size_t kk = 0; kk < K; ++kk) {
              const size_t c = kk / (cv.k * cv.k), ky = kk / cv.k % cv.k, kx = kk % cv.k;
              const ptrdiff_t iy = ptrdiff_t((p / wo) * cv.s + ky * cv.d) - ptrdiff_t(cv.pad);
              const ptrdiff_t ix = ptrdiff_t((p % wo) * cv.s + kx * cv.d) - ptrdiff_t(cv.pad);
              if (iy >= 0 && ix >= 0 && iy < ptrdiff_t(cv.h) && ix < ptrdiff_t(cv.w))
                acc += w[o * K + kk] * x[(c * cv.h + size_t(iy)) * cv.w + size_t(ix)];
            }
            want[o * P + p] = f32_clamp(acc, &mm);
          }
        const bool matrix = cv.k == 1 && cv.s == 1 && cv.pad == 0;
        std::vector<float> packed(f32_gemm_packed_size(m, K, gc.mr));
        f32_gemm_pack(m, K, gc.mr, w.data(), bias.data(), packed.data());
        for (int mode = 0; mode < 3; ++mode)  // the chosen blocking, then rows / strips forced
          for (size_t threads : {1, 2, 3}) {
            f32_gemm_blocking bl =
                f32_gemm_choose_blocking(gc.packed.fn, gc.gemm.fn, gc.mr, gc.nr, m, K, P, matrix);
            if (mode > 0) bl.pack = mode == 2;
            if (kc != 0 && bl.pack) bl.kc = kc;  // force K blocks
            if (kc == 16) bl.nc = gc.nr;         // and several column blocks
            const f32_gemm_split sp = f32_gemm_split_tasks(bl, m, P, threads);
            f32_gemm_operand op;
            if (matrix) {
              op.b = x.data();
              op.ldb = P;
            } else {
              op.geo = &g;
              op.x = x.data();
              op.unfold = gc.im2col_packed.fn;
            }
            std::vector<float> got(m * P, 1e9f), scratch(f32_gemm_blocked_scratch(bl) + 1);
            const size_t panels = (m + gc.mr - 1) / gc.mr;
            for (size_t t = 0; t < sp.tasks(); ++t) {
              const size_t j0 = (t % sp.col_parts) * sp.cols_per,
                           pi0 = (t / sp.col_parts) * sp.panels_per;
              if (j0 >= P || pi0 >= panels) continue;
              f32_gemm_blocked(bl, m, K, packed.data(), gc.mr * (K + 1), pi0,
                               std::min(panels, pi0 + sp.panels_per), op, j0,
                               std::min(sp.cols_per, P - j0), got.data(), P, scratch.data(), &mm);
            }
            CHECK(max_err(got, want) < 1e-4f);
          }
      }
  // The packed kernel alone over edge shapes against plain loops: accumulate / clamp modes.
  for (size_t mr : {size_t(1), gc.mr - 1, gc.mr})
    for (size_t n : {size_t(1), size_t(4), gc.nr - 1, gc.nr, gc.nr + 4, 2 * gc.nr + 3})
      for (size_t k : {1, 2, 9}) {
        const size_t strips = (n + gc.nr - 1) / gc.nr;
        auto b = randv(rng, strips * k * gc.nr), wt = randv(rng, k * gc.mr),
             bias = randv(rng, gc.mr);
        auto c0 = randv(rng, mr * n);
        for (int mode = 0; mode < 3; ++mode) {  // 0: bias + clamp, 1: accumulate, 2: bias, no clamp
          std::vector<float> c = c0, want = c0;
          const float* bp = mode == 1 ? nullptr : bias.data();
          const f32_minmax* pp = mode == 0 ? &mm : nullptr;
          gc.packed.fn(mr, n, k, wt.data(), bp, b.data(), c.data(), n, pp);
          for (size_t i = 0; i < mr; ++i)
            for (size_t j = 0; j < n; ++j) {
              float acc = bp ? bias[i] : c0[i * n + j];
              for (size_t kk = 0; kk < k; ++kk)
                acc += wt[kk * gc.mr + i] * b[(j / gc.nr) * k * gc.nr + kk * gc.nr + j % gc.nr];
              want[i * n + j] = pp ? f32_clamp(acc, pp) : acc;
            }
          CHECK(max_err(c, want) < 1e-5f);
        }
      }
}

// The transposed-output GEMM (small images): the tile against its definition for every row count
// and both accumulate modes, then the strip driver + store against C = clamp(W x B + bias) for
// channel / pixel tails and strip ranges as the executor splits them.
static void test_gemm_t(Isa isa) {
  const GemmConfig gc = select_kernels(CpuInfo::host(), isa).gemm;
  if (gc.t.fn == nullptr) return;
  std::mt19937 rng(13);
  const f32_gemm_t_config& tc = gc.t;
  for (size_t mr = 1; mr <= tc.mr; ++mr)
    for (size_t k : {1, 7, 33})
      for (bool acc : {false, true}) {
        const size_t ldb = mr + 3, ldct = tc.nr + 8;
        auto b = randv(rng, k * ldb), w = randv(rng, k * tc.nr), ct0 = randv(rng, mr * ldct);
        std::vector<float> ct = ct0, want = ct0;
        tc.fn(mr, k, b.data(), ldb, w.data(), ct.data(), ldct, acc);
        for (size_t i = 0; i < mr; ++i)
          for (size_t j = 0; j < tc.nr; ++j) {
            float a = acc ? ct0[i * ldct + j] : 0.0f;
            for (size_t kk = 0; kk < k; ++kk) a += b[kk * ldb + i] * w[kk * tc.nr + j];
            want[i * ldct + j] = a;
          }
        CHECK(max_err(ct, want) < 1e-5f);
        if (tc.ix == nullptr) continue;
        // The offsets tile: pixel i's column starts at offs[i] (any order, gaps, repeats).
        const std::vector<size_t> offs = {7, 0, 3, 3, 11, 5};
        const size_t ldb_ix = 12;
        auto bx = randv(rng, k * ldb_ix);
        std::vector<float> ctx = ct0, wantx = ct0;
        tc.ix(mr, k, bx.data(), ldb_ix, offs.data(), w.data(), ctx.data(), ldct, acc);
        for (size_t i = 0; i < mr; ++i)
          for (size_t j = 0; j < tc.nr; ++j) {
            float a = acc ? ct0[i * ldct + j] : 0.0f;
            for (size_t kk = 0; kk < k; ++kk) a += bx[offs[i] + kk * ldb_ix] * w[kk * tc.nr + j];
            wantx[i * ldct + j] = a;
          }
        CHECK(max_err(ctx, wantx) < 1e-5f);
      }
  const f32_minmax mm{-1.5f, 2.0f};
  for (size_t m : {size_t(1), tc.nr - 1, tc.nr, 3 * tc.nr + 5})
    for (size_t p : {1, 5, 8, 49})
      for (size_t k : {1, 40, 100}) {
        auto w = randv(rng, m * k), b = randv(rng, k * p), bias = randv(rng, m);
        std::vector<float> strips(f32_gemm_t_packed_size(m, k, tc.nr), 9.0f);
        f32_gemm_t_pack(m, k, tc.nr, w.data(), strips.data());
        std::vector<float> want(m * p);
        for (size_t o = 0; o < m; ++o)
          for (size_t j = 0; j < p; ++j) {
            float a = bias[o];
            for (size_t kk = 0; kk < k; ++kk) a += w[o * k + kk] * b[kk * p + j];
            want[o * p + j] = f32_clamp(a, &mm);
          }
        const size_t n_strips = (m + tc.nr - 1) / tc.nr;
        for (size_t tasks : {size_t(1), size_t(2), n_strips}) {
          const size_t per = (n_strips + tasks - 1) / tasks;
          std::vector<float> got(m * p, 1e9f), scratch(f32_gemm_t_scratch(tc, p));
          for (size_t s0 = 0; s0 < n_strips; s0 += per)
            f32_gemm_t_strips(tc, m, k, strips.data(), s0, std::min(n_strips, s0 + per), b.data(),
                              p, p, bias.data(), got.data(), p, scratch.data(), &mm);
          CHECK(max_err(got, want) < 1e-4f);
        }
      }
}

// The direct convolution (pad + offsets tiles + store) against a plain loop over the definition,
// for kernels, strides, dilation, uneven padding, channel / output tails and images of several
// bands, split into tasks by strips and by bands as the executor does.
static void test_conv_t(Isa isa) {
  const GemmConfig gc = select_kernels(CpuInfo::host(), isa).gemm;
  if (gc.t.ix == nullptr) return;
  const f32_gemm_t_config& tc = gc.t;
  std::mt19937 rng(17);
  const f32_minmax mm{-1.0f, 1.5f};
  struct Case {
    size_t c, m, h, w, kh, kw, s, d, pt, pl, pb, pr;
  };
  const Case cases[] = {
      {8, 16, 12, 12, 3, 3, 1, 1, 1, 1, 1, 1},   // the executor's shape class
      {9, 21, 24, 20, 3, 3, 1, 1, 1, 1, 1, 1},   // 480 pixels: two bands; channel tails
      {5, 3, 9, 11, 5, 5, 1, 1, 2, 2, 2, 2},     // 5x5, fewer outputs than a strip
      {6, 16, 13, 10, 3, 3, 2, 1, 1, 0, 1, 1},   // stride 2, uneven padding
      {4, 17, 12, 12, 3, 3, 1, 2, 2, 2, 2, 2},   // dilation 2
      {7, 8, 10, 10, 1, 3, 1, 1, 0, 1, 0, 1},    // 1 x 3
      {3, 16, 14, 14, 3, 3, 1, 1, 0, 0, 0, 0},   // no padding
      {130, 16, 20, 20, 3, 3, 1, 1, 1, 1, 1, 1}  // more channels than one K block
  };
  for (const Case& cs : cases) {
    conv2d_geometry g{cs.h, cs.w, 0, 0, cs.kh, cs.kw, cs.s, cs.s, cs.pt, cs.pl, cs.d, cs.d};
    g.ho = (cs.h + cs.pt + cs.pb - cs.d * (cs.kh - 1) - 1) / cs.s + 1;
    g.wo = (cs.w + cs.pl + cs.pr - cs.d * (cs.kw - 1) - 1) / cs.s + 1;
    const size_t k = cs.c * cs.kh * cs.kw, p = g.ho * g.wo;
    auto x = randv(rng, cs.c * cs.h * cs.w), w = randv(rng, cs.m * k), bias = randv(rng, cs.m);
    std::vector<float> want(cs.m * p);
    for (size_t o = 0; o < cs.m; ++o)
      for (size_t oy = 0; oy < g.ho; ++oy)
        for (size_t ox = 0; ox < g.wo; ++ox) {
          double a = bias[o];
          for (size_t c = 0; c < cs.c; ++c)
            for (size_t ky = 0; ky < cs.kh; ++ky)
              for (size_t kx = 0; kx < cs.kw; ++kx) {
                const ptrdiff_t iy = ptrdiff_t(oy * cs.s + ky * cs.d) - ptrdiff_t(cs.pt);
                const ptrdiff_t ix = ptrdiff_t(ox * cs.s + kx * cs.d) - ptrdiff_t(cs.pl);
                if (iy < 0 || ix < 0 || iy >= ptrdiff_t(cs.h) || ix >= ptrdiff_t(cs.w)) continue;
                a += double(w[((o * cs.c + c) * cs.kh + ky) * cs.kw + kx]) *
                     x[(c * cs.h + size_t(iy)) * cs.w + size_t(ix)];
              }
          want[o * p + oy * g.wo + ox] = f32_clamp(float(a), &mm);
        }
    std::vector<float> strips(f32_gemm_t_packed_size(cs.m, k, tc.nr), 9.0f);
    f32_conv_t_pack(cs.m, cs.c, cs.kh, cs.kw, tc.nr, w.data(), strips.data());
    const f32_conv_t_shape ps = f32_conv_t_padded(g);
    std::vector<float> xpad(cs.c * ps.plane, 5.0f);
    f32_conv_t_pad(g, 0, cs.c, x.data(), xpad.data());
    std::vector<size_t> offs(p);
    f32_conv_t_offsets(g, offs.data());
    const size_t n_strips = (cs.m + tc.nr - 1) / tc.nr;
    const size_t bands = (p + f32_conv_t_band_pixels(p) - 1) / f32_conv_t_band_pixels(p);
    for (bool by_band : {false, true}) {
      std::vector<float> got(cs.m * p, 1e9f), scratch(f32_conv_t_scratch(tc));
      for (size_t s = 0; s < n_strips; ++s)
        for (size_t b = 0; b < (by_band ? bands : 1); ++b)
          f32_conv_t_run(tc, g, cs.c, cs.m, strips.data(), s, s + 1, by_band ? b : 0,
                         by_band ? b + 1 : bands, xpad.data(), offs.data(), bias.data(), got.data(),
                         p, scratch.data(), &mm);
      CHECK(max_err(got, want) < 1e-4f);
    }
  }
}

// The channel-blocked convolution (f32-nchwc) against a direct NCHW convolution: the scalar
// reference for every ISA, and this ISA's tiles where it has them. Outputs are compared after
// reordering back, so the reorders are checked too.
// y[o][p] = clamp(bias[o] + sum of w x x) of an NCHW image, in doubles (dilation 1).
static std::vector<float> naive_conv(const conv2d_geometry& g, size_t ic, size_t oc,
                                     const std::vector<float>& x, const std::vector<float>& w,
                                     const std::vector<float>& bias, const f32_minmax* mm) {
  const size_t p = g.ho * g.wo, taps = g.kh * g.kw;
  std::vector<float> y(oc * p);
  for (size_t o = 0; o < oc; ++o)
    for (size_t px = 0; px < p; ++px) {
      double a = bias[o];
      for (size_t c = 0; c < ic; ++c)
        for (size_t t = 0; t < taps; ++t) {
          const ptrdiff_t iy = ptrdiff_t((px / g.wo) * g.sh + t / g.kw) - ptrdiff_t(g.pt);
          const ptrdiff_t ix = ptrdiff_t((px % g.wo) * g.sw + t % g.kw) - ptrdiff_t(g.pl);
          if (iy < 0 || ix < 0 || iy >= ptrdiff_t(g.h) || ix >= ptrdiff_t(g.w)) continue;
          a += double(w[(o * ic + c) * taps + t]) * x[(c * g.h + size_t(iy)) * g.w + size_t(ix)];
        }
      y[o * p + px] = f32_clamp(float(a), mm);
    }
  return y;
}

// A square-kernel convolution of an h x w image (dilation 1).
static conv2d_geometry square_conv(size_t h, size_t w, size_t k, size_t s, size_t pad) {
  conv2d_geometry g{h, w, 0, 0, k, k, s, s, pad, pad, 1, 1};
  g.ho = (h + 2 * pad - k) / s + 1;
  g.wo = (w + 2 * pad - k) / s + 1;
  return g;
}

// One blocked convolution prepared as the executor prepares it: packed weights, the padded copy
// of x (laid out per in_block) where the convolution pads, per-pixel offsets. `in` is what the
// tiles read (x itself or the padded copy).
struct NchwcConvCall {
  f32_nchwc_conv_params cp;
  std::vector<float> packed, xpad;
  std::vector<size_t> offs;
  const float* in = nullptr;
};

static NchwcConvCall prepare_nchwc_conv(const conv2d_geometry& g, size_t ic, size_t oc,
                                        size_t in_block, size_t pass, const std::vector<float>& x,
                                        const std::vector<float>& w) {
  NchwcConvCall call;
  call.packed.assign(f32_nchwc_packed_size(oc, ic, g.kh, g.kw), 9.0f);
  f32_nchwc_pack(oc, ic, g.kh, g.kw, w.data(), call.packed.data(), in_block);
  f32_nchwc_conv_params& cp = call.cp;
  cp.g = g;
  cp.ic = ic;
  cp.oc = oc;
  cp.in_block = in_block;
  cp.hp = g.h;
  cp.wp = g.w;
  call.in = x.data();
  if (f32_nchwc_needs_pad(g)) {
    f32_nchwc_padded(g, &cp.hp, &cp.wp);
    call.xpad.assign(ic * cp.hp * cp.wp, 5.0f);
    f32_nchwc_pad(g, 0, ic / in_block, x.data(), call.xpad.data(), in_block);
    call.in = call.xpad.data();
  }
  cp.pass_blocks = pass ? pass : f32_nchwc_pass_blocks(ic, g.kh, g.kw, in_block);
  call.offs.resize(g.ho * g.wo);
  f32_nchwc_offsets(g, cp.wp, call.offs.data(), in_block);
  cp.offs = call.offs.data();
  return call;
}

// The scalar reference's and this ISA's tiles over every group, all pixels at once or in 7-pixel
// tasks, reordered back to NCHW and compared with `want`.
static void check_nchwc_tiles(const NchwcConfig& nc, const NchwcConvCall& call,
                              const std::vector<float>& bias, const std::vector<float>& want,
                              const f32_minmax* mm) {
  const size_t p = call.cp.g.ho * call.cp.g.wo, oc = call.cp.oc;
  for (f32_nchwc_conv_fn fn : {f32_nchwc_conv_fn(f32_nchwc_conv__scalar), nc.conv.fn}) {
    if (fn == nullptr) continue;
    for (size_t split : {p, size_t(7)}) {
      std::vector<float> yb(oc * p, 1e9f), got(oc * p, 3.0f);
      for (size_t grp = 0; grp < (oc + 63) / 64; ++grp)
        for (size_t p0 = 0; p0 < p; p0 += split)
          fn(&call.cp, call.in, call.packed.data(), bias.data(), yb.data(), grp, p0,
             std::min(p, p0 + split), mm);
      f32_nchwc_to_nchw__scalar(p, 0, p, 0, oc / kNchwcBlock, yb.data(), got.data());
      CHECK(max_err(got, want) < 1e-4f);
    }
  }
}

// Inputs padded with zero channels up to a block (core/layout.h): with cp.zero_tail set, this
// ISA's tiles skip the last block's tail channels. Here those channels hold non-zeros, so the
// tiles must match a convolution over the other channels only (proving they skip exactly those);
// the scalar reference, which may read them, gets them as the zeros they are in a real model.
static void test_nchwc_zero_tail(Isa isa) {
  const NchwcConfig nc = select_kernels(CpuInfo::host(), isa).nchwc;
  std::mt19937 rng(29);
  const f32_minmax mm{-2.0f, 2.0f};
  struct Case {
    size_t ic, oc, k, pass, tail;
  };
  for (const Case& cs : {Case{32, 144, 1, 0, 8}, Case{32, 80, 3, 0, 5}, Case{48, 64, 1, 1, 15},
                         Case{16, 32, 1, 0, 1}}) {
    const conv2d_geometry g = square_conv(7, 6, cs.k, 1, cs.k / 2);
    const size_t taps = cs.k * cs.k, hw = 7 * 6, p = g.ho * g.wo;
    auto x = randv(rng, cs.ic * hw), w = randv(rng, cs.oc * cs.ic * taps), bias = randv(rng, cs.oc);
    std::vector<float> w_real = w, x_zero = x;
    for (size_t c = cs.ic - cs.tail; c < cs.ic; ++c) {
      for (size_t o = 0; o < cs.oc; ++o)
        std::fill_n(w_real.begin() + long((o * cs.ic + c) * taps), taps, 0.0f);
      std::fill_n(x.begin() + long(c * hw), hw, 100.0f);
      std::fill_n(x_zero.begin() + long(c * hw), hw, 0.0f);
    }
    const std::vector<float> want = naive_conv(g, cs.ic, cs.oc, x_zero, w_real, bias, &mm);
    for (bool fast : {false, true}) {
      const f32_nchwc_conv_fn fn = fast ? nc.conv.fn : f32_nchwc_conv__scalar;
      if (fn == nullptr) continue;
      const std::vector<float>& src = fast ? x : x_zero;
      std::vector<float> xb(src.size());
      f32_nchw_to_nchwc__scalar(hw, 0, hw, 0, cs.ic / kNchwcBlock, src.data(), xb.data());
      NchwcConvCall call = prepare_nchwc_conv(g, cs.ic, cs.oc, kNchwcBlock, cs.pass, xb, w);
      call.cp.zero_tail = cs.tail;
      std::vector<float> yb(cs.oc * p, 1e9f), got(cs.oc * p);
      for (size_t grp = 0; grp < (cs.oc + 63) / 64; ++grp)
        fn(&call.cp, call.in, call.packed.data(), bias.data(), yb.data(), grp, 0, p, &mm);
      f32_nchwc_to_nchw__scalar(p, 0, p, 0, cs.oc / kNchwcBlock, yb.data(), got.data());
      CHECK(max_err(got, want) < 1e-4f);
    }
  }
}

static void test_nchwc(Isa isa) {
  const NchwcConfig nc = select_kernels(CpuInfo::host(), isa).nchwc;
  std::mt19937 rng(23);
  // This ISA's reorders against the scalar ones, pixel tails included (exact: only moves).
  for (size_t pixels : {1, 15, 16, 35, 49}) {
    if (nc.to_blocked.fn == nullptr) break;
    auto x = randv(rng, 32 * pixels);
    std::vector<float> want(x.size()), got(x.size(), 9.0f), back(x.size(), 9.0f);
    f32_nchw_to_nchwc__scalar(pixels, 0, pixels, 0, 2, x.data(), want.data());
    nc.to_blocked.fn(pixels, 0, pixels, 0, 2, x.data(), got.data());
    CHECK(got == want);
    nc.to_plain.fn(pixels, 0, pixels, 0, 2, got.data(), back.data());
    CHECK(back == x);
    // Pixel ranges (a task's share of rows): each writes its own pixels of every channel, and
    // ranges that start mid-vector and end in a tail put together the whole image.
    if (pixels < 35) continue;
    std::vector<float> part(x.size(), 9.0f), part_back(x.size(), 9.0f);
    nc.to_blocked.fn(pixels, 3, 21, 0, 2, x.data(), part.data());
    for (size_t i = 0; i < part.size(); ++i) {
      const size_t px = (i / kNchwcBlock) % pixels;
      CHECK(px >= 3 && px < 21 ? part[i] == want[i] : part[i] == 9.0f);
    }
    nc.to_blocked.fn(pixels, 0, 3, 0, 2, x.data(), part.data());
    nc.to_blocked.fn(pixels, 21, pixels, 0, 2, x.data(), part.data());
    CHECK(part == want);
    nc.to_plain.fn(pixels, 3, 21, 0, 2, want.data(), part_back.data());
    for (size_t i = 0; i < x.size(); ++i) {
      const size_t px = i % pixels;
      CHECK(px >= 3 && px < 21 ? part_back[i] == x[i] : part_back[i] == 9.0f);
    }
    nc.to_plain.fn(pixels, 0, 3, 0, 2, want.data(), part_back.data());
    nc.to_plain.fn(pixels, 21, pixels, 0, 2, want.data(), part_back.data());
    CHECK(part_back == x);
  }
  const f32_minmax mm{-1.0f, 1.5f};
  struct Case {
    size_t ic, oc, h, w, k, s, pad, pass;  // pass: blocks per pass, 0 = the default
  };
  const Case cases[] = {
      {16, 16, 5, 7, 3, 1, 1, 0},   // pixel tails across rows (35 = 5 x 6 + 5)
      {32, 80, 9, 9, 3, 2, 1, 0},   // stride 2; 80 = one 64-channel group + one 16
      {48, 64, 7, 7, 1, 1, 0, 0},   // 1x1 read in place, 49 pixels
      {64, 48, 8, 6, 1, 2, 0, 0},   // 1x1 stride 2 in place; 48 = 3 blocks
      {16, 32, 6, 6, 3, 1, 0, 0},   // 3x3 without padding
      {48, 32, 6, 5, 3, 1, 1, 1},   // three passes over the pixels (partial sums in y)
      {32, 128, 4, 4, 3, 1, 1, 0},  // two full groups
      {32, 96, 7, 5, 1, 1, 0, 0},   // 96 = 64 + 32: 12-pixel tiles (35 = 2 x 12 + 11)
  };
  for (const Case& cs : cases) {
    const conv2d_geometry g = square_conv(cs.h, cs.w, cs.k, cs.s, cs.pad);
    const size_t p = g.ho * g.wo, taps = cs.k * cs.k;
    auto x = randv(rng, cs.ic * cs.h * cs.w), w = randv(rng, cs.oc * cs.ic * taps);
    auto bias = randv(rng, cs.oc);
    const std::vector<float> want = naive_conv(g, cs.ic, cs.oc, x, w, bias, &mm);
    const size_t blocks = cs.ic / kNchwcBlock;
    std::vector<float> xb(x.size(), 7.0f);
    f32_nchw_to_nchwc__scalar(cs.h * cs.w, 0, cs.h * cs.w, 0, blocks, x.data(), xb.data());
    const NchwcConvCall call = prepare_nchwc_conv(g, cs.ic, cs.oc, kNchwcBlock, cs.pass, xb, w);
    const f32_nchwc_conv_params& cp = call.cp;
    const float* in = call.in;
    const std::vector<float>& packed = call.packed;
    const size_t groups = (cs.oc + 63) / 64;
    check_nchwc_tiles(nc, call, bias, want, &mm);
    // Calls of one input block each, chained by continues / open (the codebook path's passes).
    for (f32_nchwc_conv_fn fn : {f32_nchwc_conv_fn(f32_nchwc_conv__scalar), nc.conv.fn}) {
      if (fn == nullptr) continue;
      std::vector<float> yb(cs.oc * p, 1e9f), got(cs.oc * p, 3.0f);
      for (size_t grp = 0; grp < groups; ++grp) {
        const size_t o0 = grp * 64, width = std::min<size_t>(64, cs.oc - o0);
        std::vector<float> rows(width * 16 * taps), wpass(width * 16 * taps);
        for (size_t ib = 0; ib < blocks; ++ib) {
          for (size_t o = 0; o < width; ++o)  // this block's weights of the group's rows
            for (size_t k = 0; k < 16 * taps; ++k)
              rows[o * 16 * taps + k] = w[(o0 + o) * cs.ic * taps + ib * 16 * taps + k];
          f32_nchwc_pack(width, 16, cs.k, cs.k, rows.data(), wpass.data());
          f32_nchwc_conv_params pc = cp;
          pc.ic = 16;
          pc.oc = width;
          pc.pass_blocks = 1;
          pc.continues = ib != 0;
          pc.open = ib + 1 < blocks;
          fn(&pc, in + ib * cp.hp * cp.wp * 16, wpass.data(), bias.data() + o0, yb.data() + o0 * p,
             0, 0, p, &mm);
        }
      }
      f32_nchwc_to_nchw__scalar(p, 0, p, 0, cs.oc / kNchwcBlock, yb.data(), got.data());
      CHECK(max_err(got, want) < 1e-4f);
    }
    // A residual added before the clamp: the clamp-free result plus r, then clamped.
    const f32_minmax none{-INFINITY, INFINITY};
    const auto r = randv(rng, cs.oc * p);
    for (f32_nchwc_conv_fn fn : {f32_nchwc_conv_fn(f32_nchwc_conv__scalar), nc.conv.fn}) {
      if (fn == nullptr) continue;
      std::vector<float> open(cs.oc * p), fused(cs.oc * p, 1e9f), expect(cs.oc * p);
      f32_nchwc_conv_params pr = cp;
      for (size_t grp = 0; grp < groups; ++grp)
        fn(&cp, in, packed.data(), bias.data(), open.data(), grp, 0, p, &none);
      pr.residual = r.data();
      for (size_t grp = 0; grp < groups; ++grp)
        fn(&pr, in, packed.data(), bias.data(), fused.data(), grp, 0, p, &mm);
      for (size_t i = 0; i < expect.size(); ++i) expect[i] = f32_clamp(open[i] + r[i], &mm);
      CHECK(max_err(fused, expect) < 1e-5f);
    }
    // Global average pool of the blocked input vs its NCHW definition.
    std::vector<float> gap(cs.ic), gap_want(cs.ic);
    f32_nchwc_global_avgpool__scalar(blocks, cs.h * cs.w, xb.data(), gap.data());
    for (size_t c = 0; c < cs.ic; ++c) {
      double a = 0;
      for (size_t i = 0; i < cs.h * cs.w; ++i) a += x[c * cs.h * cs.w + i];
      gap_want[c] = float(a / double(cs.h * cs.w));
    }
    CHECK(max_err(gap, gap_want) < 1e-5f);
  }
}

// Winograd F(2x2, 3x3): packed weights, the scalar transforms and the scalar 1x1 tiles over a
// run of tiles against a direct convolution (the arithmetic, for every ISA), then this ISA's
// transforms against the scalar ones (bit-exact: the same adds in the same order). Runs of tiles
// start mid-row and end short of the image (t0, nt).
static void test_nchwc_winograd(Isa isa) {
  const NchwcConfig nc = select_kernels(CpuInfo::host(), isa).nchwc;
  std::mt19937 rng(31);
  const f32_minmax mm{-1.0f, 1.5f}, none{-INFINITY, INFINITY};
  struct Case {
    size_t ic, oc, h, w;
  };
  for (const Case& cs : {Case{16, 16, 2, 2}, Case{32, 80, 6, 8}, Case{16, 48, 10, 4}}) {
    const conv2d_geometry g = square_conv(cs.h, cs.w, 3, 1, 1);
    auto x = randv(rng, cs.ic * cs.h * cs.w), w = randv(rng, cs.oc * cs.ic * 9);
    auto bias = randv(rng, cs.oc);
    const std::vector<float> want = naive_conv(g, cs.ic, cs.oc, x, w, bias, &mm);
    const size_t ib = cs.ic / kNchwcBlock, ob = cs.oc / kNchwcBlock;
    std::vector<float> xb(x.size());
    f32_nchw_to_nchwc__scalar(cs.h * cs.w, 0, cs.h * cs.w, 0, ib, x.data(), xb.data());
    std::vector<float> packed(f32_nchwc_wino_packed_size(cs.oc, cs.ic), 9.0f);
    f32_nchwc_wino_pack(cs.oc, cs.ic, w.data(), packed.data());
    const size_t tiles = cs.h / 2 * (cs.w / 2), run = 5, each = cs.oc * cs.ic;
    f32_nchwc_conv_params cp;
    cp.g = conv2d_geometry{1, run, 1, run, 1, 1, 1, 1, 0, 0, 1, 1};
    cp.ic = cs.ic;
    cp.oc = cs.oc;
    cp.hp = 1;
    cp.wp = run;
    cp.pass_blocks = f32_nchwc_pass_blocks(cs.ic, 1, 1);
    std::vector<size_t> offs(run);
    f32_nchwc_offsets(cp.g, run, offs.data());
    cp.offs = offs.data();
    std::vector<float> yb(cs.oc * cs.h * cs.w, 1e9f);
    for (size_t t0 = 0; t0 < tiles; t0 += run) {
      const size_t nt = std::min(run, tiles - t0);
      std::vector<float> v(16 * cs.ic * run, 5.0f), m(16 * cs.oc * run, 5.0f);
      f32_nchwc_wino_in__scalar(cs.h, cs.w, ib, xb.data(), t0, nt, run, v.data());
      if (nc.wino_in.fn != nullptr) {
        std::vector<float> v2(v.size(), 5.0f);
        nc.wino_in.fn(cs.h, cs.w, ib, xb.data(), t0, nt, run, v2.data());
        CHECK(v2 == v);
      }
      for (size_t xi = 0; xi < 16; ++xi)
        for (size_t grp = 0; grp < (cs.oc + 63) / 64; ++grp)
          f32_nchwc_conv__scalar(&cp, v.data() + xi * cs.ic * run, packed.data() + xi * each,
                                 nullptr, m.data() + xi * cs.oc * run, grp, 0, nt, &none);
      if (nc.wino_out.fn != nullptr) {
        std::vector<float> y2(yb.size(), 1e9f), y1(yb.size(), 1e9f);
        f32_nchwc_wino_out__scalar(cs.h, cs.w, ob, m.data(), t0, nt, run, bias.data(), y1.data(),
                                   &mm);
        nc.wino_out.fn(cs.h, cs.w, ob, m.data(), t0, nt, run, bias.data(), y2.data(), &mm);
        CHECK(y2 == y1);
      }
      f32_nchwc_wino_out__scalar(cs.h, cs.w, ob, m.data(), t0, nt, run, bias.data(), yb.data(),
                                 &mm);
    }
    std::vector<float> got(yb.size());
    f32_nchwc_to_nchw__scalar(cs.h * cs.w, 0, cs.h * cs.w, 0, ob, yb.data(), got.data());
    CHECK(max_err(got, want) < 1e-4f);
    // A group's weights in the blocked 3x3 layout (what the codebook decode writes), transformed
    // block by block: the same numbers as the whole-layer packing of a single group.
    if (cs.oc > 64) continue;
    std::vector<float> w3(cs.oc * cs.ic * 9), u1(packed.size(), 7.0f), u2(packed.size(), 7.0f);
    for (size_t o = 0; o < cs.oc; ++o)
      for (size_t i = 0; i < cs.ic; ++i)
        for (size_t tap = 0; tap < 9; ++tap)
          w3[((i / 16 * 9 + tap) * 16 + i % 16) * cs.oc + o] = w[(o * cs.ic + i) * 9 + tap];
    for (size_t b = 0; b < ib; ++b) {
      f32_nchwc_wino_pack_group__scalar(cs.oc, cs.ic, b, w3.data(), u1.data());
      if (nc.wino_pack_group.fn) nc.wino_pack_group.fn(cs.oc, cs.ic, b, w3.data(), u2.data());
    }
    CHECK(u1 == packed);
    if (nc.wino_pack_group.fn) CHECK(u2 == u1);
  }
}

// Plain NCHW inputs of any channel count into blocked outputs (in_block 1: what stems read; the
// kernels take any count), against the naive convolution, for the scalar reference and this
// ISA's tiles.
static void test_nchwc_plain_input(Isa isa) {
  const NchwcConfig nc = select_kernels(CpuInfo::host(), isa).nchwc;
  std::mt19937 rng(29);
  const f32_minmax mm{-1.0f, 1.5f};
  struct Case {
    size_t ic, oc, h, w, k, s, pad, pass;  // pass: channels per pass, 0 = the default
  };
  const Case cases[] = {
      {3, 32, 11, 13, 3, 2, 1, 0},  // MobileNetV2's stem shape, odd image
      {3, 64, 15, 15, 7, 2, 3, 0},  // ResNet-50's conv1 shape
      {24, 48, 7, 9, 1, 1, 0, 0},   // a 24-channel 1x1 read in place
      {5, 80, 6, 6, 3, 1, 1, 2},    // 3 passes of 2, 2, 1 channels; 80 = 64 + 16
  };
  for (const Case& cs : cases) {
    const conv2d_geometry g = square_conv(cs.h, cs.w, cs.k, cs.s, cs.pad);
    auto x = randv(rng, cs.ic * cs.h * cs.w), w = randv(rng, cs.oc * cs.ic * cs.k * cs.k);
    auto bias = randv(rng, cs.oc);
    const std::vector<float> want = naive_conv(g, cs.ic, cs.oc, x, w, bias, &mm);
    const NchwcConvCall call = prepare_nchwc_conv(g, cs.ic, cs.oc, 1, cs.pass, x, w);
    check_nchwc_tiles(nc, call, bias, want, &mm);
    // Padded rows in two overlapping ranges (each row-band task pads the rows it reads), each
    // into a buffer of just those rows per channel: every row as in the whole padded copy.
    if (call.xpad.empty()) continue;
    const size_t hp = call.cp.hp, wp = call.cp.wp, mid = hp / 2;
    for (const auto& [r0, r1] : {std::pair<size_t, size_t>{0, mid + 1}, {mid, hp}}) {
      std::vector<float> rows(cs.ic * (r1 - r0) * wp + 1, 5.0f);
      f32_nchwc_pad(g, 0, cs.ic, x.data(), rows.data(), 1, r0, r1);
      CHECK(rows.back() == 5.0f);  // nothing written past the rows asked for
      for (size_t c = 0; c < cs.ic; ++c)
        for (size_t r = r0; r < r1; ++r)
          for (size_t j = 0; j < wp; ++j)
            CHECK(rows[(c * (r1 - r0) + r - r0) * wp + j] == call.xpad[(c * hp + r) * wp + j]);
    }
  }
}

// The blocked max pool against the NCHW one, with padding and ceil_mode's short last window.
static void test_nchwc_maxpool() {
  std::mt19937 rng(31);
  struct Case {
    size_t h, w, ho, wo, k, s, pad;
  };
  const Case cases[] = {{9, 9, 5, 5, 3, 2, 1}, {8, 8, 4, 4, 3, 2, 0}, {5, 7, 5, 7, 3, 1, 1}};
  for (const Case& cs : cases) {
    const pool2d_geometry g{cs.h, cs.w,   cs.ho,  cs.wo,  cs.k,   cs.k, cs.s,
                            cs.s, cs.pad, cs.pad, cs.pad, cs.pad, true};
    const size_t channels = 32, in = cs.h * cs.w, out = cs.ho * cs.wo;
    const auto x = randv(rng, channels * in);
    std::vector<float> want(channels * out), xb(x.size()), yb(channels * out, 1e9f),
        got(channels * out);
    for (size_t c = 0; c < channels; ++c)
      f32_maxpool2d__scalar(&g, x.data() + c * in, want.data() + c * out);
    f32_nchw_to_nchwc__scalar(in, 0, in, 0, channels / 16, x.data(), xb.data());
    std::vector<f32_nchwc_maxpool_fn> fns = {f32_nchwc_maxpool__scalar};
    if (CpuInfo::host().supports(Isa::kAvx512))
      fns.push_back(select_nchwc(Isa::kAvx512).maxpool.fn);
    for (f32_nchwc_maxpool_fn fn : fns) {
      std::fill(yb.begin(), yb.end(), 1e9f);
      fn(&g, 0, 1, xb.data(), yb.data());
      fn(&g, 1, 2, xb.data(), yb.data());
      f32_nchwc_to_nchw__scalar(out, 0, out, 0, channels / 16, yb.data(), got.data());
      CHECK(got == want);
    }
  }
}

// Codebook decode into the blocked layout against decoding whole rows and packing them (4 bits:
// the permute path; 3 bits: codes across bytes), a pass that starts past block 0, 1x1 and 3x3.
static void test_nchwc_decode_cb(Isa isa) {
  const NchwcConfig nc = select_kernels(CpuInfo::host(), isa).nchwc;
  std::mt19937 rng(31);
  for (uint32_t bits : {4u, 3u})
    for (size_t taps : {size_t(1), size_t(9)}) {
      const size_t m = 96, c = 48, k = c * taps, row_bytes = (k * bits + 7) / 8;
      std::vector<uint8_t> codes(m * row_bytes);
      for (auto& b : codes) b = uint8_t(rng());
      auto table = randv(rng, 2u << bits), scale = randv(rng, m);
      std::vector<int32_t> group(m);
      for (size_t i = 0; i < m; ++i) group[i] = int32_t(i % 2);
      const cb_weights cw{m,           k, bits, row_bytes, codes.data(), table.data(), group.data(),
                          scale.data()};
      std::vector<float> dense(m * k);
      cb_gemm_decode_rows(0, m, &cw, dense.data());
      const size_t o0 = 64, width = 32, ib0 = 1, nb = 2, n = nb * 16 * taps;
      const size_t side = taps == 9 ? 3 : 1;
      std::vector<float> rows(width * n), want(width * n), seg(16 * n);
      for (size_t o = 0; o < width; ++o)
        for (size_t kk = 0; kk < n; ++kk)
          rows[o * n + kk] = dense[(o0 + o) * k + ib0 * 16 * taps + kk];
      f32_nchwc_pack(width, nb * 16, side, side, rows.data(), want.data());
      for (f32_nchwc_decode_cb_fn fn :
           {f32_nchwc_decode_cb_fn(f32_nchwc_decode_cb__scalar), nc.decode_cb.fn}) {
        if (fn == nullptr) continue;
        std::vector<float> got(width * n, 7.0f);
        fn(&cw, o0, width, taps, ib0, nb, seg.data(), got.data());
        CHECK(max_err(got, want) < 1e-6f);
      }
    }
}

// The blocked depthwise convolution against its NCHW definition, scalar and this ISA's.
static void test_nchwc_dw(Isa isa) {
  const NchwcConfig nc = select_kernels(CpuInfo::host(), isa).nchwc;
  std::mt19937 rng(29);
  const f32_minmax mm{0.0f, 6.0f};
  struct Case {
    size_t c, h, w, k, s;
  };
  // Rows of 1 to 3 pieces (<= 16 pixels each; interior pieces skip the column tests), images
  // narrower than the filter, and tasks that start and end inside rows (split 5 / 23 below).
  const Case cases[] = {{32, 7, 9, 3, 1},  {48, 9, 8, 3, 2},  {16, 6, 6, 5, 1},  {32, 11, 11, 5, 2},
                        {16, 1, 1, 3, 1},  {16, 3, 2, 3, 2},  {16, 5, 37, 3, 1}, {32, 6, 40, 3, 2},
                        {16, 4, 35, 5, 2}, {16, 3, 20, 5, 1}, {16, 2, 3, 5, 1}};
  for (const Case& cs : cases) {
    const size_t pad = cs.k / 2;
    conv2d_geometry g{cs.h, cs.w, 0, 0, cs.k, cs.k, cs.s, cs.s, pad, pad, 1, 1};
    g.ho = (cs.h + 2 * pad - cs.k) / cs.s + 1;
    g.wo = (cs.w + 2 * pad - cs.k) / cs.s + 1;
    const size_t p = g.ho * g.wo, taps = cs.k * cs.k, blocks = cs.c / kNchwcBlock;
    auto x = randv(rng, cs.c * cs.h * cs.w), w = randv(rng, cs.c * taps), bias = randv(rng, cs.c);
    std::vector<float> want(cs.c * p);
    for (size_t ch = 0; ch < cs.c; ++ch)
      for (size_t px = 0; px < p; ++px) {
        double a = bias[ch];
        for (size_t t = 0; t < taps; ++t) {
          const ptrdiff_t iy = ptrdiff_t((px / g.wo) * cs.s + t / cs.k) - ptrdiff_t(pad);
          const ptrdiff_t ix = ptrdiff_t((px % g.wo) * cs.s + t % cs.k) - ptrdiff_t(pad);
          if (iy < 0 || ix < 0 || iy >= ptrdiff_t(cs.h) || ix >= ptrdiff_t(cs.w)) continue;
          a += double(w[ch * taps + t]) * x[(ch * cs.h + size_t(iy)) * cs.w + size_t(ix)];
        }
        want[ch * p + px] = f32_clamp(float(a), &mm);
      }
    std::vector<float> xb(x.size()), packed(cs.c * taps, 9.0f);
    f32_nchw_to_nchwc__scalar(cs.h * cs.w, 0, cs.h * cs.w, 0, blocks, x.data(), xb.data());
    f32_nchwc_dw_pack(cs.c, cs.k, cs.k, w.data(), packed.data());
    f32_nchwc_conv_params cp;
    cp.g = g;
    cp.ic = cp.oc = cs.c;
    for (f32_nchwc_dwconv_fn fn : {f32_nchwc_dwconv_fn(f32_nchwc_dwconv__scalar), nc.dwconv.fn}) {
      if (fn == nullptr) continue;
      for (size_t split : {p, size_t(5), size_t(23)}) {  // all pixels at once, or tasks
        std::vector<float> yb(cs.c * p, 1e9f), got(cs.c * p, 3.0f);
        for (size_t b = 0; b < blocks; ++b)
          for (size_t p0 = 0; p0 < p; p0 += split)
            fn(&cp, xb.data(), packed.data(), bias.data(), yb.data(), b, b + 1, p0,
               std::min(p, p0 + split), &mm);
        f32_nchwc_to_nchw__scalar(p, 0, p, 0, blocks, yb.data(), got.data());
        CHECK(max_err(got, want) < 1e-4f);
      }
      // A task writes its own pixels of its own block and nothing else (the others' are raced).
      const size_t q0 = std::min<size_t>(5, p - 1), q1 = std::min<size_t>(23, p);
      std::vector<float> yb(cs.c * p, 1e9f);
      fn(&cp, xb.data(), packed.data(), bias.data(), yb.data(), blocks - 1, blocks, q0, q1, &mm);
      for (size_t i = 0; i < yb.size(); ++i) {
        const size_t px = (i / kNchwcBlock) % p, b = i / (kNchwcBlock * p);
        CHECK((yb[i] == 1e9f) == (b != blocks - 1 || px < q0 || px >= q1));
      }
    }
  }
}

// f32_gemm_pack_b against its definition, row by row (short rows) and strip by strip (long rows).
static void test_pack_b() {
  std::mt19937 rng(7);
  for (size_t ldb : {size_t(50), size_t(1100)})
    for (size_t nr : {size_t(8), size_t(12), size_t(16), size_t(32)})
      for (size_t n : {size_t(1), nr - 1, nr, 3 * nr + 5})
        for (size_t k : {size_t(1), size_t(9)}) {
          if (n > ldb) continue;
          const auto b = randv(rng, k * ldb);
          const size_t strips = (n + nr - 1) / nr;
          std::vector<float> got(strips * k * nr, 7.0f), want(strips * k * nr);
          f32_gemm_pack_b(k, n, nr, b.data(), ldb, got.data());
          for (size_t s = 0; s < strips; ++s)
            for (size_t kk = 0; kk < k; ++kk)
              for (size_t i = 0; i < nr; ++i) {
                const size_t j = s * nr + i;
                want[(s * k + kk) * nr + i] = j < n ? b[kk * ldb + j] : 0.0f;
              }
          CHECK(got == want);
        }
}

// The ISA's im2col into packed strips against the scalar one, bit for bit: padding, stride,
// dilation, K / pixel sub-ranges, strip widths (8, 16, 32 and plain rows incl. odd widths).
static void test_im2col_packed(Isa isa) {
  std::mt19937 rng(5);
  const GemmConfig ref = select_kernels(CpuInfo::host(), Isa::kScalar).gemm;
  const GemmConfig gc = select_kernels(CpuInfo::host(), isa).gemm;
  struct Conv {
    size_t c, h, w, k, s, pad, d;
  };
  size_t mismatches = 0;
  for (const Conv& cv :
       {Conv{3, 7, 9, 3, 1, 1, 1}, Conv{5, 8, 6, 3, 2, 1, 1}, Conv{2, 9, 9, 3, 1, 2, 2},
        Conv{2, 11, 7, 5, 2, 2, 1}, Conv{3, 30, 30, 7, 2, 3, 1}, Conv{4, 14, 14, 3, 1, 1, 1},
        Conv{2, 5, 5, 3, 1, 0, 1}, Conv{2, 20, 17, 3, 3, 4, 1}, Conv{3, 3, 3, 3, 1, 1, 1}}) {
    const size_t ho = (cv.h + 2 * cv.pad - cv.d * (cv.k - 1) - 1) / cv.s + 1;
    const size_t wo = (cv.w + 2 * cv.pad - cv.d * (cv.k - 1) - 1) / cv.s + 1;
    const size_t K = cv.c * cv.k * cv.k, P = ho * wo;
    const conv2d_geometry g{cv.h, cv.w, ho, wo, cv.k, cv.k, cv.s, cv.s, cv.pad, cv.pad, cv.d, cv.d};
    const auto x = randv(rng, cv.c * cv.h * cv.w);
    for (size_t k0 : {size_t(0), size_t(4)})
      for (size_t kc : {K - k0, size_t(7)})
        for (size_t p0 : {size_t(0), size_t(3), P / 2})
          for (size_t np : {P - p0, size_t(13), size_t(1)})
            for (size_t nr : {size_t(8), size_t(16), size_t(32), np, np + 5}) {
              if (kc == 0 || k0 + kc > K || p0 + np > P || np == 0) continue;
              const size_t floats = (np + nr - 1) / nr * nr * kc;
              std::vector<float> a(floats, 7.0f), b(floats, 7.0f);
              ref.im2col_packed.fn(&g, x.data(), k0, kc, p0, np, nr, a.data());
              gc.im2col_packed.fn(&g, x.data(), k0, kc, p0, np, nr, b.data());
              mismatches += a != b;
            }
  }
  CHECK(mismatches == 0);
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
      rt.run_on_zeros();
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
  test_weight_store();
  test_fuzz_cases();
  test_pack_b();
  test_nchwc_maxpool();
  const CpuInfo& cpu = CpuInfo::host();
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kNeon}) {
    if (!cpu.supports(isa)) {
      std::printf("skip %s kernels: this CPU cannot run them\n", isa_name(isa));
      continue;
    }
    test_kernels(isa);
    test_blocked_gemm(isa);
    test_gemm_t(isa);
    test_conv_t(isa);
    test_nchwc(isa);
    test_nchwc_zero_tail(isa);
    test_nchwc_plain_input(isa);
    test_nchwc_winograd(isa);
    test_nchwc_dw(isa);
    test_nchwc_decode_cb(isa);
    test_im2col_packed(isa);
    std::printf("%s kernels checked against scalar\n", isa_name(isa));
  }
  if (g_failures) {
    std::fprintf(stderr, "%d check(s) failed\n", g_failures);
    return 1;
  }
  std::printf("all C++ tests passed\n");
  return 0;
}
