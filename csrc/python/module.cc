// pybind11 shell over the edgefit core runtime.
#include <pybind11/pybind11.h>

PYBIND11_MODULE(_native, m) {
  m.doc() = "edgefit native runtime";
  m.attr("format_version") = pybind11::make_tuple(1, 0);
}
