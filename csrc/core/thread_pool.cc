// ThreadPool: workers spin briefly on the job state (a graph's nodes follow each other within
// microseconds, and a futex wake-up costs more than a small node), then sleep on a condition
// variable so an idle session costs no CPU. The caller drains tasks too and never waits for a
// worker that has not started: on an oversubscribed machine a descheduled worker would
// otherwise stall every node by a scheduler tick.
#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace edgefit {

namespace {

constexpr int kSpins = 4000;
constexpr uint64_t kCount = 0xFFFF;
constexpr uint64_t kClosed = uint64_t(1) << 16;
constexpr int kGenShift = 17;

inline void relax() {
#if defined(__x86_64__)
  _mm_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

}  // namespace

ThreadPool::ThreadPool(size_t threads) : cursors_(new Cursor[std::max<size_t>(threads, 1)]) {
  for (size_t i = 1; i < threads; ++i) workers_.emplace_back([this, i] { work(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::drain(size_t self) {
  const size_t n = threads();
  for (size_t k = 0; k < n; ++k) {
    const size_t t = (self + k) % n, end = (t + 1) * n_ / n;
    for (;;) {
      const size_t i = cursors_[t].next.fetch_add(1, std::memory_order_relaxed);
      if (i >= end) break;
      (*fn_)(i);
    }
  }
}

void ThreadPool::work(size_t self) {
  uint64_t seen = 0;
  for (;;) {
    int spins = 0;
    for (;;) {
      if (stop_.load(std::memory_order_acquire)) return;
      uint64_t st = state_.load(std::memory_order_acquire);
      if ((st >> kGenShift) != seen) {
        if (st & kClosed) {
          seen = st >> kGenShift;  // finished without us: nothing to do
          continue;
        }
        if (state_.compare_exchange_weak(st, st + 1, std::memory_order_acq_rel)) {
          seen = st >> kGenShift;
          break;
        }
        continue;
      }
      if (++spins < kSpins) {
        relax();
        continue;
      }
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return stop_.load() || (state_.load() >> kGenShift) != seen; });
    }
    drain(self);
    const uint64_t before = state_.fetch_sub(1, std::memory_order_acq_rel);
    if ((before & kCount) == 1 && (before & kClosed)) {
      std::lock_guard<std::mutex> lock(mu_);
      done_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(size_t n, const std::function<void(size_t)>& fn) {
  if (n == 0) return;
  if (workers_.empty() || n == 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  fn_ = &fn;
  n_ = n;
  for (size_t t = 0; t < threads(); ++t)
    cursors_[t].next.store(t * n / threads(), std::memory_order_relaxed);
  const uint64_t gen = (state_.load(std::memory_order_relaxed) >> kGenShift) + 1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    state_.store(gen << kGenShift, std::memory_order_release);
  }
  wake_.notify_all();
  drain(0);
  // Close the job: workers that have not joined yet (descheduled on a busy machine) skip it,
  // so the caller only waits for those still running a task.
  const uint64_t st = state_.fetch_or(kClosed, std::memory_order_acq_rel);
  if (st & kCount) {
    // Timed only when a worker is still inside the job: a job its workers have left pays no clock
    // reads.
    const auto t0 = std::chrono::steady_clock::now();
    for (int spins = 0; (state_.load(std::memory_order_acquire) & kCount) != 0 && spins < kSpins;
         ++spins)
      relax();
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [&] { return (state_.load() & kCount) == 0; });
    waited_ns_ +=
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
            .count();
  }
  fn_ = nullptr;
}

}  // namespace edgefit
