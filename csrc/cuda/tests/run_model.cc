// edgefit_cuda_run: runs an artifact through CudaRuntime (on a GPU, or on the CPU simulation of
// CUDA) for the tests: inputs from .npy files in graph-input order, outputs to OUT_DIR/<i>.npy.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "cuda/cuda_executor.h"
#include "runner/npy.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL.efm OUT_DIR [INPUT.npy ...]\n", argv[0]);
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
    for (const auto& n : rt.nodes())
      std::printf("%s %s %s\n", n.name.c_str(), n.op.c_str(), n.kernel.c_str());
    std::printf("device bytes %zu\n", rt.device_bytes());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
