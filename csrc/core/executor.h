// The runtime: loads an artifact, prepares every node once (validates shapes and attributes,
// picks its kernel from the weight encoding and shapes, packs dense weights; sparse and codebook
// weights stay compressed in the mmap'd file), plans the arena, and runs the graph.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/dispatch.h"
#include "core/loader.h"
#include "core/thread_pool.h"
#include "core/weight_store.h"

namespace edgefit {

struct BlockedConvPlan;  // executor.cc
struct SparseConvPlan;   // executor.cc
struct ChwDwPlan;        // executor.cc

struct NodeStats {
  std::string name, op, kernel;
  double last_us = 0.0;  // time of this node in the last run
  // Of last_us, the time the calling thread waited at the node's joins for workers still running
  // a task (ThreadPool::waited_ns): how unevenly the node's work fell on the threads.
  double last_wait_us = 0.0;
};

class Runtime {
 public:
  // isa: "" for the best this CPU has, or a cap ("scalar", "avx2", "avx512", "neon").
  Runtime(const std::string& path, size_t threads = 1, const std::string& isa = "");
  Runtime(Model model, size_t threads, const std::string& isa);
  ~Runtime();

  const std::vector<TensorSpec>& inputs() const { return inputs_; }
  const std::vector<TensorSpec>& outputs() const { return outputs_; }
  // Runs the graph. inputs[i]: inputs()[i].bytes() readable bytes (used in place, never
  // written); outputs[i]: outputs()[i].bytes() writable bytes. Serialised by a mutex.
  void run(const std::vector<const void*>& inputs, const std::vector<void*>& outputs);
  // Runs once on all-zero inputs into scratch outputs: what validating an untrusted artifact
  // (check_artifact, the loader fuzzer, the C++ fuzz cases) does after loading it.
  void run_on_zeros();

  std::vector<NodeStats> nodes() const;
  // Activation arena + shared scratch + per-thread scratch (im2col chunks, padded channels).
  size_t peak_bytes() const {
    return arena_bytes_ + scratch_bytes_ + thread_bytes_ * pool_->threads();
  }
  size_t threads() const { return pool_->threads(); }
  // The kernels' ISA level, "+avx512" appended where the blocked convolutions, SpMM and stride-1
  // depthwise kernels run AVX-512 above an AVX2 base (the default on CPUs whose AVX-512 GEMM tiles
  // are no faster: Runtime()).
  const char* isa() const { return isa_label_.c_str(); }
  const std::map<std::string, std::string>& meta() const { return model_.meta; }

 private:
  struct Step {
    NodeStats stats;
    std::function<void()> fn;
    // Set by a blocked convolution that may run fused with its neighbour (executor.cc).
    std::shared_ptr<const BlockedConvPlan> blocked;
    // Set by an NCHW block-sparse 1x1 convolution / depthwise layer that may run fused.
    std::shared_ptr<const SparseConvPlan> sparse;
    std::shared_ptr<const ChwDwPlan> chw_dw;
  };
  void prepare();
  void prepare_node(size_t index);
  // Runs each blocked convolution and the depthwise layer that alone reads its output row band
  // by row band as one step (executor.cc); returns the pairs' first node indices.
  std::vector<size_t> fuse_conv_depthwise();
  // Likewise each NCHW block-sparse 1x1 convolution and the depthwise layer that alone reads its
  // (large) output; returns the pairs' first node indices.
  std::vector<size_t> fuse_spmm_depthwise();
  // Step i now runs steps i and i + 1 (its kernel name tells both); step i + 1 does nothing.
  void mark_fused_pair(size_t i, const char* second_kernel);
  float* f32(uint32_t v) const { return static_cast<float*>(bufs_[v]); }
  void* buf(uint32_t v) const { return bufs_[v]; }

  Model model_;
  KernelSet kernels_;
  std::unique_ptr<ThreadPool> pool_;
  std::vector<TensorSpec> inputs_, outputs_;
  std::vector<Step> steps_;
  WeightStore owned_;            // packed / decoded weights, in huge pages
  std::vector<bool> blocked_;    // value stored NCHW16c (core/layout.h)
  std::vector<uint32_t> root_;   // storage root of every value (aliases resolved)
  std::vector<size_t> offset_;   // arena offset of every arena root
  std::vector<void*> bufs_;      // resolved pointer of every value (per run)
  std::vector<int> input_slot_;  // root -> graph input index, or -1
  size_t arena_bytes_ = 0, scratch_bytes_ = 0, thread_bytes_ = 0;
  std::string isa_label_;
  uint8_t* arena_ = nullptr;
  size_t arena_alloc_bytes_ = 0;
  float* scratch_ = nullptr;
  mutable std::mutex mu_;
};

}  // namespace edgefit
