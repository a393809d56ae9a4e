// A small fixed pool of worker threads with one operation: parallel_for over task indices.
// Tasks are dealt in contiguous shares, one per thread (the caller is thread 0, worker i is thread
// i + 1, for the pool's life): each thread first runs its own share, then takes what is left of
// the others'. Consecutive layers that split their channels or pixels the same way therefore
// find their inputs in the cache of the core that wrote them, while a late or descheduled thread
// still never holds up the rest.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
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
  // Calls fn(i) for every i in [0, n), spread over the pool (thread t's own share is
  // [t * n / threads, (t + 1) * n / threads)); returns when all are done.
  // Not reentrant: one parallel_for at a time (the executor runs one node at a time).
  void parallel_for(size_t n, const std::function<void(size_t)>& fn);
  // Nanoseconds the calling thread has spent, over the pool's life, waiting at the end of a
  // parallel_for for workers still running a task: the load imbalance a profile reports per node
  // (read it before and after). Only the calling thread touches it.
  int64_t waited_ns() const { return waited_ns_; }

 private:
  void work(size_t self);
  // Runs tasks until none are left: first thread `self`'s share, then the others'.
  void drain(size_t self);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  const std::function<void(size_t)>* fn_ = nullptr;
  size_t n_ = 0;
  // Next task of each thread's share, each on its own cache line (threads bump their own).
  struct alignas(64) Cursor {
    std::atomic<size_t> next{0};
  };
  std::unique_ptr<Cursor[]> cursors_;
  // Job state: bits 0..15 = workers inside the current job, bit 16 = closed (the caller has
  // finished draining; latecomers must not join), bits 17.. = job generation.
  std::atomic<uint64_t> state_{0};
  std::atomic<bool> stop_{false};
  int64_t waited_ns_ = 0;
};

}  // namespace edgefit
