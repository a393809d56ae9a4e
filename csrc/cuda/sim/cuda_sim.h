// CPU emulation of the part of the CUDA execution model edgefit's kernels use, so their indexing,
// bounds and synchronisation logic runs (and is compared with the scalar references, under ASan)
// on machines without a GPU. Not a performance tool and not a CUDA replacement.
//
// Model: blocks run one after another; the threads of a block are fibers (ucontext) on one OS
// thread, switched only at __syncthreads and warp shuffles, so __shared__ can be a function-local
// static. A barrier that not every live thread of the block (or warp) reaches is reported as a
// deadlock and aborts. Tensor-core WMMA fragments are emulated per thread (each lane holds the
// whole 16x16 tile); f16 is the compiler's _Float16 (round to nearest even, as __float2half_rn).
#pragma once

#include <ucontext.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <type_traits>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define __CUDA_ARCH__ 870

using std::isnan;
using std::max;
using std::min;

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace edgefit_sim {

enum class State { kReady, kAtBlockBarrier, kAtWarpBarrier, kDone };

struct Fiber {
  ucontext_t ctx;
  State state = State::kReady;
  uint3 tid{0, 0, 0};
};

struct Block {
  dim3 grid, block;
  uint3 bid{0, 0, 0};
  std::vector<Fiber> fibers;
  std::vector<std::unique_ptr<char[]>> stacks;
  std::vector<uint32_t> slots;     // warp shuffle exchange, one word per thread
  std::vector<unsigned char> dyn;  // dynamic shared memory
  std::function<void()> body;
  ucontext_t main;
  size_t cur = 0;
};

inline Block& blk() {
  static Block b;
  return b;
}
inline int& last_error() {
  static int e = 0;
  return e;
}

constexpr size_t kStack = 256 * 1024;

inline size_t linear_tid() {
  const Block& b = blk();
  const uint3& t = b.fibers[b.cur].tid;
  return (size_t(t.z) * b.block.y + t.y) * b.block.x + t.x;
}

inline void wait(State s) {
  Block& b = blk();
  Fiber& f = b.fibers[b.cur];
  f.state = s;
  swapcontext(&f.ctx, &b.main);
}

inline void fiber_entry() {
  Block& b = blk();
  b.body();
  b.fibers[b.cur].state = State::kDone;  // uc_link returns to the scheduler
}

inline void run_block() {
  Block& b = blk();
  const size_t n = size_t(b.block.x) * b.block.y * b.block.z;
  b.fibers.assign(n, Fiber{});
  while (b.stacks.size() < n) b.stacks.emplace_back(new char[kStack]);
  b.slots.assign(n, 0);
  for (size_t i = 0; i < n; ++i) {
    Fiber& f = b.fibers[i];
    f.tid = {unsigned(i % b.block.x), unsigned(i / b.block.x % b.block.y),
             unsigned(i / (size_t(b.block.x) * b.block.y))};
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = b.stacks[i].get();
    f.ctx.uc_stack.ss_size = kStack;
    f.ctx.uc_link = &b.main;
    makecontext(&f.ctx, fiber_entry, 0);
  }
  for (;;) {
    for (size_t i = 0; i < n; ++i)
      if (b.fibers[i].state == State::kReady) {
        b.cur = i;
        swapcontext(&b.main, &b.fibers[i].ctx);
      }
    bool live = false, released = false;
    for (size_t w = 0; w < n; w += 32) {
      bool any = false, all = true;
      for (size_t i = w; i < std::min(n, w + 32); ++i) {
        if (b.fibers[i].state == State::kDone) continue;
        any = true;
        all = all && b.fibers[i].state == State::kAtWarpBarrier;
      }
      live = live || any;
      if (any && all) {
        for (size_t i = w; i < std::min(n, w + 32); ++i)
          if (b.fibers[i].state != State::kDone) b.fibers[i].state = State::kReady;
        released = true;
      }
    }
    if (!live) return;
    if (released) continue;
    bool all = true;
    for (const Fiber& f : b.fibers)
      all = all && (f.state == State::kDone || f.state == State::kAtBlockBarrier);
    if (!all) {
      std::fprintf(stderr,
                   "cuda_sim: deadlock in block (%u,%u,%u): threads wait at different "
                   "barriers (divergent __syncthreads or shuffle)\n",
                   b.bid.x, b.bid.y, b.bid.z);
      std::abort();
    }
    for (Fiber& f : b.fibers)
      if (f.state != State::kDone) f.state = State::kReady;
  }
}

template <typename Kernel>
struct Launch {
  dim3 grid, block;
  size_t smem;
  Kernel* kernel;
  template <typename... Args>
  void operator()(Args... args) const {
    const size_t threads = size_t(block.x) * block.y * block.z;
    if (threads == 0 || threads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 ||
        grid.z == 0 || grid.y > 65535 || grid.z > 65535 || smem > 48 * 1024) {
      last_error() = 9;  // cudaErrorInvalidConfiguration
      return;
    }
    Block& b = blk();
    b.grid = grid;
    b.block = block;
    b.dyn.assign(smem + 16, 0);
    b.body = [k = kernel, args...] { k(args...); };
    for (unsigned z = 0; z < grid.z; ++z)
      for (unsigned y = 0; y < grid.y; ++y)
        for (unsigned x = 0; x < grid.x; ++x) {
          b.bid = {x, y, z};
          run_block();
        }
  }
};

template <typename Kernel>
Launch<Kernel> launch(dim3 grid, dim3 block, size_t smem, Kernel* kernel) {
  return Launch<Kernel>{grid, block, smem, kernel};
}

template <typename T>
T* dynamic_shared() {
  return reinterpret_cast<T*>(blk().dyn.data());
}

template <typename T>
T shuffle(T v, unsigned src_lane) {
  static_assert(sizeof(T) == 4, "32-bit shuffles only");
  Block& b = blk();
  const size_t me = linear_tid(), warp0 = me / 32 * 32;
  std::memcpy(&b.slots[me], &v, 4);
  wait(State::kAtWarpBarrier);
  T r = v;
  if (src_lane < 32 && warp0 + src_lane < b.fibers.size())
    std::memcpy(&r, &b.slots[warp0 + src_lane], 4);
  wait(State::kAtWarpBarrier);  // nobody overwrites a slot before every lane has read
  return r;
}

}  // namespace edgefit_sim

#define threadIdx (::edgefit_sim::blk().fibers[::edgefit_sim::blk().cur].tid)
#define blockIdx (::edgefit_sim::blk().bid)
#define blockDim (::edgefit_sim::blk().block)
#define gridDim (::edgefit_sim::blk().grid)

inline void __syncthreads() { ::edgefit_sim::wait(::edgefit_sim::State::kAtBlockBarrier); }
template <typename T>
T __shfl_down_sync(unsigned, T v, int delta) {
  return ::edgefit_sim::shuffle(v, unsigned(::edgefit_sim::linear_tid() % 32 + unsigned(delta)));
}
template <typename T>
T __shfl_xor_sync(unsigned, T v, int mask) {
  return ::edgefit_sim::shuffle(v, unsigned((::edgefit_sim::linear_tid() % 32) ^ unsigned(mask)));
}
template <typename T>
T __ldg(const T* p) {
  return *p;
}

// ---- f16 and WMMA ------------------------------------------------------------------------------

using __half = _Float16;
inline __half __float2half(float f) { return __half(f); }
inline __half __float2half_rn(float f) { return __half(f); }
inline unsigned short __half_as_ushort(__half h) {
  unsigned short u;
  std::memcpy(&u, &h, 2);
  return u;
}

namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
enum layout_t { mem_row_major };
template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  // matrix_a: M x K, matrix_b: K x N, accumulator: M x N; the whole tile in every lane.
  T x[(std::is_same<Use, matrix_a>::value   ? M * K
       : std::is_same<Use, matrix_b>::value ? K * N
                                            : M * N)];
};
template <typename U, int M, int N, int K, typename T, typename L>
void fill_fragment(fragment<U, M, N, K, T, L>& f, float v) {
  for (auto& e : f.x) e = T(v);
}
template <typename U, int M, int N, int K, typename T, typename L>
void load_matrix_sync(fragment<U, M, N, K, T, L>& f, const T* p, unsigned ld) {
  const int rows = std::is_same<U, matrix_b>::value ? K : M;
  const int cols = std::is_same<U, matrix_a>::value ? K : N;
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) f.x[r * cols + c] = p[size_t(r) * ld + c];
}
template <int M, int N, int K, typename T, typename LA, typename LB>
void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, T, LA>& a,
              const fragment<matrix_b, M, N, K, T, LB>& b,
              const fragment<accumulator, M, N, K, float>& c) {
  float out[M * N];
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      float s = c.x[i * N + j];
      for (int k = 0; k < K; ++k) s += float(a.x[i * K + k]) * float(b.x[k * N + j]);
      out[i * N + j] = s;
    }
  std::memcpy(d.x, out, sizeof out);
}
template <int M, int N, int K>
void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float>& f, unsigned ld,
                       layout_t) {
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) p[size_t(i) * ld + j] = f.x[i * N + j];
}
}  // namespace wmma
}  // namespace nvcuda

// ---- runtime API: host memory stands in for device memory
// ----------------------------------------

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorNotSupported = 801,
};
enum cudaMemcpyKind {
  cudaMemcpyHostToDevice,
  cudaMemcpyDeviceToHost,
  cudaMemcpyDeviceToDevice,
};
enum cudaDeviceAttr {
  cudaDevAttrComputeCapabilityMajor,
  cudaDevAttrComputeCapabilityMinor,
  cudaDevAttrMultiProcessorCount,
};
struct CUstream_st {};
using cudaStream_t = CUstream_st*;
constexpr unsigned cudaStreamNonBlocking = 1;
struct cudaDeviceProp {
  char name[256];
};

inline cudaError_t cudaGetLastError() {
  const int e = ::edgefit_sim::last_error();
  ::edgefit_sim::last_error() = 0;
  return cudaError_t(e);
}
inline const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
    case cudaErrorNotSupported:
      return "operation not supported";
  }
  return "unknown error";
}
inline cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int) {
  // As a Jetson AGX Orin: sm_87, 16 multiprocessors.
  *v = a == cudaDevAttrComputeCapabilityMajor ? 8 : (a == cudaDevAttrMultiProcessorCount ? 16 : 7);
  return cudaSuccess;
}
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) {
  std::snprintf(p->name, sizeof p->name, "CPU simulation (cuda_sim.h)");
  return cudaSuccess;
}
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
template <typename T>
cudaError_t cudaMalloc(T** p, size_t bytes) {
  *p = static_cast<T*>(std::malloc(bytes));
  return *p != nullptr ? cudaSuccess : cudaErrorInvalidValue;
}
inline cudaError_t cudaFree(void* p) {
  std::free(p);
  return cudaSuccess;
}
inline cudaError_t cudaMallocHost(void** p, size_t bytes) { return cudaMalloc(p, bytes); }
inline cudaError_t cudaFreeHost(void* p) { return cudaFree(p); }
inline cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind) {
  if (n != 0) std::memcpy(d, s, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind k,
                                   cudaStream_t) {
  return cudaMemcpy(d, s, n, k);
}
inline cudaError_t cudaMemcpy2DAsync(void* d, size_t dp, const void* s, size_t sp, size_t w,
                                     size_t h, cudaMemcpyKind, cudaStream_t) {
  for (size_t r = 0; r < h; ++r)
    std::memcpy(static_cast<char*>(d) + r * dp, static_cast<const char*>(s) + r * sp, w);
  return cudaSuccess;
}
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  *s = new CUstream_st;
  return cudaSuccess;
}
inline cudaError_t cudaStreamDestroy(cudaStream_t s) {
  delete s;
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
// Work runs at launch, so an event is the host clock when it is recorded.
struct CUevent_st {
  double ms = 0.0;
};
using cudaEvent_t = CUevent_st*;
inline cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = new CUevent_st;
  return cudaSuccess;
}
inline cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
  e->ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch())
          .count();
  return cudaSuccess;
}
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  *ms = float(end->ms - start->ms);
  return cudaSuccess;
}
