// The NCHW16c layout plan (layout.h). Everything here only reads shapes and attributes; what the
// kernels rely on is validated afterwards by the executor, node by node, as for any model.
#include "core/layout.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <string>

#include "core/weight_store.h"
#include "kernels/f32-nchwc/f32-nchwc.h"

namespace edgefit {

namespace {

// Values joined into regions (union-find with path halving).
class Regions {
 public:
  explicit Regions(size_t n) : parent_(n) { std::iota(parent_.begin(), parent_.end(), 0u); }
  uint32_t find(uint32_t v) {
    while (parent_[v] != v) v = parent_[v] = parent_[parent_[v]];
    return v;
  }
  void join(uint32_t a, uint32_t b) { parent_[find(a)] = find(b); }

 private:
  std::vector<uint32_t> parent_;
};

bool is_activation(const ValueDef& v) {
  return v.kind != ValueKind::kConstant && v.dtype == DType::kF32;
}

// A rank-4 f32 activation whose channels fill whole blocks.
bool blockable(const ValueDef& v) {
  return is_activation(v) && v.shape.size() == 4 && v.shape[1] > 0 &&
         v.shape[1] % int64_t(kNchwcBlock) == 0;
}

bool attr_all_ones(const NodeDef& n, const std::string& key) {
  auto it = n.attrs.find(key);
  if (it == n.attrs.end()) return true;
  for (int64_t v : it->second.ints)
    if (v != 1) return false;
  return true;
}

int64_t conv_groups(const NodeDef& n) {
  auto it = n.attrs.find("groups");
  return it == n.attrs.end() || it->second.ints.empty() ? 1 : it->second.ints[0];
}

// A blocked convolution that reads its input as NCHW, without a reorder: ungrouped ones of fewer
// than 16 input channels (an image's 3: the stems). Measured: a 24-channel 1x1 read this way ran
// at 38 GFMA/s, slower than the NCHW GEMM it replaced (csrc/README.md).
bool reads_plain_input(const Model& m, const NodeDef& n) {
  const ValueDef& x = m.values[n.inputs[0]];
  return n.op == "conv2d" && conv_groups(n) == 1 && x.shape.size() == 4 && x.shape[1] > 0 &&
         x.shape[1] < int64_t(kNchwcBlock);
}

bool blocked_conv(const Model& m, const NodeDef& n) {
  if (n.op != "conv2d" || n.inputs.size() < 2 || n.outputs.size() != 1) return false;
  const ValueDef& x = m.values[n.inputs[0]];
  const ValueDef& w = m.values[n.inputs[1]];
  const ValueDef& y = m.values[n.outputs[0]];
  const bool supported_weights = w.kind == ValueKind::kConstant && w.shape.size() == 4 &&
                                 w.encoding != Encoding::kBsr;  // dense, int8 or codebook
  if (!supported_weights || !is_activation(x) || x.shape.size() != 4 || !blockable(y) ||
      !attr_all_ones(n, "dilation"))
    return false;
  const int64_t groups = conv_groups(n);
  if (groups == 1) return w.shape[1] == x.shape[1] && (blockable(x) || reads_plain_input(m, n));
  if (!blockable(x)) return false;
  // Depthwise: one filter per channel (filters of at most 64 taps, f32_nchwc_dwconv).
  return groups == x.shape[1] && w.shape[0] == x.shape[1] && y.shape[1] == x.shape[1] &&
         w.shape[1] == 1 && w.shape[2] > 0 && w.shape[3] > 0 && w.shape[2] * w.shape[3] <= 64;
}

// Ops that keep the layout of their inputs: blocked when every input is.
bool layout_preserving(const NodeDef& n) {
  return n.op == "add" || n.op == "relu" || n.op == "relu6" || n.op == "hardswish" ||
         n.op == "max_pool2d";
}

// conv (no activation) -> t, add(t, r) -> s  becomes  conv(..., r) -> s with the add's
// activation and attr "_residual": the add's pass over t and r is saved (ResNet-50: 16 adds).
// Only for blocked ungrouped convolutions whose t feeds nothing else and whose r is computed
// before the conv (the fused conv runs at the conv's place).
void fuse_residual_adds(Model& model, const std::vector<bool>& blocked) {
  const size_t nv = model.values.size();
  std::vector<int> uses(nv, 0), producer(nv, -1);
  std::vector<bool> is_output(nv, false);
  for (uint32_t o : model.outputs) is_output[o] = true;
  for (size_t i = 0; i < model.nodes.size(); ++i) {
    for (uint32_t v : model.nodes[i].inputs) ++uses[v];
    for (uint32_t o : model.nodes[i].outputs) producer[o] = int(i);
  }
  std::vector<bool> removed(model.nodes.size(), false);
  for (size_t i = 0; i < model.nodes.size(); ++i) {
    const NodeDef& add = model.nodes[i];
    if (add.op != "add" || add.inputs.size() != 2 || add.outputs.size() != 1 ||
        !blocked[add.outputs[0]] || add.inputs[0] == add.inputs[1])
      continue;
    for (size_t j = 0; j < 2; ++j) {
      const uint32_t t = add.inputs[j], r = add.inputs[1 - j];
      const int ci = producer[t];
      if (ci < 0 || removed[size_t(ci)] || uses[t] != 1 || is_output[t] || !blocked[r]) continue;
      NodeDef& conv = model.nodes[size_t(ci)];
      auto act = conv.attrs.find("act");
      const bool no_act = act == conv.attrs.end() || act->second.str == "none";
      const ValueDef& w = model.values[conv.inputs[1]];
      const ValueDef& x = model.values[conv.inputs[0]];
      if (conv.op != "conv2d" || !no_act || conv.attrs.count("_residual") || w.shape.size() != 4 ||
          x.shape.size() != 4 || w.shape[1] != x.shape[1] || producer[r] >= ci)
        continue;
      conv.inputs.push_back(r);
      conv.outputs = add.outputs;
      Attr flag;
      flag.type = AttrType::kInt;
      flag.ints = {1};
      conv.attrs["_residual"] = flag;
      auto add_act = add.attrs.find("act");
      if (add_act != add.attrs.end())
        conv.attrs["act"] = add_act->second;
      else
        conv.attrs.erase("act");
      removed[i] = true;
      break;
    }
  }
  std::vector<NodeDef> kept;
  for (size_t i = 0; i < model.nodes.size(); ++i)
    if (!removed[i]) kept.push_back(std::move(model.nodes[i]));
  model.nodes = std::move(kept);
}

bool elementwise_same_shape(const NodeDef& n) {
  return n.op == "add" || n.op == "relu" || n.op == "relu6" || n.op == "hardswish";
}

// A dense f32 constant of rank `rank` (weights [O, I, kh, kw], bias [O]).
bool dense_f32_constant(const ValueDef& v, size_t rank) {
  return v.kind == ValueKind::kConstant && v.encoding == Encoding::kDense &&
         v.dtype == DType::kF32 && v.shape.size() == rank && !v.blobs.empty() &&
         v.blobs[0].size == v.numel() * sizeof(float);
}

// Channels a tensor of c channels is padded to, or c where padding would cost too much: at most a
// third more work in the convolutions on either side (MobileNetV2's 24 -> 32).
int64_t padded_channels(int64_t c) {
  const int64_t block = int64_t(kNchwcBlock), p = (c + block - 1) / block * block;
  return c >= block && (p - c) * 3 <= c ? p : c;
}

// A copy of constant `v` of shape `shape`, its elements placed at the same indices, zeros around.
uint32_t padded_constant(Model& model, uint32_t v, const std::vector<int64_t>& shape,
                         WeightStore& store) {
  ValueDef copy = model.values[v];
  size_t numel = 1;
  for (int64_t d : shape) numel *= size_t(d);
  float* out = store.alloc(numel);
  const float* in = reinterpret_cast<const float*>(copy.blobs[0].data);
  // Rank 1 or 4 with only dims 0 and 1 growing: copy rows of the unchanged trailing dims.
  const size_t inner = copy.shape.size() == 4 ? size_t(copy.shape[2] * copy.shape[3]) : 1;
  const size_t d0 = size_t(copy.shape[0]), d1 = copy.shape.size() == 4 ? size_t(copy.shape[1]) : 1;
  const size_t p1 = shape.size() == 4 ? size_t(shape[1]) : 1;
  for (size_t i = 0; i < d0; ++i)
    for (size_t j = 0; j < d1; ++j)
      std::copy(in + (i * d1 + j) * inner, in + (i * d1 + j + 1) * inner,
                out + (i * p1 + j) * inner);
  copy.name += "/padded";
  copy.shape = shape;
  copy.blobs = {Blob{reinterpret_cast<const uint8_t*>(out), numel * sizeof(float)}};
  model.values.push_back(std::move(copy));
  return uint32_t(model.values.size() - 1);
}

}  // namespace

std::vector<bool> plan_nchwc(Model& model) {
  const size_t nv = model.values.size();
  std::vector<bool> blocked(nv, false), is_output(nv, false);
  for (uint32_t o : model.outputs) is_output[o] = true;

  // Forward: which outputs would be blocked.
  for (const NodeDef& n : model.nodes) {
    if (n.outputs.size() != 1 || is_output[n.outputs[0]]) continue;
    const uint32_t y = n.outputs[0];
    if (blocked_conv(model, n)) {
      blocked[y] = true;
    } else if (layout_preserving(n) && !n.inputs.empty() && blockable(model.values[y])) {
      bool all = true;
      for (uint32_t v : n.inputs) all = all && blocked[v];
      blocked[y] = all;
    }
  }

  // Regions: blocked values joined through the nodes that produce them from blocked inputs.
  Regions regions(nv);
  for (const NodeDef& n : model.nodes)
    if (n.outputs.size() == 1 && blocked[n.outputs[0]])
      for (uint32_t v : n.inputs)
        if (blocked[v]) regions.join(v, n.outputs[0]);

  // Which node reads which input as it is stored: a blocked node reads blocked inputs, a global
  // average pool reads either, everything else NCHW.
  auto reads_blocked = [&](const NodeDef& n) {
    return (n.outputs.size() == 1 && blocked[n.outputs[0]]) || n.op == "global_avg_pool";
  };
  std::map<uint32_t, size_t> convs, reorders;  // per region root
  std::vector<bool> to_counted(nv, false), from_counted(nv, false);
  for (const NodeDef& n : model.nodes) {
    const bool out_blocked = n.outputs.size() == 1 && blocked[n.outputs[0]];
    if (out_blocked && n.op == "conv2d") {
      const uint32_t root = regions.find(n.outputs[0]), x = n.inputs[0];
      ++convs[root];
      if (!blocked[x] && !reads_plain_input(model, n) && !to_counted[x])
        ++reorders[root], to_counted[x] = true;
    }
    if (reads_blocked(n)) continue;
    for (uint32_t v : n.inputs)
      if (blocked[v] && !from_counted[v]) ++reorders[regions.find(v)], from_counted[v] = true;
  }
  for (size_t v = 0; v < nv; ++v)
    if (blocked[v]) {
      const uint32_t root = regions.find(uint32_t(v));
      if (convs[root] < 2 * reorders[root]) blocked[v] = false;
    }
  // A region dropped above may have fed a layout-preserving node of a kept one: re-check that
  // every such blocked output still has only blocked inputs (regions are closed, so this only
  // guards the invariant the executor relies on).
  for (const NodeDef& n : model.nodes)
    if (n.outputs.size() == 1 && blocked[n.outputs[0]] && layout_preserving(n))
      for (uint32_t v : n.inputs)
        if (!blocked[v]) throw LoadError("internal: NCHWc plan mixes layouts at '" + n.name + "'");

  // Rewrite: reorders right before the first node that needs them.
  std::vector<NodeDef> nodes;
  std::map<uint32_t, uint32_t> to_blocked, to_plain;
  auto reorder = [&](uint32_t v, bool into_blocked) -> uint32_t {
    auto& cache = into_blocked ? to_blocked : to_plain;
    auto it = cache.find(v);
    if (it != cache.end()) return it->second;
    ValueDef copy = model.values[v];
    copy.name += into_blocked ? "/nchwc" : "/nchw";
    copy.kind = ValueKind::kActivation;
    copy.producer = -1;
    const uint32_t id = uint32_t(model.values.size());
    model.values.push_back(std::move(copy));
    blocked.push_back(into_blocked);
    NodeDef r;
    r.op = into_blocked ? "to_nchwc" : "from_nchwc";
    r.name = model.values[v].name + (into_blocked ? ":to_nchwc" : ":from_nchwc");
    r.inputs = {v};
    r.outputs = {id};
    nodes.push_back(std::move(r));
    cache[v] = id;
    return id;
  };
  for (NodeDef n : model.nodes) {
    const bool out_blocked = n.outputs.size() == 1 && blocked[n.outputs[0]];
    if (out_blocked && n.op == "conv2d" && !blocked[n.inputs[0]] && !reads_plain_input(model, n))
      n.inputs[0] = reorder(n.inputs[0], true);
    if (!reads_blocked(n))
      for (uint32_t& v : n.inputs)
        if (blocked[v]) v = reorder(v, false);
    nodes.push_back(std::move(n));
  }
  model.nodes = std::move(nodes);
  fuse_residual_adds(model, blocked);
  for (size_t i = 0; i < model.nodes.size(); ++i)
    for (uint32_t o : model.nodes[i].outputs) model.values[o].producer = int(i);
  return blocked;
}

void pad_channels_to_blocks(Model& model, WeightStore& store) {
  const size_t nv = model.values.size();
  std::vector<bool> external(nv, false), candidate(nv, false);
  for (uint32_t v : model.inputs) external[v] = true;
  for (uint32_t v : model.outputs) external[v] = true;
  for (size_t v = 0; v < nv; ++v) {
    const ValueDef& d = model.values[v];
    candidate[v] = is_activation(d) && !external[v] && d.shape.size() == 4 &&
                   padded_channels(d.shape[1]) != d.shape[1];
  }
  // Regions: candidate tensors joined through the elementwise ops between them.
  Regions regions(nv);
  for (const NodeDef& n : model.nodes)
    if (elementwise_same_shape(n) && n.outputs.size() == 1 && candidate[n.outputs[0]])
      for (uint32_t v : n.inputs)
        if (candidate[v]) regions.join(v, n.outputs[0]);
  // A region is padded only if every node around it keeps the padded channels zero and invisible:
  // convolutions (ungrouped, dense f32 weights) write them with zero weights and bias and read
  // them with zero weights; elementwise ops keep zeros zero (relu / relu6 / hardswish of 0, 0 + 0).
  std::vector<bool> ok(nv, true);
  for (const NodeDef& n : model.nodes) {
    const bool writes = n.outputs.size() == 1 && candidate[n.outputs[0]];
    const uint32_t root = writes ? regions.find(n.outputs[0]) : 0;
    if (elementwise_same_shape(n) && writes) {
      for (uint32_t v : n.inputs)
        if (!candidate[v] || regions.find(v) != root ||
            model.values[v].shape != model.values[n.outputs[0]].shape)
          ok[root] = false;
      continue;
    }
    const bool plain_conv =
        n.op == "conv2d" && conv_groups(n) == 1 && n.inputs.size() >= 2 && n.inputs.size() <= 3 &&
        dense_f32_constant(model.values[n.inputs[1]], 4) &&
        (n.inputs.size() < 3 || dense_f32_constant(model.values[n.inputs[2]], 1));
    // Weights that match the tensors (else the executor rejects the node, as it would unpadded).
    const std::vector<int64_t>* ws = plain_conv ? &model.values[n.inputs[1]].shape : nullptr;
    const bool reads_ok = plain_conv && (*ws)[1] == model.values[n.inputs[0]].shape[1];
    const bool writes_ok = plain_conv && n.outputs.size() == 1 &&
                           (*ws)[0] == model.values[n.outputs[0]].shape[1] &&
                           (n.inputs.size() < 3 || model.values[n.inputs[2]].shape[0] == (*ws)[0]);
    for (size_t k = 0; k < n.inputs.size(); ++k)
      if (candidate[n.inputs[k]] && !(reads_ok && k == 0)) ok[regions.find(n.inputs[k])] = false;
    for (uint32_t o : n.outputs)
      if (candidate[o] && !writes_ok) ok[regions.find(o)] = false;
  }
  auto padded = [&](uint32_t v) { return candidate[v] && ok[regions.find(v)]; };
  // Rewrite: convolutions first (they read the old channel counts), then the tensors' shapes.
  for (NodeDef& n : model.nodes) {
    if (n.op != "conv2d") continue;
    const bool in = padded(n.inputs[0]), out = n.outputs.size() == 1 && padded(n.outputs[0]);
    if (!in && !out) continue;
    std::vector<int64_t> wshape = model.values[n.inputs[1]].shape;
    if (out) wshape[0] = padded_channels(wshape[0]);
    if (in) wshape[1] = padded_channels(wshape[1]);
    if (in) {  // the kernels may skip the input's zero channels
      Attr tail;
      tail.type = AttrType::kInt;
      tail.ints = {wshape[1] - model.values[n.inputs[1]].shape[1]};
      n.attrs["_zero_tail"] = tail;
    }
    n.inputs[1] = padded_constant(model, n.inputs[1], wshape, store);
    if (out && n.inputs.size() > 2)
      n.inputs[2] = padded_constant(model, n.inputs[2], {wshape[0]}, store);
  }
  for (size_t v = 0; v < nv; ++v)
    if (padded(uint32_t(v))) model.values[v].shape[1] = padded_channels(model.values[v].shape[1]);
}

}  // namespace edgefit
