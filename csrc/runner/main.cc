// edgefit-run: the standalone runner for boards without Python.
//   edgefit-run model.efm [--input x.npy ...] [--output y.npy ...] [--threads N] [--repeat R]
// Inputs are given in the model's input order (zeros when omitted); prints the median latency.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "core/executor.h"
#include "runner/npy.h"

using namespace edgefit;

static int usage() {
  std::fprintf(
      stderr,
      "usage: edgefit-run MODEL.efm [--input X.npy ...] [--output Y.npy ...] [--threads N] "
      "[--repeat R] [--isa scalar|avx2|avx512|neon] [--profile]\n");
  return 2;
}

int main(int argc, char** argv) {
  std::string model;
  std::vector<std::string> in_paths, out_paths;
  size_t threads = 1, repeat = 1;
  std::string isa;
  bool profile = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    try {
      if (a == "--input")
        in_paths.push_back(next());
      else if (a == "--output")
        out_paths.push_back(next());
      else if (a == "--threads")
        threads = std::stoul(next());
      else if (a == "--repeat")
        repeat = std::max<size_t>(1, std::stoul(next()));
      else if (a == "--isa")
        isa = next();
      else if (a == "--profile")
        profile = true;
      else if (a == "-h" || a == "--help")
        return usage(), 0;
      else if (!a.empty() && a[0] == '-')
        return usage();
      else if (model.empty())
        model = a;
      else
        return usage();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "edgefit-run: error: %s\n", e.what());
      return 2;
    }
  }
  if (model.empty()) return usage();
  try {
    Runtime rt(model, threads, isa);
    const auto& ins = rt.inputs();
    if (in_paths.size() > ins.size())
      throw std::runtime_error("the model has " + std::to_string(ins.size()) + " inputs");
    std::vector<NpyArray> inputs(ins.size());
    for (size_t i = 0; i < ins.size(); ++i) {
      const std::string want = ins[i].dtype == DType::kF32 ? "<f4" : "|u1";
      if (i < in_paths.size()) {
        inputs[i] = read_npy(in_paths[i]);
        if (inputs[i].descr != want || inputs[i].shape != ins[i].shape)
          throw std::runtime_error(in_paths[i] + ": dtype/shape do not match input '" +
                                   ins[i].name + "'");
      } else {
        inputs[i] = NpyArray{want, ins[i].shape, std::vector<uint8_t>(ins[i].bytes(), 0)};
      }
    }
    std::vector<NpyArray> outputs;
    for (const auto& s : rt.outputs())
      outputs.push_back(NpyArray{s.dtype == DType::kF32 ? "<f4" : "|u1", s.shape,
                                 std::vector<uint8_t>(s.bytes())});
    std::vector<const void*> ip;
    std::vector<void*> op;
    for (auto& a : inputs) ip.push_back(a.data.data());
    for (auto& a : outputs) op.push_back(a.data.data());
    std::vector<double> ms;
    for (size_t r = 0; r < repeat; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      rt.run(ip, op);
      ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    std::printf(
        "model %s: isa %s, threads %zu, peak %.2f MiB, median %.3f ms over %zu runs (min %.3f)\n",
        model.c_str(), rt.isa(), rt.threads(), double(rt.peak_bytes()) / (1 << 20),
        ms[ms.size() / 2], ms.size(), ms[0]);
    if (profile)
      for (const auto& n : rt.nodes())
        std::printf("  %-32s %-16s %-48s %9.1f us (waited %.1f)\n", n.name.c_str(), n.op.c_str(),
                    n.kernel.c_str(), n.last_us, n.last_wait_us);
    for (size_t i = 0; i < out_paths.size() && i < outputs.size(); ++i)
      write_npy(out_paths[i], outputs[i]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "edgefit-run: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
