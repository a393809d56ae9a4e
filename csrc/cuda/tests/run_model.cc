// edgefit_cuda_run: runs an artifact through CudaRuntime (on a GPU, or on the CPU simulation of
// CUDA) for the tests: inputs from .npy files in graph-input order, outputs to OUT_DIR/<i>.npy.
// With --profile N it then runs the graph N more times and prints each node's mean device time
// and the median time of a whole run (inputs in, outputs back).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "cuda/cuda_executor.h"
#include "runner/npy.h"

int main(int argc, char** argv) {
  long profile = 0;
  if (argc >= 3 && std::string(argv[1]) == "--profile") {
    char* end = nullptr;
    profile = std::strtol(argv[2], &end, 10);
    if (*end != '\0' || profile < 1 || profile > 1000000) {
      std::fprintf(stderr, "--profile takes a run count from 1 to 1000000, not '%s'\n", argv[2]);
      return 2;
    }
    argv += 2;
    argc -= 2;
  }
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s [--profile N] MODEL.efm OUT_DIR [INPUT.npy ...]\n", argv[0]);
    return 2;
  }
  try {
    edgefit::CudaRuntime rt(argv[1]);
    if (size_t(argc - 3) != rt.inputs().size()) {
      std::fprintf(stderr, "the model has %zu inputs, got %d files\n", rt.inputs().size(),
                   argc - 3);
      return 2;
    }
    std::vector<edgefit::NpyArray> ins;
    std::vector<const void*> in_ptrs;
    for (int i = 3; i < argc; ++i) {
      ins.push_back(edgefit::read_npy(argv[i]));
      const auto& spec = rt.inputs()[size_t(i - 3)];
      if (ins.back().shape != spec.shape || ins.back().data.size() != spec.bytes()) {
        std::fprintf(stderr, "%s does not match input '%s'\n", argv[i], spec.name.c_str());
        return 2;
      }
    }
    for (const auto& a : ins) in_ptrs.push_back(a.data.data());
    std::vector<edgefit::NpyArray> outs;
    std::vector<void*> out_ptrs;
    for (const auto& s : rt.outputs())
      outs.push_back({s.dtype == edgefit::DType::kF32 ? "<f4" : "|u1", s.shape,
                      std::vector<uint8_t>(s.bytes())});
    for (auto& a : outs) out_ptrs.push_back(a.data.data());
    rt.run(in_ptrs, out_ptrs);
    for (size_t i = 0; i < outs.size(); ++i)
      edgefit::write_npy(std::string(argv[2]) + "/" + std::to_string(i) + ".npy", outs[i]);
    std::vector<double> ms(rt.nodes().size(), 0.0);
    if (profile > 0) ms = rt.profile(in_ptrs, int(profile));
    for (size_t i = 0; i < rt.nodes().size(); ++i) {
      const auto& n = rt.nodes()[i];
      if (profile > 0)
        std::printf("%-40s %-16s %-50s %8.1f us\n", n.name.c_str(), n.op.c_str(), n.kernel.c_str(),
                    ms[i] * 1e3);
      else
        std::printf("%s %s %s\n", n.name.c_str(), n.op.c_str(), n.kernel.c_str());
    }
    if (profile > 0) {
      double sum = 0.0;
      for (double t : ms) sum += t;
      std::vector<double> runs;
      for (long r = 0; r < profile; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        rt.run(in_ptrs, out_ptrs);
        runs.push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count());
      }
      std::nth_element(runs.begin(), runs.begin() + runs.size() / 2, runs.end());
      std::printf("sum of node means %.3f ms; whole run median %.3f ms over %ld runs\n", sum,
                  runs[runs.size() / 2], profile);
    }
    std::printf("device bytes %zu\n", rt.device_bytes());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
