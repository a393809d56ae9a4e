// How much a cache line costs to write, depending on which cores touched it last: core A writes a
// buffer, the steps listed run on A or B, and the last step is timed (median of 300 rounds).
// Written for the 2-thread schedule of the native runtime: a tensor one thread wrote and the
// other read (a layer split by channels feeding one split by pixels) is later rewritten by its
// first writer when the arena reuses the bytes. Results on this machine: csrc/README.md.
//
//   g++ -O2 -march=native -std=c++17 -pthread tools/coherence_probe.cc -o /tmp/coherence_probe
//   /tmp/coherence_probe [KiB]   (default 150: half a 14x14 x 384 activation)
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

enum class Op { kRead, kWrite };
using Step = std::pair<int, Op>;  // (core 0 = A or 1 = B, what it does to the whole buffer)

constexpr int kRounds = 300;

void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

double now_us() {
  return std::chrono::duration<double, std::micro>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Writes fill every byte (memset: full-line vector stores); reads load one word per 64-byte line
// into 4 independent sums, so that the loops run at cache speed and the coherence traffic shows.
struct Buffer {
  std::vector<uint32_t> data;
  volatile uint32_t sink = 0;  // keeps the reads

  void apply(Op op, int round) {
    if (op == Op::kWrite) {
      std::memset(data.data(), round & 0xFF, data.size() * sizeof(uint32_t));
    } else {
      uint32_t s[4] = {};
      for (size_t i = 0; i + 64 <= data.size(); i += 64)
        for (size_t j = 0; j < 4; ++j) s[j] += data[i + 16 * j];
      sink = sink + s[0] + s[1] + s[2] + s[3];
    }
  }
};

// Runs `steps` kRounds times on two pinned threads, in order; returns the median time of the last.
double run(Buffer& buf, const std::vector<Step>& steps) {
  std::atomic<size_t> next{0};
  std::vector<double> times;
  const size_t n = steps.size();
  auto body = [&](int core) {
    pin(core);
    for (int r = 0; r < kRounds; ++r)
      for (size_t k = 0; k < n; ++k) {
        if (steps[k].first != core) continue;
        const size_t id = size_t(r) * n + k;
        while (next.load(std::memory_order_acquire) != id) {
        }
        const double t0 = now_us();
        buf.apply(steps[k].second, r);
        if (k == n - 1) times.push_back(now_us() - t0);
        next.store(id + 1, std::memory_order_release);
      }
  };
  std::thread b(body, 1);
  body(0);
  b.join();
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const size_t kib = argc > 1 ? size_t(std::atoi(argv[1])) : 150;
  if (kib == 0 || std::thread::hardware_concurrency() < 2) {
    std::fprintf(stderr, "usage: coherence_probe [KiB > 0]; needs 2 CPUs\n");
    return 2;
  }
  Buffer buf;
  buf.data.assign(kib * 1024 / sizeof(uint32_t), 0);
  const Op R = Op::kRead, W = Op::kWrite;
  const std::vector<std::pair<std::string, std::vector<Step>>> cases = {
      {"A writes, A rewrites", {{0, W}, {0, W}}},
      {"A writes, B writes (line moves)", {{0, W}, {1, W}}},
      {"A writes, B reads", {{0, W}, {1, R}}},
      {"A writes, B reads, B writes", {{0, W}, {1, R}, {1, W}}},
      {"A writes, B reads, A rewrites", {{0, W}, {1, R}, {0, W}}},
      {"A writes, B reads, A reads, B writes", {{0, W}, {1, R}, {0, R}, {1, W}}},
  };
  std::printf("%zu KiB, median of %d rounds, the last step timed:\n", kib, kRounds);
  for (const auto& [name, steps] : cases)
    std::printf("  %-40s %8.2f us\n", name.c_str(), run(buf, steps));
  return 0;
}
