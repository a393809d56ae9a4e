// Every CUDA kernel against the CPU scalar reference kernels (csrc/kernels/*/*-scalar.cc) over
// edge shapes: tails of every tile, k = 1, one pixel, odd and tiny channel counts, asymmetric
// padding, dilation, groups, empty sparse rows, every codebook width. Exits 0 with
// "no CUDA device: skipped" where cudaGetDeviceCount finds none (CI, the development machine).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda/common.cuh"  // the CUDA runtime API (or its CPU simulation)
#include "cuda/cuda_kernels.h"
#include "kernels/cb-gemm/cb-gemm.h"
#include "kernels/f32-conv/f32-conv.h"
#include "kernels/f32-dwconv/f32-dwconv.h"
#include "kernels/f32-elementwise/f32-elementwise.h"
#include "kernels/f32-gemm/f32-gemm.h"
#include "kernels/f32-pool/f32-pool.h"
#include "kernels/f32-spmm/f32-spmm.h"
#include "kernels/u8-quant/u8-quant.h"

namespace {

using namespace edgefit;
namespace ec = edgefit::cuda;

constexpr float kInf = INFINITY;
const f32_minmax kNone{-kInf, kInf}, kRelu6{0.0f, 6.0f}, kRelu{0.0f, kInf};

int g_cases = 0, g_failures = 0, g_split_cases = 0;
std::mt19937 g_rng(1234);

std::vector<float> randn(size_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g_rng);
  return v;
}

void fail(const std::string& what) {
  ++g_failures;
  std::printf("FAIL %s\n", what.c_str());
}

// A device buffer holding a copy of `host` (or `n` uninitialised elements).
template <typename T>
struct Dev {
  T* p = nullptr;
  size_t n = 0;
  explicit Dev(size_t count) : n(count) {
    if (cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T)) != cudaSuccess) fail("cudaMalloc");
  }
  explicit Dev(const std::vector<T>& host) : Dev(host.size()) {
    cudaMemcpy(p, host.data(), n * sizeof(T), cudaMemcpyHostToDevice);
  }
  ~Dev() { cudaFree(p); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  std::vector<T> get() const {
    std::vector<T> h(n);
    cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
    return h;
  }
};

// The kernel's return code and any asynchronous execution error.
bool ran(const std::string& name, int err) {
  const int sync = int(cudaDeviceSynchronize());
  if (err == 0 && sync == 0) return true;
  fail(name + ": " + ec::error_string(err != 0 ? err : sync));
  return false;
}

// Max |got - want| over max |want| (normalised error, as ggml's test-backend-ops).
void compare(const std::string& name, const std::vector<float>& got, const std::vector<float>& want,
             double tol) {
  ++g_cases;
  if (got.size() != want.size()) return fail(name + ": size mismatch");
  double scale = 1e-6, err = 0.0;
  for (float w : want) scale = std::max(scale, double(std::fabs(w)));
  for (size_t i = 0; i < got.size(); ++i) {
    const double d = std::fabs(double(got[i]) - double(want[i]));
    if (!(d <= err)) err = std::isnan(d) ? INFINITY : d;
  }
  if (err / scale > tol) {
    char buf[64];
    std::snprintf(buf, sizeof buf, ": normalised error %.3g > %.3g", err / scale, tol);
    fail(name + buf);
  }
}

// Runs `call(workspace, floats)` with the split-K workspace its plan asks for, when it asks for
// one, and compares with `want`: the split path of f32_gemm / f32_conv2d / cb_gemm.
template <typename Call>
void check_split(const std::string& name, size_t floats, Call call, const Dev<float>& out,
                 const std::vector<float>& want, double tol) {
  if (floats == 0) return;
  ++g_split_cases;
  Dev<float> ws(floats);
  if (ran(name + " split-K", call(ws.p, floats))) compare(name + " split-K", out.get(), want, tol);
}

std::string shape(std::initializer_list<size_t> dims) {
  std::string s;
  for (size_t d : dims) s += (s.empty() ? "" : "x") + std::to_string(d);
  return s;
}

// ---- f32-gemm -----------------------------------------------------------------------------------

std::vector<float> ref_gemm(size_t m, size_t n, size_t k, const std::vector<float>& w,
                            const float* bias, const std::vector<float>& b, f32_minmax mm) {
  std::vector<float> packed(f32_gemm_packed_size(m, k, 4)), c(m * n);
  f32_gemm_pack(m, k, 4, w.data(), bias, packed.data());
  for (size_t p = 0; p * 4 < m; ++p)
    f32_gemm_ukernel_4x8__scalar(std::min<size_t>(4, m - p * 4), n, k,
                                 packed.data() + p * 4 * (k + 1), b.data(), n, c.data() + p * 4 * n,
                                 n, &mm);
  return c;
}

void test_gemm() {
  // The last three have too few tiles for the device: they also run split over K.
  const size_t shapes[][3] = {{1, 1, 1},      {3, 5, 7},      {4, 8, 16},  {17, 33, 9},
                              {64, 64, 64},   {65, 130, 100}, {7, 300, 3}, {96, 49, 576},
                              {33, 20, 1000}, {130, 7, 300}};
  int i = 0;
  for (const auto& s : shapes) {
    const size_t m = s[0], n = s[1], k = s[2];
    const bool with_bias = i % 2 == 0;
    const f32_minmax mm = i++ % 3 == 1 ? kRelu6 : kNone;
    const auto w = randn(m * k), b = randn(k * n), bias = randn(m);
    const auto want = ref_gemm(m, n, k, w, with_bias ? bias.data() : nullptr, b, mm);
    Dev<float> dw(w), db(b), dbias(bias), dc(m * n);
    const float* bp = with_bias ? dbias.p : nullptr;
    if (ran("f32_gemm", ec::f32_gemm(m, n, k, dw.p, bp, db.p, n, dc.p, n, mm, nullptr)))
      compare("f32_gemm " + shape({m, n, k}), dc.get(), want, 1e-5);
    check_split(
        "f32_gemm " + shape({m, n, k}), ec::f32_gemm_workspace_floats(m, n, k),
        [&](float* ws, size_t floats) {
          return ec::f32_gemm(m, n, k, dw.p, bp, db.p, n, dc.p, n, mm, nullptr, ws, floats);
        },
        dc, want, 1e-5);

    Dev<uint16_t> dw16(m * k);
    if (ran("f32_to_f16", ec::f32_to_f16(m * k, dw.p, dw16.p, nullptr)) &&
        ran("f16_gemm", ec::f16_gemm(m, n, k, dw16.p, bp, db.p, n, dc.p, n, mm, nullptr)))
      compare("f16_gemm " + shape({m, n, k}), dc.get(), want, 1e-2);
  }
  const size_t lin[][3] = {{1, 1, 1}, {1, 10, 33}, {3, 100, 512}, {2, 1000, 7}, {5, 33, 1}};
  for (const auto& s : lin) {
    const size_t batch = s[0], o = s[1], k = s[2];
    const auto w = randn(o * k), x = randn(batch * k), bias = randn(o);
    std::vector<float> want(batch * o);
    for (size_t b = 0; b < batch; ++b)
      f32_gemv_ukernel_4x1__scalar(o, k, w.data(), bias.data(), x.data() + b * k,
                                   want.data() + b * o, &kRelu);
    Dev<float> dw(w), dx(x), dbias(bias), dy(batch * o);
    if (ran("f32_linear", ec::f32_linear(batch, o, k, dw.p, dbias.p, dx.p, dy.p, kRelu, nullptr)))
      compare("f32_linear " + shape({batch, o, k}), dy.get(), want, 1e-5);
  }
}

// ---- f32-conv -----------------------------------------------------------------------------------

struct ConvCase {
  size_t n, ci, co, groups, h, w, kh, kw, sh, sw, pt, pl, pb, pr, dh, dw;
};

conv2d_geometry geometry(const ConvCase& c) {
  const size_t ho = (c.h + c.pt + c.pb - c.dh * (c.kh - 1) - 1) / c.sh + 1;
  const size_t wo = (c.w + c.pl + c.pr - c.dw * (c.kw - 1) - 1) / c.sw + 1;
  return {c.h, c.w, ho, wo, c.kh, c.kw, c.sh, c.sw, c.pt, c.pl, c.dh, c.dw};
}

void test_conv() {
  const ConvCase cases[] = {
      {1, 3, 8, 1, 9, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},     // 3x3 same
      {2, 4, 6, 2, 7, 5, 3, 3, 2, 2, 0, 1, 1, 0, 1, 1},     // asymmetric padding, groups, batch
      {1, 3, 16, 1, 15, 15, 7, 7, 2, 2, 3, 3, 3, 3, 1, 1},  // stem 7x7/2
      {1, 16, 24, 1, 6, 6, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1},   // 1x1: plain GEMM
      {1, 8, 8, 1, 10, 10, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1},   // 1x1 stride 2
      {1, 5, 7, 1, 11, 9, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2},    // dilation 2
      {1, 2, 3, 1, 3, 3, 5, 5, 1, 1, 1, 1, 1, 1, 1, 1},     // window larger than the input
      {1, 6, 12, 3, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},    // 3 groups
      {1, 64, 70, 1, 2, 3, 2, 2, 2, 2, 0, 0, 0, 1, 1, 1},   // BottleFit 2x2/2 head, odd Co
      {1, 64, 40, 1, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},   // late 3x3 layer: split over K
      {2, 32, 18, 2, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},   // split, with batch and groups
      {1, 200, 24, 1, 7, 7, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1},  // 1x1 split over K
  };
  for (const ConvCase& cc : cases) {
    const conv2d_geometry g = geometry(cc);
    const size_t cig = cc.ci / cc.groups, cog = cc.co / cc.groups, P = g.ho * g.wo;
    const size_t K = cig * cc.kh * cc.kw;
    const auto x = randn(cc.n * cc.ci * cc.h * cc.w), w = randn(cc.co * K), bias = randn(cc.co);
    std::vector<float> want(cc.n * cc.co * P), cols(K * P);
    for (size_t b = 0; b < cc.n; ++b)
      for (size_t gr = 0; gr < cc.groups; ++gr) {
        f32_im2col__scalar(&g, cig, x.data() + (b * cc.ci + gr * cig) * cc.h * cc.w, cols.data());
        const std::vector<float> wg(w.begin() + gr * cog * K, w.begin() + (gr + 1) * cog * K);
        const auto yg = ref_gemm(cog, P, K, wg, bias.data() + gr * cog, cols, kRelu);
        std::copy(yg.begin(), yg.end(), want.begin() + (b * cc.co + gr * cog) * P);
      }
    const std::string name = shape({cc.n, cc.ci, cc.h, cc.w}) + " k" + shape({cc.kh, cc.kw}) +
                             " s" + std::to_string(cc.sh) + " g" + std::to_string(cc.groups);
    Dev<float> dx(x), dw(w), dbias(bias), dy(want.size());
    if (ran("f32_conv2d", ec::f32_conv2d(cc.n, cc.ci, cc.co, cc.groups, g, dw.p, dbias.p, dx.p,
                                         dy.p, kRelu, nullptr)))
      compare("f32_conv2d " + name, dy.get(), want, 1e-5);
    check_split(
        "f32_conv2d " + name, ec::f32_conv2d_workspace_floats(cc.n, cc.ci, cc.co, cc.groups, g),
        [&](float* ws, size_t floats) {
          return ec::f32_conv2d(cc.n, cc.ci, cc.co, cc.groups, g, dw.p, dbias.p, dx.p, dy.p, kRelu,
                                nullptr, ws, floats);
        },
        dy, want, 1e-5);

    // Explicit im2col of the first group of the last image: exact.
    const size_t off = ((cc.n - 1) * cc.ci) * cc.h * cc.w;
    f32_im2col__scalar(&g, cig, x.data() + off, cols.data());
    Dev<float> dcols(cols.size());
    if (ran("f32_im2col", ec::f32_im2col(g, cig, dx.p + off, dcols.p, nullptr)))
      compare("f32_im2col " + name, dcols.get(), cols, 0.0);
  }
}

// ---- f32-dwconv ---------------------------------------------------------------------------------

void test_dwconv() {
  const ConvCase cases[] = {
      {1, 8, 8, 8, 9, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
      {2, 5, 5, 5, 10, 7, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},
      {1, 4, 4, 4, 12, 12, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1},
      {1, 3, 3, 3, 11, 11, 5, 5, 2, 2, 2, 2, 2, 2, 1, 1},
      {1, 3, 3, 3, 7, 8, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2},
      {1, 2, 2, 2, 1, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
      {1, 3, 3, 3, 40, 37, 3, 3, 2, 2, 0, 1, 1, 0, 1, 1},
      {1, 1, 1, 1, 5, 9, 1, 7, 1, 3, 0, 3, 0, 3, 1, 1},
  };
  for (const ConvCase& cc : cases) {
    const conv2d_geometry g = geometry(cc);
    const size_t C = cc.ci, P = g.ho * g.wo, taps = cc.kh * cc.kw;
    const auto x = randn(cc.n * C * cc.h * cc.w), w = randn(C * taps), bias = randn(C);
    const f32_dwconv_params prm{cc.kh, cc.kw, cc.sh, cc.sw, cc.dh, cc.dw, kRelu6};
    // The scalar kernel reads a zero-padded channel, as the CPU executor builds it.
    const size_t hp = (g.ho - 1) * cc.sh + (cc.kh - 1) * cc.dh + 1;
    const size_t wp = (g.wo - 1) * cc.sw + (cc.kw - 1) * cc.dw + 1;
    std::vector<float> want(cc.n * C * P);
    for (size_t t = 0; t < cc.n * C; ++t) {
      std::vector<float> padded(hp * wp + 64, 0.0f);
      for (size_t r = 0; r < cc.h; ++r)
        for (size_t q = 0; q < cc.w; ++q)
          if (r + cc.pt < hp && q + cc.pl < wp)
            padded[(r + cc.pt) * wp + q + cc.pl] = x[t * cc.h * cc.w + r * cc.w + q];
      const size_t ch = t % C;
      f32_dwconv_ukernel_kxk__scalar(g.ho, g.wo, padded.data(), wp, w.data() + ch * taps, bias[ch],
                                     want.data() + t * P, &prm);
    }
    Dev<float> dx(x), dw(w), dbias(bias), dy(want.size());
    if (ran("f32_dwconv2d",
            ec::f32_dwconv2d(cc.n, C, g, dw.p, dbias.p, dx.p, dy.p, kRelu6, nullptr)))
      compare("f32_dwconv2d " + shape({cc.n, C, cc.h, cc.w}) + " k" + shape({cc.kh, cc.kw}) + " s" +
                  std::to_string(cc.sh) + " d" + std::to_string(cc.dh),
              dy.get(), want, 1e-5);
  }
}

// ---- f32-spmm -----------------------------------------------------------------------------------

struct Bsr {
  std::vector<int32_t> row_ptr, col_idx;
  std::vector<float> values;
};

Bsr random_bsr(size_t block_rows, size_t k, uint32_t block, float density) {
  Bsr s;
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  s.row_ptr.push_back(0);
  for (size_t r = 0; r < block_rows; ++r) {
    if (r % 5 != 3)  // every fifth block row stays empty: output = clamp(bias)
      for (size_t c = 0; c < k; ++c)
        if (u(g_rng) < density) {
          s.col_idx.push_back(int32_t(c));
          for (uint32_t b = 0; b < block; ++b) s.values.push_back(u(g_rng) * 2.0f - 1.0f);
        }
    s.row_ptr.push_back(int32_t(s.col_idx.size()));
  }
  return s;
}

void test_spmm() {
  using spmm_fn = void (*)(size_t, size_t, const int32_t*, const int32_t*, const float*,
                           const float*, const float*, size_t, float*, size_t, const f32_minmax*);
  const spmm_fn refs[] = {f32_spmm_ukernel_8x1__scalar, f32_spmm_ukernel_8x2__scalar, nullptr,
                          f32_spmm_ukernel_8x4__scalar};
  for (uint32_t block : {1u, 2u, 4u})
    for (size_t pixels : {1, 5, 8, 33, 200})
      for (size_t k : {1, 17, 64})
        for (size_t brows : {1, 7, 33}) {
          const Bsr s = random_bsr(brows, k, block, 0.3f);
          const size_t o = brows * block;
          const auto x = randn(k * pixels), bias = randn(o);
          std::vector<float> want(o * pixels);
          refs[block - 1](pixels, brows, s.row_ptr.data(), s.col_idx.data(), s.values.data(),
                          bias.data(), x.data(), pixels, want.data(), pixels, &kRelu);
          Dev<int32_t> drp(s.row_ptr), dci(s.col_idx);
          Dev<float> dv(s.values), dx(x), dbias(bias), dy(want.size());
          const std::string name =
              "f32_spmm B" + std::to_string(block) + " " + shape({o, k, pixels});
          if (ran(name, ec::f32_spmm(pixels, brows, block, drp.p, dci.p, dv.p, dbias.p, dx.p,
                                     pixels, 1, dy.p, pixels, 1, kRelu, nullptr)))
            compare(name, dy.get(), want, 1e-5);
          // The linear-layer form: x as [pixels, k], y as [pixels, o] (strides swapped).
          std::vector<float> xt(x.size()), want_t(want.size());
          for (size_t c = 0; c < k; ++c)
            for (size_t p = 0; p < pixels; ++p) xt[p * k + c] = x[c * pixels + p];
          for (size_t r = 0; r < o; ++r)
            for (size_t p = 0; p < pixels; ++p) want_t[p * o + r] = want[r * pixels + p];
          Dev<float> dxt(xt);
          if (ran(name, ec::f32_spmm(pixels, brows, block, drp.p, dci.p, dv.p, dbias.p, dxt.p, 1, k,
                                     dy.p, 1, o, kRelu, nullptr)))
            compare(name + " transposed", dy.get(), want_t, 1e-5);
        }
}

// ---- cb-gemm ------------------------------------------------------------------------------------

// m rows of k random `bits`-bit codes, packed LSB first (cb-gemm.h).
std::vector<uint8_t> random_codes(size_t m, size_t k, uint32_t bits) {
  const size_t row_bytes = (k * bits + 7) / 8;
  std::vector<uint8_t> packed(m * row_bytes, 0);
  std::uniform_int_distribution<uint32_t> code(0, (1u << bits) - 1u);
  for (size_t r = 0; r < m; ++r)
    for (size_t kk = 0; kk < k; ++kk) {
      const uint32_t c = code(g_rng);
      const size_t bit = kk * bits;
      packed[r * row_bytes + bit / 8] |= uint8_t(c << (bit % 8));
      if (bit % 8 + bits > 8) packed[r * row_bytes + bit / 8 + 1] |= uint8_t(c >> (8 - bit % 8));
    }
  return packed;
}

// cb_conv2d against the scalar im2col + cb-gemm kernels, group by group.
void test_cb_conv() {
  const ConvCase cases[] = {
      {1, 3, 8, 1, 9, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},    // 3x3 same
      {2, 4, 6, 2, 7, 5, 3, 3, 2, 2, 0, 1, 1, 0, 1, 1},    // asymmetric padding, groups, batch
      {1, 5, 7, 1, 11, 9, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2},   // dilation 2
      {1, 16, 24, 1, 6, 6, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1},  // 1x1
      {1, 64, 40, 1, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},  // late 3x3 layer: split over K
      {2, 32, 18, 2, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},  // split, with batch and groups
      {1, 8, 12, 1, 6, 5, 3, 3, 1, 1, 1, 0, 1, 0, 1, 1},   // 8-bit codes: the 32-row tiles
  };
  uint32_t bits = 2;
  for (const ConvCase& cc : cases) {
    const conv2d_geometry g = geometry(cc);
    const size_t cig = cc.ci / cc.groups, cog = cc.co / cc.groups, P = g.ho * g.wo;
    const size_t K = cig * cc.kh * cc.kw, entries = size_t(1) << bits, tables = 3;
    const size_t row_bytes = (K * bits + 7) / 8;
    const std::vector<uint8_t> packed = random_codes(cc.co, K, bits);
    const auto table = randn(tables * entries), scale = randn(cc.co, 0.5f, 1.5f);
    const auto x = randn(cc.n * cc.ci * cc.h * cc.w), bias = randn(cc.co);
    std::vector<int32_t> group(cc.co);
    for (size_t r = 0; r < cc.co; ++r) group[r] = int32_t(r * 7 % tables);
    std::vector<float> want(cc.n * cc.co * P), cols(K * P);
    for (size_t b = 0; b < cc.n; ++b)
      for (size_t gr = 0; gr < cc.groups; ++gr) {
        f32_im2col__scalar(&g, cig, x.data() + (b * cc.ci + gr * cig) * cc.h * cc.w, cols.data());
        const size_t r0 = gr * cog;
        const cb_weights hw{cog,
                            K,
                            bits,
                            row_bytes,
                            packed.data() + r0 * row_bytes,
                            table.data(),
                            group.data() + r0,
                            scale.data() + r0};
        for (size_t r = 0; r < cog; r += 4)
          cb_gemm_ukernel_4x8__scalar(r, std::min<size_t>(4, cog - r), P, &hw, bias.data() + r0,
                                      cols.data(), P, want.data() + (b * cc.co + r0 + r) * P, P,
                                      &kRelu);
      }
    Dev<uint8_t> dpk(packed);
    Dev<float> dtab(table), dscale(scale), dx(x), dbias(bias), dy(want.size());
    Dev<int32_t> dgroup(group);
    const cb_weights dwt{cc.co, K, bits, row_bytes, dpk.p, dtab.p, dgroup.p, dscale.p};
    const std::string name = "cb_conv2d " + std::to_string(bits) + "-bit " +
                             shape({cc.n, cc.ci, cc.h, cc.w}) + " k" + shape({cc.kh, cc.kw}) +
                             " s" + std::to_string(cc.sh) + " g" + std::to_string(cc.groups);
    if (ran(name,
            ec::cb_conv2d(cc.n, cc.ci, cc.groups, g, dwt, dbias.p, dx.p, dy.p, kRelu, nullptr)))
      compare(name, dy.get(), want, 1e-5);
    check_split(
        name, ec::cb_conv2d_workspace_floats(cc.n, cc.ci, cc.co, cc.groups, g),
        [&](float* ws, size_t floats) {
          return ec::cb_conv2d(cc.n, cc.ci, cc.groups, g, dwt, dbias.p, dx.p, dy.p, kRelu, nullptr,
                               ws, floats);
        },
        dy, want, 1e-5);
    ++bits;  // 2, 3, ... 8: every width
  }
}

void test_cb_gemm() {
  for (uint32_t bits = 2; bits <= 8; ++bits)
    for (size_t m : {1, 5, 40})
      for (size_t k : {1, 3, 17, 70, 300})
        for (size_t n : {1, 7, 65}) {
          const size_t groups = (m + k) % 3 + 1, entries = size_t(1) << bits;
          const size_t row_bytes = (k * bits + 7) / 8;
          const std::vector<uint8_t> packed = random_codes(m, k, bits);
          const auto table = randn(groups * entries), scale = randn(m, 0.5f, 1.5f);
          const auto x = randn(k * n), bias = randn(m);
          std::vector<int32_t> group(m);
          for (size_t r = 0; r < m; ++r) group[r] = int32_t(r % groups);
          const cb_weights hw{
              m, k, bits, row_bytes, packed.data(), table.data(), group.data(), scale.data()};
          std::vector<float> want(m * n);
          for (size_t r = 0; r < m; r += 4)
            cb_gemm_ukernel_4x8__scalar(r, std::min<size_t>(4, m - r), n, &hw, bias.data(),
                                        x.data(), n, want.data() + r * n, n, &kNone);
          Dev<uint8_t> dpk(packed);
          Dev<float> dtab(table), dscale(scale), dx(x), dbias(bias), dy(m * n);
          Dev<int32_t> dgroup(group);
          const cb_weights dwt{m, k, bits, row_bytes, dpk.p, dtab.p, dgroup.p, dscale.p};
          const std::string name = "cb_gemm " + std::to_string(bits) + "-bit G" +
                                   std::to_string(groups) + " " + shape({m, k, n});
          if (ran(name, ec::cb_gemm(dwt, dbias.p, n, dx.p, n, 1, dy.p, n, 1, kNone, nullptr)))
            compare(name, dy.get(), want, 1e-5);
          check_split(
              name, ec::cb_gemm_workspace_floats(m, n, k),
              [&](float* ws, size_t floats) {
                return ec::cb_gemm(dwt, dbias.p, n, dx.p, n, 1, dy.p, n, 1, kNone, nullptr, ws,
                                   floats);
              },
              dy, want, 1e-5);
          if (n == 7) {  // linear form: x [n, k], y [n, m]
            std::vector<float> xt(x.size()), want_t(want.size());
            for (size_t c = 0; c < k; ++c)
              for (size_t p = 0; p < n; ++p) xt[p * k + c] = x[c * n + p];
            for (size_t r = 0; r < m; ++r)
              for (size_t p = 0; p < n; ++p) want_t[p * m + r] = want[r * n + p];
            Dev<float> dxt(xt);
            if (ran(name, ec::cb_gemm(dwt, dbias.p, n, dxt.p, 1, k, dy.p, 1, m, kNone, nullptr)))
              compare(name + " transposed", dy.get(), want_t, 1e-5);
          }
        }
}

// ---- f32-pool -----------------------------------------------------------------------------------

size_t pool_out(size_t in, size_t k, size_t s, size_t p0, size_t p1, bool ceil_mode) {
  // As the CPU executor (torch's rule: the last window starts inside the input or padding).
  const size_t span = in + p0 + p1 - k;
  size_t o = (span + (ceil_mode ? s - 1 : 0)) / s + 1;
  if (ceil_mode && (o - 1) * s >= in + p0) --o;
  return o;
}

void test_pool() {
  struct Case {
    size_t h, w, kh, kw, sh, sw, pt, pl, pb, pr;
    bool ceil_mode;
  };
  const Case cases[] = {
      {8, 8, 2, 2, 2, 2, 0, 0, 0, 0, false},     {7, 7, 3, 3, 2, 2, 1, 1, 1, 1, true},
      {9, 6, 3, 3, 2, 2, 1, 0, 1, 1, false},     {5, 5, 3, 3, 1, 1, 1, 1, 1, 1, false},
      {1, 1, 1, 1, 1, 1, 0, 0, 0, 0, false},     {13, 13, 3, 3, 2, 2, 0, 0, 0, 0, true},
      {112, 112, 3, 3, 2, 2, 1, 1, 1, 1, false}, {6, 10, 2, 3, 3, 2, 1, 1, 1, 1, true}};
  const size_t planes = 3;
  for (const Case& c : cases)
    for (bool include_pad : {false, true}) {
      const pool2d_geometry g{c.h,
                              c.w,
                              pool_out(c.h, c.kh, c.sh, c.pt, c.pb, c.ceil_mode),
                              pool_out(c.w, c.kw, c.sw, c.pl, c.pr, c.ceil_mode),
                              c.kh,
                              c.kw,
                              c.sh,
                              c.sw,
                              c.pt,
                              c.pl,
                              c.pb,
                              c.pr,
                              include_pad};
      const auto x = randn(planes * c.h * c.w);
      std::vector<float> want_max(planes * g.ho * g.wo), want_avg(want_max.size());
      for (size_t p = 0; p < planes; ++p) {
        f32_maxpool2d__scalar(&g, x.data() + p * c.h * c.w, want_max.data() + p * g.ho * g.wo);
        f32_avgpool2d__scalar(&g, x.data() + p * c.h * c.w, want_avg.data() + p * g.ho * g.wo);
      }
      Dev<float> dx(x), dy(want_max.size());
      const std::string name = shape({c.h, c.w}) + " k" + shape({c.kh, c.kw}) +
                               (c.ceil_mode ? " ceil" : "") + (include_pad ? " incl" : "");
      if (ran("f32_maxpool2d", ec::f32_maxpool2d(planes, g, dx.p, dy.p, nullptr)))
        compare("f32_maxpool2d " + name, dy.get(), want_max, 0.0);
      if (ran("f32_avgpool2d", ec::f32_avgpool2d(planes, g, dx.p, dy.p, nullptr)))
        compare("f32_avgpool2d " + name, dy.get(), want_avg, 1e-6);
    }
  const size_t gap[][2] = {{1, 1}, {7, 49}, {64, 3136}, {3, 1000}};
  for (const auto& s : gap) {
    const auto x = randn(s[0] * s[1]);
    std::vector<float> want(s[0]);
    f32_global_avgpool__scalar(s[0], s[1], x.data(), want.data());
    Dev<float> dx(x), dy(s[0]);
    if (ran("f32_global_avgpool", ec::f32_global_avgpool(s[0], s[1], dx.p, dy.p, nullptr)))
      compare("f32_global_avgpool " + shape({s[0], s[1]}), dy.get(), want, 1e-5);
  }
}

// ---- f32-elementwise ----------------------------------------------------------------------------

void test_elementwise() {
  for (size_t n : {1, 31, 1000, 100003}) {
    const auto a = randn(n, -8.0f, 8.0f), b = randn(n, -8.0f, 8.0f);
    std::vector<float> want(n);
    Dev<float> da(a), db(b), dy(n);
    const std::string sz = std::to_string(n);
    f32_vclamp__scalar(n, a.data(), want.data(), &kRelu6);
    if (ran("f32_vclamp", ec::f32_vclamp(n, da.p, dy.p, kRelu6, nullptr)))
      compare("f32_vclamp " + sz, dy.get(), want, 0.0);
    f32_vhswish__scalar(n, a.data(), want.data());
    if (ran("f32_vhswish", ec::f32_vhswish(n, da.p, dy.p, nullptr)))
      compare("f32_vhswish " + sz, dy.get(), want, 0.0);
    f32_vadd__scalar(n, a.data(), b.data(), want.data(), &kRelu);
    if (ran("f32_vadd", ec::f32_vadd(n, da.p, db.p, da.p, kRelu, nullptr)))  // in place (y = a)
      compare("f32_vadd in place " + sz, da.get(), want, 0.0);
  }
  const size_t aff[][3] = {{1, 1, 1}, {2, 5, 49}, {1, 64, 3136}};
  for (const auto& s : aff) {
    const size_t total = s[0] * s[1] * s[2];
    const auto x = randn(total, -4.0f, 4.0f), scale = randn(s[1]), shift = randn(s[1]);
    std::vector<float> want(total);
    for (size_t o = 0; o < s[0]; ++o)
      f32_vaffine__scalar(s[1], s[2], x.data() + o * s[1] * s[2], scale.data(), shift.data(),
                          want.data() + o * s[1] * s[2], &kRelu6);
    Dev<float> dx(x), dscale(scale), dshift(shift), dy(total);
    if (ran("f32_vaffine",
            ec::f32_vaffine(s[0], s[1], s[2], dx.p, dscale.p, dshift.p, dy.p, kRelu6, nullptr)))
      compare("f32_vaffine " + shape({s[0], s[1], s[2]}), dy.get(), want, 1e-6);
  }
  const size_t sm[][3] = {{1, 1, 1}, {2, 1000, 1}, {3, 5, 7}, {1, 33, 64}};
  for (const auto& s : sm) {
    const size_t total = s[0] * s[1] * s[2];
    const auto x = randn(total, -10.0f, 10.0f);
    std::vector<float> want(total);
    f32_softmax__scalar(s[0], s[1], s[2], x.data(), want.data());
    Dev<float> dx(x), dy(total);
    if (ran("f32_softmax", ec::f32_softmax(s[0], s[1], s[2], dx.p, dy.p, nullptr)))
      compare("f32_softmax " + shape({s[0], s[1], s[2]}), dy.get(), want, 1e-5);
  }
}

// ---- u8-quant -----------------------------------------------------------------------------------

void test_quant() {
  const size_t shapes[][3] = {{1, 1, 100}, {2, 3, 50}, {1, 12, 784}};
  for (const auto& s : shapes) {
    const size_t outer = s[0], channels = s[1], inner = s[2], total = outer * channels * inner;
    auto x = randn(total, -3.0f, 3.0f);
    std::vector<float> scale = randn(channels, 0.01f, 0.05f);
    std::vector<int32_t> zp(channels);
    for (size_t c = 0; c < channels; ++c) zp[c] = int32_t(c * 37 % 256);
    // Exact halves (round half to even), values past both ends of the range, and a NaN.
    for (size_t i = 0; i < total; i += 7)
      x[i] = (float(int(i % 41) - 20) + 0.5f) * scale[(i / inner) % channels];
    x[0] = 1e9f;
    x[total - 1] = -1e9f;
    x[total / 2] = NAN;
    std::vector<uint8_t> want(total);
    f32_quantize_u8__scalar(outer, channels, inner, x.data(), scale.data(), zp.data(), want.data());
    Dev<float> dx(x), dscale(scale);
    Dev<int32_t> dzp(zp);
    Dev<uint8_t> dq(total);
    const std::string name = shape({outer, channels, inner});
    if (ran("f32_quantize_u8",
            ec::f32_quantize_u8(outer, channels, inner, dx.p, dscale.p, dzp.p, dq.p, nullptr))) {
      ++g_cases;
      if (dq.get() != want) fail("f32_quantize_u8 " + name + ": codes differ");
    }
    std::vector<float> back(total);
    u8_dequantize_f32__scalar(outer, channels, inner, want.data(), scale.data(), zp.data(),
                              back.data());
    Dev<uint8_t> dwant(want);
    Dev<float> dback(total);
    if (ran("u8_dequantize_f32", ec::u8_dequantize_f32(outer, channels, inner, dwant.p, dscale.p,
                                                       dzp.p, dback.p, nullptr)))
      compare("u8_dequantize_f32 " + name, dback.get(), back, 0.0);
  }
}

}  // namespace

int main() {
  const int devices = ec::device_count();
  if (devices == 0) {
    std::printf("no CUDA device: skipped\n");
    return 0;
  }
  int major = 0, minor = 0;
  ec::device_capability(0, &major, &minor);
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  std::printf("device 0: %s (sm_%d%d)\n", prop.name, major, minor);
  test_gemm();
  test_conv();
  test_dwconv();
  test_spmm();
  test_cb_gemm();
  test_cb_conv();
  test_pool();
  test_elementwise();
  test_quant();
  // The split-K path must have been taken (its plan depends on the multiprocessor count).
  if (g_split_cases == 0) fail("no case ran split over K");
  std::printf("split over K: %d of those cases\n", g_split_cases);
  std::printf("cuda kernels checked against scalar: %d cases, %d failures\n", g_cases, g_failures);
  return g_failures == 0 ? 0 : 1;
}
