// pybind11 shell over the edgefit core runtime: Session (CPU, or CUDA in builds with
// EDGEFIT_CUDA=ON), the kernel registry and CPU features. No logic lives here beyond converting
// numpy arrays and releasing the GIL during a run.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string>

#include "core/cpuinfo.h"
#include "core/dispatch.h"
#include "core/executor.h"
#include "core/loader.h"
#if defined(EDGEFIT_HAVE_CUDA)
#include "cuda/cuda_executor.h"
#endif

#if defined(EDGEFIT_HAVE_CUDA)
#define EDGEFIT_CUDA_BUILT 1
#else
#define EDGEFIT_CUDA_BUILT 0
#endif

namespace py = pybind11;
using namespace edgefit;

namespace {

py::dict spec_dict(const TensorSpec& s) {
  py::dict d;
  d["name"] = s.name;
  d["shape"] = py::tuple(py::cast(s.shape));
  d["dtype"] = dtype_name(s.dtype) == std::string("f32") ? "float32" : "uint8";
  return d;
}

class Session {
 public:
  Session(const std::string& path, int threads, const std::optional<std::string>& isa,
          const std::string& device)
      : path_(path) {
    if (threads < 1) throw py::value_error("threads must be >= 1");
    if (device == "cpu") {
      rt_ = std::make_unique<Runtime>(path, size_t(threads), isa.value_or(""));
    } else if (device == "cuda") {
#if defined(EDGEFIT_HAVE_CUDA)
      if (isa.has_value()) throw py::value_error("isa applies to device='cpu' only");
      cuda_ = std::make_unique<CudaRuntime>(path);
      cuda_inputs_ = cuda_->inputs();
      cuda_outputs_ = cuda_->outputs();
#else
      throw py::value_error(
          "this build of edgefit has no CUDA support: rebuild with "
          "CMAKE_ARGS=-DEDGEFIT_CUDA=ON (needs nvcc; on a Jetson, JetPack's CUDA)");
#endif
    } else {
      throw py::value_error("device must be 'cpu' or 'cuda', not '" + device + "'");
    }
  }

  // Feeds checked and held, outputs allocated: what one run reads and writes. A BoundRun keeps
  // one and runs it again and again (bind()), so a loop over camera frames or a latency
  // measurement pays none of this per call.
  struct Io {
    std::vector<py::array> keep, outs;
    std::vector<const void*> in_ptrs;
    std::vector<void*> out_ptrs;
  };

  Io bind_io(const py::dict& feeds) const {
    const auto& ins = in_specs();
    Io io;
    for (const auto& key : feeds) {
      const std::string k = py::str(key.first);
      bool known = false;
      for (const auto& s : ins) known = known || s.name == k;
      if (!known) throw py::value_error(path_ + ": the model has no input named '" + k + "'");
    }
    for (const auto& s : ins) {
      if (!feeds.contains(s.name))
        throw py::value_error(path_ + ": missing input '" + s.name + "'");
      py::object obj = feeds[py::str(s.name)];
      py::array arr;
      // C-contiguous arrays of the right dtype are used in place (zero copy).
      if (s.dtype == DType::kF32)
        arr = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(obj);
      else
        arr = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>::ensure(obj);
      if (!arr) throw py::value_error("input '" + s.name + "' is not convertible to an array");
      std::vector<int64_t> shape(arr.shape(), arr.shape() + arr.ndim());
      if (shape != s.shape) {
        std::string want, got;
        for (auto d : s.shape) want += std::to_string(d) + ",";
        for (auto d : shape) got += std::to_string(d) + ",";
        throw py::value_error("input '" + s.name + "' has shape (" + got +
                              ") but the model expects (" + want + ")");
      }
      io.in_ptrs.push_back(arr.data());
      io.keep.push_back(arr);
    }
    for (const auto& s : out_specs()) {
      py::array a = s.dtype == DType::kF32 ? py::array(py::array_t<float>(s.shape))
                                           : py::array(py::array_t<uint8_t>(s.shape));
      io.out_ptrs.push_back(a.mutable_data());
      io.outs.push_back(a);
    }
    return io;
  }

  void execute(const Io& io) {
    py::gil_scoped_release release;
#if defined(EDGEFIT_HAVE_CUDA)
    if (cuda_) {
      cuda_->run(io.in_ptrs, io.out_ptrs);
      return;
    }
#endif
    rt_->run(io.in_ptrs, io.out_ptrs);
  }

  py::dict outputs_of(const Io& io) const {
    py::dict result;
    for (size_t i = 0; i < io.outs.size(); ++i) result[py::str(out_specs()[i].name)] = io.outs[i];
    return result;
  }

  py::dict run(const py::dict& feeds) {
    const Io io = bind_io(feeds);
    execute(io);
    return outputs_of(io);
  }

  py::list inputs() const {
    py::list l;
    for (const auto& s : in_specs()) l.append(spec_dict(s));
    return l;
  }
  py::list outputs() const {
    py::list l;
    for (const auto& s : out_specs()) l.append(spec_dict(s));
    return l;
  }
  py::list nodes() const {
    py::list l;
    for (const auto& n : node_stats()) {
      py::dict d;
      d["name"] = n.name;
      d["op"] = n.op;
      d["kernel"] = n.kernel;
      l.append(d);
    }
    return l;
  }
  py::list profile() const {
    py::list l;
    for (const auto& n : node_stats()) {
      py::dict d;
      d["name"] = n.name;
      d["op"] = n.op;
      d["kernel"] = n.kernel;
      d["us"] = n.last_us;
      d["wait_us"] = n.last_wait_us;
      l.append(d);
    }
    return l;
  }
  std::string kernel_of(const std::string& node) const {
    for (const auto& n : node_stats())
      if (n.name == node) return n.kernel;
    throw py::key_error("no node named '" + node + "'");
  }
  // CUDA sessions: device memory (weights + activations), one host thread, isa "cuda".
  size_t peak_bytes() const { return rt_ ? rt_->peak_bytes() : cuda_bytes(); }
  size_t threads() const { return rt_ ? rt_->threads() : 1; }
  std::string isa() const { return rt_ ? rt_->isa() : "cuda"; }
  std::map<std::string, std::string> meta() const { return rt_ ? rt_->meta() : cuda_meta(); }

 private:
  const std::vector<TensorSpec>& in_specs() const { return rt_ ? rt_->inputs() : cuda_inputs_; }
  const std::vector<TensorSpec>& out_specs() const { return rt_ ? rt_->outputs() : cuda_outputs_; }
  std::vector<NodeStats> node_stats() const {
    if (rt_) return rt_->nodes();
    std::vector<NodeStats> out;
#if defined(EDGEFIT_HAVE_CUDA)
    for (const auto& n : cuda_->nodes()) out.push_back({n.name, n.op, n.kernel, 0.0});
#endif
    return out;
  }
#if defined(EDGEFIT_HAVE_CUDA)
  size_t cuda_bytes() const { return cuda_->device_bytes(); }
  std::map<std::string, std::string> cuda_meta() const { return cuda_->meta(); }
  std::unique_ptr<CudaRuntime> cuda_;
#else
  size_t cuda_bytes() const { return 0; }
  std::map<std::string, std::string> cuda_meta() const { return {}; }
#endif

  std::string path_;
  std::unique_ptr<Runtime> rt_;                         // device "cpu"
  std::vector<TensorSpec> cuda_inputs_, cuda_outputs_;  // device "cuda"
};

// Session.bind(feeds): the session (kept alive by pybind11) and one Io; calling it runs the graph
// on the input arrays' current contents into the same output arrays.
class BoundRun {
 public:
  BoundRun(Session& session, Session::Io io) : session_(session), io_(std::move(io)) {}
  void operator()() { session_.execute(io_); }
  py::dict outputs() const { return session_.outputs_of(io_); }

 private:
  Session& session_;
  Session::Io io_;
};

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "edgefit native runtime (C++ core: loader, planner, kernels, executor)";
  m.attr("format_version") = py::make_tuple(1, 1);
  py::register_exception<LoadError>(m, "LoadError", PyExc_ValueError);
#if defined(EDGEFIT_HAVE_CUDA)
  py::register_exception<CudaError>(m, "CudaError", PyExc_RuntimeError);
#endif
  m.attr("cuda") = bool(EDGEFIT_CUDA_BUILT);  // this build has device="cuda" sessions

  py::class_<BoundRun>(m, "BoundRun")
      .def("__call__", &BoundRun::operator())
      .def_property_readonly("outputs", &BoundRun::outputs);

  py::class_<Session>(m, "Session")
      .def(py::init<const std::string&, int, const std::optional<std::string>&,
                    const std::string&>(),
           py::arg("path"), py::arg("threads") = 1, py::arg("isa") = py::none(),
           py::arg("device") = "cpu")
      .def("run", &Session::run, py::arg("feeds"))
      .def(
          "bind", [](Session& s, const py::dict& feeds) { return BoundRun(s, s.bind_io(feeds)); },
          py::arg("feeds"), py::keep_alive<0, 1>())
      .def_property_readonly("inputs", &Session::inputs)
      .def_property_readonly("outputs", &Session::outputs)
      .def_property_readonly("nodes", &Session::nodes)
      .def("profile", &Session::profile)
      .def("kernel_of", &Session::kernel_of, py::arg("node"))
      .def_property_readonly("peak_bytes", &Session::peak_bytes)
      .def_property_readonly("threads", &Session::threads)
      .def_property_readonly("isa", &Session::isa)
      .def_property_readonly("meta", &Session::meta);

  m.def("kernels", [] {
    py::list l;
    for (const auto& k : kernel_registry(CpuInfo::host())) {
      py::dict d;
      d["name"] = k.name;
      d["family"] = k.family;
      d["isa"] = k.isa;
      d["available"] = k.available;
      l.append(d);
    }
    return l;
  });
  m.def("cpu", [] {
    const CpuInfo& c = CpuInfo::host();
    py::dict d;
    d["avx2"] = c.avx2;
    d["avx512f"] = c.avx512f;
    d["neon"] = c.neon;
    d["best"] = isa_name(c.best());
    d["preferred"] = isa_name(c.preferred());
    return d;
  });
  m.def(
      "check_artifact",
      [](py::bytes raw, bool run) {
        const std::string s = raw;
        Runtime rt(
            load_model_bytes(reinterpret_cast<const uint8_t*>(s.data()), s.size(), "artifact"), 1,
            "");
        if (!run) return;
        // Run once on zero inputs: a file the loader accepts must also execute safely.
        py::gil_scoped_release release;
        rt.run_on_zeros();
      },
      py::arg("raw"), py::arg("run") = false,
      "Load and prepare artifact bytes with the C++ runtime (raises LoadError); optionally run "
      "it once on zero inputs.");
}
