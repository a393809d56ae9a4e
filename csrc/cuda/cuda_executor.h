// CudaRuntime: runs a loaded artifact on a CUDA device through csrc/cuda's kernels. Weights are
// uploaded once at load (sparse and codebook weights stay compressed on the device), activations
// stay on the device between layers, all work is queued on one stream, and inputs / outputs go
// through pinned host buffers. Plain C++ over cuda_kernels.h (no CUDA headers), so it builds with
// the host compiler and also runs on the CPU simulation of CUDA (csrc/cuda/sim).
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/loader.h"
#include "cuda/cuda_kernels.h"

namespace edgefit {

class CudaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct CudaNodeInfo {
  std::string name, op, kernel;
};

class CudaRuntime {
 public:
  // Throws CudaError when there is no CUDA device, LoadError for an invalid graph.
  explicit CudaRuntime(const std::string& path);
  explicit CudaRuntime(Model model);
  ~CudaRuntime();
  CudaRuntime(const CudaRuntime&) = delete;
  CudaRuntime& operator=(const CudaRuntime&) = delete;

  const std::vector<TensorSpec>& inputs() const { return inputs_; }
  const std::vector<TensorSpec>& outputs() const { return outputs_; }
  // Host pointers as Runtime::run; blocks until the outputs are on the host. Serialised.
  void run(const std::vector<const void*>& inputs, const std::vector<void*>& outputs);
  // Runs the graph `repeats` times with an event between every two steps; the mean device time
  // of each step (kernel time plus launch gaps), in milliseconds, in nodes() order.
  std::vector<double> profile(const std::vector<const void*>& inputs, int repeats);
  const std::vector<CudaNodeInfo>& nodes() const { return infos_; }
  size_t device_bytes() const { return device_bytes_; }
  const std::map<std::string, std::string>& meta() const { return model_.meta; }

 private:
  void prepare_node(const NodeDef& n);
  void stage_inputs(const std::vector<const void*>& inputs);
  void release();
  void* alloc(size_t bytes);
  const void* upload(const void* host, size_t bytes);
  // dense, int8 or codebook (decoded on the host: tiny filters only) -> dense f32 [O, K]
  const float* upload_weight_f32(const ValueDef& w);
  // Codebook weights of `rows` x `k` codes, tables and scales uploaded as they are.
  cb_weights upload_codebook(const ValueDef& w, size_t rows, size_t k);
  const float* upload_dense(uint32_t value, size_t numel, const char* what, const NodeDef& n);
  float* f32(uint32_t v) const { return static_cast<float*>(dev_[v]); }

  Model model_;
  cuda::stream_t stream_ = nullptr;
  std::vector<TensorSpec> inputs_, outputs_;
  std::vector<void*> dev_;          // device pointer of every value
  std::vector<void*> allocations_;  // device buffers to free
  std::vector<std::function<int()>> steps_;
  // Split-K scratch shared by every GEMM-style step (they run one after another on stream_).
  float* workspace_ = nullptr;
  size_t workspace_floats_ = 0;
  std::vector<CudaNodeInfo> infos_;
  void* pinned_ = nullptr;  // inputs then outputs, staged for async copies
  std::vector<size_t> in_off_, out_off_;
  size_t device_bytes_ = 0;
  std::mutex mu_;
};

}  // namespace edgefit
