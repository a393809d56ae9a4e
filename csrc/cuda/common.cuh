// Device-side helpers shared by the CUDA kernel files (internal: not part of cuda_kernels.h).
// Written as C++14 so the same sources build with JetPack 4's CUDA 10.2 on a Jetson Nano.
// With EDGEFIT_CUDA_SIM the same sources compile as plain C++ against a CPU emulation of the CUDA
// execution model (cuda/sim/cuda_sim.h), which runs them where there is no GPU.
#pragma once

#if defined(EDGEFIT_CUDA_SIM)
#include "cuda/sim/cuda_sim.h"
// kernel<<<grid, block, smem, stream>>>(args) and dynamic shared memory, spelled as macros so the
// simulation can launch the same source.
#define EDGEFIT_LAUNCH(grid, block, smem, stream, ...) \
  ::edgefit_sim::launch(grid, block, smem, __VA_ARGS__)
#define EDGEFIT_DYNAMIC_SHARED(type, name) type* name = ::edgefit_sim::dynamic_shared<type>()
#else
#include <cuda_runtime.h>
#define EDGEFIT_LAUNCH(grid, block, smem, stream, ...) __VA_ARGS__<<<grid, block, smem, stream>>>
#define EDGEFIT_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

#include "cuda/cuda_kernels.h"

namespace edgefit {
namespace cuda {
namespace detail {

__device__ __forceinline__ float clampf(float v, f32_minmax mm) {
  return v < mm.min ? mm.min : (v > mm.max ? mm.max : v);
}

inline unsigned blocks_for(size_t work, unsigned threads) {
  // Grid-stride kernels cover any size; cap the grid so huge tensors do not overflow it.
  const size_t b = (work + threads - 1) / threads;
  return unsigned(b < 65535 * 8 ? (b == 0 ? 1 : b) : 65535 * 8);
}

inline unsigned ceil_div_u(size_t a, size_t b) { return unsigned((a + b - 1) / b); }

// Result of a launch: errors of the launch configuration surface here, execution errors at the
// next synchronising call.
inline int launched() { return int(cudaGetLastError()); }

constexpr size_t kMaxGridY = 65535;

// Multiprocessors of the current device (queried once per process; 1 if the query fails): the
// split-K planner sizes grids by it.
int multiprocessor_count();

}  // namespace detail
}  // namespace cuda
}  // namespace edgefit
