// A small fixed pool of worker threads with one operation: parallel_for over task indices.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace edgefit {

class ThreadPool {
 public:
  // `threads` counts the calling thread: 1 means no workers, everything runs inline.
  explicit ThreadPool(size_t threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  size_t threads() const { return workers_.size() + 1; }
  // Calls fn(i) for every i in [0, n), spread over the pool; returns when all are done.
  // Not reentrant: one parallel_for at a time (the executor runs one node at a time).
  void parallel_for(size_t n, const std::function<void(size_t)>& fn);

 private:
  void work();
  void drain();

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  const std::function<void(size_t)>* fn_ = nullptr;
  size_t n_ = 0;
  std::atomic<size_t> next_{0};
  // Job state: bits 0..15 = workers inside the current job, bit 16 = closed (the caller has
  // finished draining; latecomers must not join), bits 17.. = job generation.
  std::atomic<uint64_t> state_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace edgefit
