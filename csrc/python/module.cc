// pybind11 shell over the edgefit core runtime: Session, the kernel registry and CPU features.
// No logic lives here beyond converting numpy arrays and releasing the GIL during a run.
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
  Session(const std::string& path, int threads, const std::optional<std::string>& isa)
      : path_(path) {
    if (threads < 1) throw py::value_error("threads must be >= 1");
    rt_ = std::make_unique<Runtime>(path, size_t(threads), isa.value_or(""));
  }

  py::dict run(const py::dict& feeds) {
    const auto& ins = rt_->inputs();
    std::vector<py::array> keep;
    std::vector<const void*> in_ptrs;
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
      in_ptrs.push_back(arr.data());
      keep.push_back(arr);
    }
    std::vector<py::array> outs;
    std::vector<void*> out_ptrs;
    for (const auto& s : rt_->outputs()) {
      py::array a = s.dtype == DType::kF32 ? py::array(py::array_t<float>(s.shape))
                                           : py::array(py::array_t<uint8_t>(s.shape));
      out_ptrs.push_back(a.mutable_data());
      outs.push_back(a);
    }
    {
      py::gil_scoped_release release;
      rt_->run(in_ptrs, out_ptrs);
    }
    py::dict result;
    for (size_t i = 0; i < outs.size(); ++i) result[py::str(rt_->outputs()[i].name)] = outs[i];
    return result;
  }

  py::list inputs() const {
    py::list l;
    for (const auto& s : rt_->inputs()) l.append(spec_dict(s));
    return l;
  }
  py::list outputs() const {
    py::list l;
    for (const auto& s : rt_->outputs()) l.append(spec_dict(s));
    return l;
  }
  py::list nodes() const {
    py::list l;
    for (const auto& n : rt_->nodes()) {
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
    for (const auto& n : rt_->nodes()) {
      py::dict d;
      d["name"] = n.name;
      d["op"] = n.op;
      d["kernel"] = n.kernel;
      d["us"] = n.last_us;
      l.append(d);
    }
    return l;
  }
  std::string kernel_of(const std::string& node) const {
    for (const auto& n : rt_->nodes())
      if (n.name == node) return n.kernel;
    throw py::key_error("no node named '" + node + "'");
  }
  size_t peak_bytes() const { return rt_->peak_bytes(); }
  size_t threads() const { return rt_->threads(); }
  std::string isa() const { return rt_->isa(); }
  std::map<std::string, std::string> meta() const { return rt_->meta(); }

 private:
  std::string path_;
  std::unique_ptr<Runtime> rt_;
};

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "edgefit native runtime (C++ core: loader, planner, kernels, executor)";
  m.attr("format_version") = py::make_tuple(1, 0);
  py::register_exception<LoadError>(m, "LoadError", PyExc_ValueError);

  py::class_<Session>(m, "Session")
      .def(py::init<const std::string&, int, const std::optional<std::string>&>(), py::arg("path"),
           py::arg("threads") = 1, py::arg("isa") = py::none())
      .def("run", &Session::run, py::arg("feeds"))
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
        std::vector<std::vector<uint8_t>> in, out;
        std::vector<const void*> ip;
        std::vector<void*> op;
        for (const auto& t : rt.inputs()) in.emplace_back(t.bytes(), 0);
        for (const auto& t : rt.outputs()) out.emplace_back(t.bytes());
        for (auto& b : in) ip.push_back(b.data());
        for (auto& b : out) op.push_back(b.data());
        py::gil_scoped_release release;
        rt.run(ip, op);
      },
      py::arg("raw"), py::arg("run") = false,
      "Load and prepare artifact bytes with the C++ runtime (raises LoadError); optionally run "
      "it once on zero inputs.");
}
