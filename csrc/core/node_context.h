// Validation of one node's attributes and operands, shared by the CPU and CUDA executors so a
// hostile artifact is refused with the same messages whichever device prepares it.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "core/loader.h"
#include "kernels/common.h"

namespace edgefit {
namespace node_context {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr int64_t kMaxGeom = int64_t(1) << 20;  // strides, paddings, dilations, kernel sizes

inline std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

struct NodeCtx {
  const Model& m;
  const NodeDef& n;

  [[noreturn]] void fail(const std::string& msg) const {
    throw LoadError("node '" + n.name + "' (" + n.op + "): " + msg);
  }
  const ValueDef& in(size_t i) const { return m.values[n.inputs[i]]; }
  const ValueDef& out() const { return m.values[n.outputs[0]]; }
  bool has(const char* key) const { return n.attrs.count(key) != 0; }

  std::vector<int64_t> ints(const char* key, std::vector<int64_t> def) const {
    auto it = n.attrs.find(key);
    if (it == n.attrs.end()) return def;
    if (it->second.type != AttrType::kInts && it->second.type != AttrType::kInt)
      fail(std::string("attr '") + key + "' must be integers");
    return it->second.ints;
  }
  int64_t integer(const char* key, int64_t def) const {
    auto v = ints(key, {def});
    if (v.size() != 1) fail(std::string("attr '") + key + "' must be one integer");
    return v[0];
  }
  std::vector<double> floats(const char* key) const {
    auto it = n.attrs.find(key);
    if (it == n.attrs.end()) fail(std::string("missing attr '") + key + "'");
    const Attr& a = it->second;
    if (a.type == AttrType::kFloats || a.type == AttrType::kFloat) return a.floats;
    if (a.type == AttrType::kInts || a.type == AttrType::kInt)
      return std::vector<double>(a.ints.begin(), a.ints.end());
    fail(std::string("attr '") + key + "' must be numbers");
  }
  std::string str(const char* key, const std::string& def) const {
    auto it = n.attrs.find(key);
    if (it == n.attrs.end()) return def;
    if (it->second.type != AttrType::kString)
      fail(std::string("attr '") + key + "' must be a string");
    return it->second.str;
  }
  // A pair attr (stride, dilation, kernel): 1 value means both.
  std::pair<int64_t, int64_t> pair(const char* key, std::pair<int64_t, int64_t> def,
                                   int64_t lo) const {
    auto v = ints(key, {def.first, def.second});
    if (v.size() == 1) v.push_back(v[0]);
    if (v.size() != 2) fail(std::string("attr '") + key + "' must have 2 values");
    for (int64_t x : v)
      if (x < lo || x > kMaxGeom)
        fail(std::string("attr '") + key + "' value " + std::to_string(x) + " out of range");
    return {v[0], v[1]};
  }
  std::pair<size_t, size_t> size_pair(const char* key, std::pair<int64_t, int64_t> def) const {
    const auto v = pair(key, def, 1);
    return {size_t(v.first), size_t(v.second)};
  }
  // padding (t, l, b, r); 1 or 2 values are symmetric as in torch.
  std::vector<int64_t> padding() const {
    auto v = ints("padding", {0, 0, 0, 0});
    if (v.size() == 1) v = {v[0], v[0], v[0], v[0]};
    if (v.size() == 2) v = {v[0], v[1], v[0], v[1]};
    if (v.size() != 4) fail("attr 'padding' must have 4 values (top, left, bottom, right)");
    for (int64_t x : v)
      if (x < 0 || x > kMaxGeom) fail("padding " + std::to_string(x) + " out of range");
    return v;
  }
  std::vector<size_t> size_padding() const {
    const auto v = padding();
    return {size_t(v[0]), size_t(v[1]), size_t(v[2]), size_t(v[3])};
  }
  void activation_value(const ValueDef& v, DType t, const char* what) const {
    if (v.kind == ValueKind::kConstant)
      fail(std::string(what) + " '" + v.name + "' must not be a constant");
    if (v.dtype != t)
      fail(std::string(what) + " '" + v.name + "' must be " + dtype_name(t) + ", is " +
           dtype_name(v.dtype));
  }
  void expect_shape(const ValueDef& v, const std::vector<int64_t>& s) const {
    if (v.shape != s)
      fail("output '" + v.name + "' has shape " + shape_str(v.shape) + ", the op gives " +
           shape_str(s));
  }
  const float* dense_f32(const ValueDef& v, size_t numel, const char* what) const {
    if (v.kind != ValueKind::kConstant || v.encoding != Encoding::kDense || v.dtype != DType::kF32)
      fail(std::string(what) + " '" + v.name + "' must be a dense f32 constant");
    if (v.numel() != numel)
      fail(std::string(what) + " '" + v.name + "' has " + std::to_string(v.numel()) +
           " elements, expected " + std::to_string(numel));
    return reinterpret_cast<const float*>(v.blobs[0].data);
  }
  // act attr -> clamp bounds; hardswish needs a separate pass.
  f32_minmax act(bool* hswish) const {
    const std::string a = str("act", "none");
    *hswish = false;
    if (a == "none") return {-kInf, kInf};
    if (a == "relu") return {0.0f, kInf};
    if (a == "relu6") return {0.0f, 6.0f};
    if (a == "hardswish") {
      *hswish = true;
      return {-kInf, kInf};
    }
    fail("unknown activation '" + a + "'");
  }
};

}  // namespace node_context
}  // namespace edgefit
