// Runtime: per-node preparation (validation, kernel choice, weight packing), arena planning with
// aliases, and the run loop. Every shape a kernel relies on is checked here, at load time.
#include "core/executor.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "core/layout.h"
#include "core/node_context.h"
#include "core/planner.h"
#include "core/weight_decode.h"

namespace edgefit {

namespace {

using node_context::kInf;
using node_context::kMaxGeom;
using node_context::NodeCtx;
using node_context::shape_str;

// Weights of a conv / linear as dense f32 [O, K]: in place for dense, decoded for int8 and
// codebooks (the codebook case only where the weights are tiny: depthwise filters).
const float* dense_weights(const NodeCtx& c, const ValueDef& w, WeightStore& owned) {
  if (w.encoding == Encoding::kDense) {
    if (w.dtype != DType::kF32) c.fail("dense weights must be f32");
    return reinterpret_cast<const float*>(w.blobs[0].data);
  }
  float* out = owned.alloc(w.rows() * w.cols());
  decode_weights_f32(w, out);
  return out;
}

// The unclamped result of a partial sum (products before a transform).
constexpr f32_minmax kNoClamp{-std::numeric_limits<float>::infinity(),
                              std::numeric_limits<float>::infinity()};

// Per-thread packing scratch of f32_gemm_blocked, 64-byte aligned (whole cache lines per strip).
float* gemm_scratch(size_t floats) {
  thread_local std::vector<float> buf;
  if (buf.size() < floats + 16) buf.resize(floats + 16);
  const uintptr_t at = reinterpret_cast<uintptr_t>(buf.data());
  return buf.data() + ((64 - at % 64) % 64) / sizeof(float);
}

}  // namespace

// What fuse_conv_depthwise needs of a blocked convolution (dense weights, no fused residual, no
// hardswish pass, not Winograd): its prepared parameters and kernels.
struct BlockedConvPlan {
  f32_nchwc_conv_params cp;                   // cp.offs points into offs (empty: depthwise)
  std::shared_ptr<std::vector<size_t>> offs;  // owns cp.offs
  const float* packed = nullptr;
  const float* bias = nullptr;
  f32_minmax mm;
  Kernel<f32_nchwc_conv_fn> conv;
  Kernel<f32_nchwc_dwconv_fn> dwconv;
  bool depthwise = false, padded = false;
  size_t n = 0, in_block = 0;
  uint32_t x = 0, y = 0;  // input / output values
};

// What fuse_spmm_depthwise needs of an NCHW block-sparse 1x1 convolution (one group, stride 1,
// no padding, no hardswish pass), ...
struct SparseConvPlan {
  BsrView sp;
  Kernel<f32_spmm_ukernel_fn> kern;
  const float* bias = nullptr;
  f32_minmax mm;
  size_t n = 0, ci = 0, co = 0, pixels = 0;
  uint32_t x = 0, y = 0;
};

// ... and of the NCHW depthwise layer after it (no hardswish pass).
struct ChwDwPlan {
  Kernel<f32_dwconv_chw_ukernel_fn> kern;
  const float* weights = nullptr;  // [c][kh][kw]
  const float* bias = nullptr;
  f32_dwconv_params prm;
  size_t c = 0, h = 0, w = 0, ho = 0, wo = 0, pt = 0, pl = 0;
  uint32_t x = 0, y = 0;
};

namespace {

// Output rows [oy_begin, oy_end) band by band of `rows`, for a fused pair whose first layer
// writes each band's input rows [r0, r1) (in_rows(oy, oe)) into buf: `planes` planes
// `plane_floats` apart, rows of `row_floats`. The rows a band shares with the one before are
// moved to the planes' fronts, not recomputed; band(oy, oe, r0, r1, keep) computes the rest (input
// rows after the first `keep`) and the band's output.
template <class InRows, class Band>
void walk_bands(size_t oy_begin, size_t oy_end, size_t rows, const InRows& in_rows, float* buf,
                size_t planes, size_t plane_floats, size_t row_floats, const Band& band) {
  ptrdiff_t h0 = 0, h1 = 0;  // input rows the buffer holds, from its first row
  for (size_t oy = oy_begin; oy < oy_end; oy += rows) {
    const size_t oe = std::min(oy + rows, oy_end);
    const auto [r0, r1] = in_rows(oy, oe);
    size_t keep = 0;
    if (h0 <= r0 && r0 < h1) {
      keep = size_t(std::min(h1, r1) - r0);
      if (r0 > h0)
        for (size_t pl = 0; pl < planes; ++pl) {
          float* plane = buf + pl * plane_floats;
          std::memmove(plane, plane + size_t(r0 - h0) * row_floats,
                       keep * row_floats * sizeof(float));
        }
    }
    band(oy, oe, r0, r1, keep);
    h0 = r0;
    h1 = r1;
  }
}

// A fused pair's bands, for a depthwise layer of stride sh whose window spans `reach` input rows
// ((kh - 1) * dh + 1): output rows per band (as many as keep a band's input rows of `row_bytes`
// within `budget`) and the input rows a band buffer holds.
struct BandShape {
  size_t rows, cap;
};
BandShape band_shape(size_t ho, size_t sh, size_t reach, size_t row_bytes, size_t budget) {
  size_t rows = 1;
  while (rows < ho && (rows * sh + reach) * row_bytes <= budget) ++rows;
  return {rows, (rows - 1) * sh + reach};
}

// The input rows [r0, r1) that output rows [oy, oe) of such a layer read, within its h rows.
std::pair<ptrdiff_t, ptrdiff_t> band_input_rows(size_t oy, size_t oe, size_t sh, size_t pt,
                                                size_t reach, size_t h) {
  return {std::max<ptrdiff_t>(0, ptrdiff_t(oy * sh) - ptrdiff_t(pt)),
          std::min<ptrdiff_t>(ptrdiff_t(h), ptrdiff_t((oe - 1) * sh + reach) - ptrdiff_t(pt))};
}

// How many node inputs read each value; a model output counts as two readers (never fused away).
std::vector<int> value_uses(const Model& model) {
  std::vector<int> uses(model.values.size(), 0);
  for (const NodeDef& n : model.nodes)
    for (uint32_t v : n.inputs) ++uses[v];
  for (uint32_t o : model.outputs) uses[o] += 2;
  return uses;
}

size_t blocked_scratch_bytes(const f32_gemm_blocking& bl) {
  return (f32_gemm_blocked_scratch(bl) + 16) * sizeof(float);
}

// One GEMM C[m, p] = panels x B over the pool, in the (panel range, column range) tasks of split.
void run_blocked(ThreadPool* pool, const f32_gemm_blocking& bl, const f32_gemm_split& split,
                 size_t m, size_t k, size_t p, const float* panels, size_t panel_floats,
                 const f32_gemm_operand& op, float* c, const f32_minmax* mm) {
  const size_t n_panels = ceil_div(m, bl.mr), floats = f32_gemm_blocked_scratch(bl);
  pool->parallel_for(split.tasks(), [&](size_t t) {
    const size_t j0 = (t % split.col_parts) * split.cols_per;
    const size_t pi0 = (t / split.col_parts) * split.panels_per;
    if (j0 >= p || pi0 >= n_panels) return;
    f32_gemm_blocked(bl, m, k, panels, panel_floats, pi0,
                     std::min(n_panels, pi0 + split.panels_per), op, j0,
                     std::min(split.cols_per, p - j0), c, p, gemm_scratch(floats), mm);
  });
}

}  // namespace

Runtime::Runtime(const std::string& path, size_t threads, const std::string& isa)
    : Runtime(load_model(path), threads, isa) {}

Runtime::Runtime(Model model, size_t threads, const std::string& isa) : model_(std::move(model)) {
  if (threads < 1 || threads > 256) throw std::invalid_argument("threads must be in 1..256");
  const CpuInfo& cpu = CpuInfo::host();
  kernels_ = select_kernels(cpu, isa.empty() ? cpu.preferred() : parse_isa(isa));
  // By default each family takes its best measured level: on Zen 4 preferred() keeps the AVX2
  // GEMM tiles (the AVX-512 ones are no faster there), but the AVX-512 blocked convolutions, SpMM
  // tiles and stride-1 depthwise kernels are (csrc/README.md). An explicit isa caps every family.
  isa_label_ = isa_name(kernels_.isa);
  if (isa.empty() && cpu.supports(Isa::kAvx512)) {
    kernels_.nchwc = select_nchwc(Isa::kAvx512);
    kernels_.spmm = select_spmm(Isa::kAvx512);
    kernels_.dwconv = select_dwconv(Isa::kAvx512);
    if (kernels_.isa != Isa::kAvx512) isa_label_ += "+avx512";
  }
  if (kernels_.nchwc.conv.fn != nullptr) {
    // Padding 24-channel regions pays at every thread count now that their blocked pairs run in
    // row bands (csrc/README.md).
    pad_channels_to_blocks(model_, owned_);
    blocked_ = plan_nchwc(model_);
  }
  blocked_.resize(model_.values.size(), false);
  pool_ = std::make_unique<ThreadPool>(threads);
  prepare();
}

Runtime::~Runtime() { free_pages(arena_, arena_alloc_bytes_); }

std::vector<NodeStats> Runtime::nodes() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<NodeStats> out;
  for (const auto& s : steps_) out.push_back(s.stats);
  return out;
}

void Runtime::prepare() {
  const size_t nv = model_.values.size();
  for (uint32_t i : model_.inputs) {
    const ValueDef& v = model_.values[i];
    if (v.dtype != DType::kF32 && v.dtype != DType::kU8)
      throw LoadError("graph input '" + v.name + "' has dtype " + dtype_name(v.dtype) +
                      " (f32 or u8 only)");
    inputs_.push_back({v.name, v.shape, v.dtype});
  }
  for (uint32_t o : model_.outputs) {
    const ValueDef& v = model_.values[o];
    outputs_.push_back({v.name, v.shape, v.dtype});
  }
  bufs_.assign(nv, nullptr);
  for (size_t i = 0; i < nv; ++i) {
    const ValueDef& v = model_.values[i];
    if (v.kind == ValueKind::kConstant && v.encoding == Encoding::kDense)
      bufs_[i] = const_cast<uint8_t*>(v.blobs[0].data);  // read only, by construction
    if (v.kind != ValueKind::kConstant && v.dtype != DType::kF32 && v.dtype != DType::kU8)
      throw LoadError("value '" + v.name + "' has dtype " + dtype_name(v.dtype) +
                      " (activations are f32 or u8)");
  }

  // Storage roots: reshape always aliases its input; elementwise ops may work in place.
  root_.resize(nv);
  for (size_t i = 0; i < nv; ++i) root_[i] = uint32_t(i);
  auto find = [&](uint32_t v) {
    while (root_[v] != v) v = root_[v] = root_[root_[v]];
    return v;
  };
  for (size_t i = 0; i < model_.nodes.size(); ++i) prepare_node(i);
  std::vector<size_t> fused_pairs = fuse_conv_depthwise();
  for (size_t i : fuse_spmm_depthwise()) fused_pairs.push_back(i);
  owned_.seal();                       // every weight is packed by now
  std::vector<bool> fused(nv, false);  // values no longer stored: a band buffer holds them
  for (size_t i : fused_pairs) fused[model_.nodes[i].outputs[0]] = true;
  for (const NodeDef& n : model_.nodes)
    if (n.op == "reshape") root_[n.outputs[0]] = find(n.inputs[0]);

  const int end = int(model_.nodes.size());
  std::vector<int> first(nv, std::numeric_limits<int>::max()), last(nv, -1);
  std::vector<bool> external(nv, false), is_output(nv, false), has_storage(nv, false);
  input_slot_.assign(nv, -1);
  for (size_t k = 0; k < model_.inputs.size(); ++k) {
    const uint32_t r = find(model_.inputs[k]);
    external[r] = true;
    input_slot_[r] = int(k);
    has_storage[model_.inputs[k]] = true;
  }
  for (size_t i = 0; i < model_.nodes.size(); ++i) {
    const NodeDef& n = model_.nodes[i];
    for (uint32_t v : n.inputs)
      if (model_.values[v].kind != ValueKind::kConstant)
        last[find(v)] = std::max(last[find(v)], int(i));
    const uint32_t r = find(n.outputs[0]);
    first[r] = std::min(first[r], int(i));
    has_storage[n.outputs[0]] = !fused[n.outputs[0]];
  }
  // A fused pair runs as its first node's step: the second's output is written, and the first's
  // inputs are still read, while it runs (else the plan could give both the same bytes).
  for (size_t i : fused_pairs) {
    const uint32_t r = find(model_.nodes[i + 1].outputs[0]);
    first[r] = std::min(first[r], int(i));
    for (uint32_t v : model_.nodes[i].inputs)
      if (model_.values[v].kind != ValueKind::kConstant)
        last[find(v)] = std::max(last[find(v)], int(i + 1));
  }
  for (uint32_t o : model_.outputs) {
    last[find(o)] = end;
    is_output[find(o)] = true;
  }
  for (size_t i = 0; i < model_.nodes.size(); ++i) {
    const NodeDef& n = model_.nodes[i];
    const bool candidate = n.op == "relu" || n.op == "relu6" || n.op == "hardswish" ||
                           n.op == "add" || n.op == "channel_affine";
    if (!candidate) continue;
    const uint32_t a = find(n.inputs[0]), o = find(n.outputs[0]);
    if (a == o || external[a] || is_output[a] || last[a] != int(i)) continue;
    root_[o] = a;
    last[a] = std::max(last[a], last[o]);
    is_output[a] = is_output[a] || is_output[o];
  }

  // At 2+ threads a blocked depthwise layer splits channel blocks while the 1x1 projection that
  // reads its output splits pixels (or output groups), so each core reads lines the other wrote.
  // Whichever buffer the arena puts on those bytes next pays ~9 ns a line to rewrite them unless
  // the reader's copy has left its L2 by then (tools/coherence_probe.cc, csrc/README.md): such
  // outputs keep their bytes to themselves for kCrossCoreCool steps on either side. (A row-band
  // pair's depthwise output is written by rows, as its reader splits it: not these.) MobileNetV2
  // at 2 threads, in-process A/B, 300 pairs, without vs with: 6 steps 1.009x / 1.015x slower
  // without (its depthwise layers -5 .. -10 us each), 3 steps 1.007x / 1.006x; the arena keeps
  // its 4.05 MiB (the 7x7 / 14x14 buffers fit in bytes the 56x56 layers used).
  constexpr int kCrossCoreCool = 6;
  const bool cooling = pool_->threads() > 1 && steps_.size() == model_.nodes.size();
  auto cross_core_read = [&](size_t v) {
    const int p = model_.values[v].producer;
    if (!cooling || p < 0) return false;
    const auto& plan = steps_[size_t(p)].blocked;
    return plan && plan->depthwise && !fused[plan->x];  // fused: its input lives in row bands
  };
  std::vector<BufferRequest> reqs;
  std::vector<uint32_t> req_root;
  for (size_t v = 0; v < nv; ++v) {
    if (!has_storage[v] || find(uint32_t(v)) != v || external[v]) continue;
    BufferRequest r;
    r.bytes = model_.values[v].numel() * dtype_size(model_.values[v].dtype);
    r.first = first[v] == std::numeric_limits<int>::max() ? 0 : first[v];
    r.last = std::max(last[v], r.first);
    if (cross_core_read(v)) r.cool = kCrossCoreCool;
    reqs.push_back(r);
    req_root.push_back(uint32_t(v));
  }
  // Roots may have gained members after `first` was computed: recompute over the final sets.
  for (size_t v = 0; v < nv; ++v) {
    if (!has_storage[v]) continue;
    const uint32_t r = find(uint32_t(v));
    for (size_t q = 0; q < req_root.size(); ++q)
      if (req_root[q] == r && model_.values[v].producer >= 0)
        reqs[q].first = std::min(reqs[q].first, model_.values[v].producer);
  }
  const ArenaPlan plan = plan_arena(reqs);
  offset_.assign(nv, 0);
  for (size_t q = 0; q < req_root.size(); ++q) offset_[req_root[q]] = plan.offsets[q];
  for (size_t v = 0; v < nv; ++v) root_[v] = find(uint32_t(v));
  arena_bytes_ = plan.arena_bytes;
  // A sanity cap (hostile shapes): no edge model needs 16 GiB of activations.
  constexpr size_t kLimit = size_t(1) << 34;
  if (arena_bytes_ > kLimit || scratch_bytes_ > kLimit ||
      thread_bytes_ > kLimit / pool_->threads() ||
      arena_bytes_ + scratch_bytes_ + thread_bytes_ * pool_->threads() > kLimit)
    throw LoadError("the model needs more than 16 GiB of activation memory (" +
                    std::to_string((arena_bytes_ + scratch_bytes_) >> 20) +
                    " MiB arena + scratch); refusing");
  scratch_bytes_ = (scratch_bytes_ + 63) / 64 * 64;
  const size_t total = arena_bytes_ + scratch_bytes_ + 64;
  arena_alloc_bytes_ = total;
  arena_ = static_cast<uint8_t*>(alloc_pages(total, /*huge_pages=*/true));
  scratch_ = reinterpret_cast<float*>(arena_ + arena_bytes_);
  for (size_t v = 0; v < nv; ++v)
    if (has_storage[v] && !external[root_[v]]) bufs_[v] = arena_ + offset_[root_[v]];
}

void Runtime::run_on_zeros() {
  std::vector<std::vector<uint8_t>> in, out;
  std::vector<const void*> ip;
  std::vector<void*> op;
  for (const TensorSpec& t : inputs_) in.emplace_back(t.bytes(), 0);
  for (const TensorSpec& t : outputs_) out.emplace_back(t.bytes());
  for (auto& v : in) ip.push_back(v.data());
  for (auto& v : out) op.push_back(v.data());
  run(ip, op);
}

void Runtime::run(const std::vector<const void*>& inputs, const std::vector<void*>& outputs) {
  std::lock_guard<std::mutex> lock(mu_);
  if (inputs.size() != inputs_.size() || outputs.size() != outputs_.size())
    throw std::invalid_argument("wrong number of inputs or outputs");
  for (size_t v = 0; v < bufs_.size(); ++v)
    if (input_slot_[root_[v]] >= 0)
      bufs_[v] = const_cast<void*>(inputs[size_t(input_slot_[root_[v]])]);
  for (auto& s : steps_) {
    const int64_t waited = pool_->waited_ns();
    const auto t0 = std::chrono::steady_clock::now();
    s.fn();
    s.stats.last_us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    s.stats.last_wait_us = double(pool_->waited_ns() - waited) * 1e-3;
  }
  for (size_t i = 0; i < outputs_.size(); ++i)
    std::memcpy(outputs[i], bufs_[model_.outputs[i]], outputs_[i].bytes());
}

// ---- per-op preparation -------------------------------------------------------------------------

void Runtime::prepare_node(size_t index) {
  const NodeDef& n = model_.nodes[index];
  NodeCtx c{model_, n};
  // Blocked tensors are read only where the layout plan put them (core/layout.h): by nodes
  // whose output is blocked too, a global average pool and the reorder back.
  const bool reads_blocked =
      blocked_[n.outputs[0]] || n.op == "global_avg_pool" || n.op == "from_nchwc";
  for (uint32_t v : n.inputs)
    if (blocked_[v] && !reads_blocked) c.fail("internal: reads a channel-blocked tensor");
  Step step;
  step.stats.name = n.name;
  step.stats.op = n.op;
  const uint32_t xi = n.inputs[0], yi = n.outputs[0];
  const ValueDef& y = c.out();
  ThreadPool* pool = pool_.get();
  const KernelSet& ks = kernels_;
  // Equal chunks of <= 16K floats, at least one per thread once each gets >= 2K: thread t's
  // share is then the same fraction of the tensor as its share of the producer's channels
  // (ThreadPool), so a residual add reads what its own core wrote. (Two unequal 16K chunks per
  // 14x14 x 96 tensor ran 5.5 us on 2 threads vs 1.2 us on 1: half the inputs crossed cores.)
  auto elementwise_split = [pool](size_t total, std::function<void(size_t, size_t)> fn) {
    constexpr size_t kChunk = 16384, kMinPerThread = 2048;
    if (total == 0) return;
    const size_t tasks =
        std::max(ceil_div(total, kChunk), std::min(pool->threads(), total / kMinPerThread));
    const size_t chunk = ceil_div(ceil_div(total, tasks), 16) * 16;
    pool->parallel_for(ceil_div(total, chunk), [&](size_t t) {
      const size_t b = t * chunk;
      fn(b, std::min(total, b + chunk) - b);
    });
  };
  // Hardswish after a kernel with a fused clamp-free result.
  auto hswish_pass = [this, yi, elementwise_split](size_t total) {
    auto fn = kernels_.elementwise.hswish.fn;
    float* yp = f32(yi);
    elementwise_split(total, [=](size_t b, size_t len) { fn(len, yp + b, yp + b); });
  };

  if (n.op == "conv2d") {
    const ValueDef& x = c.in(0);
    const ValueDef& w = c.in(1);
    c.activation_value(x, DType::kF32, "input");
    if (x.shape.size() != 4) c.fail("input must be [N, C, H, W], is " + shape_str(x.shape));
    if (w.kind != ValueKind::kConstant || w.shape.size() != 4)
      c.fail("weight must be a rank-4 constant");
    const size_t N = x.shape[0], Ci = x.shape[1], H = x.shape[2], W = x.shape[3];
    const size_t Co = w.shape[0], Cig = w.shape[1], kh = w.shape[2], kw = w.shape[3];
    const int64_t groups = c.integer("groups", 1);
    if (groups < 1 || Ci % size_t(groups) || Co % size_t(groups) || Cig != Ci / size_t(groups))
      c.fail("groups " + std::to_string(groups) + " do not fit input " + shape_str(x.shape) +
             " and weight " + shape_str(w.shape));
    const size_t G = size_t(groups), Cog = Co / G;
    const auto [sh, sw] = c.pair("stride", {1, 1}, 1);
    const auto [dh, dw] = c.pair("dilation", {1, 1}, 1);
    const auto pad = c.padding();
    if (kh > size_t(kMaxGeom) || kw > size_t(kMaxGeom)) c.fail("kernel too large");
    const int64_t eh = int64_t(H) + pad[0] + pad[2] - dh * (int64_t(kh) - 1) - 1;
    const int64_t ew = int64_t(W) + pad[1] + pad[3] - dw * (int64_t(kw) - 1) - 1;
    if (eh < 0 || ew < 0) c.fail("kernel larger than the padded input");
    const size_t Ho = size_t(eh / sh + 1), Wo = size_t(ew / sw + 1);
    c.expect_shape(y, {int64_t(N), int64_t(Co), int64_t(Ho), int64_t(Wo)});
    c.activation_value(y, DType::kF32, "output");
    // A following add fused in by the layout plan (layout.cc): its other input comes last.
    const bool fused_residual = c.integer("_residual", 0) != 0;
    const size_t weight_inputs = n.inputs.size() - (fused_residual ? 1 : 0);
    const float* bias = weight_inputs > 2 ? c.dense_f32(c.in(2), Co, "bias") : nullptr;
    bool hswish = false;
    const f32_minmax mm = c.act(&hswish);
    const size_t P = Ho * Wo, K = Cig * kh * kw;
    const bool depthwise = Cig == 1 && Cog == 1;
    const uint32_t ri = n.inputs.back();
    if (fused_residual &&
        (n.inputs.size() < 3 || !blocked_[yi] || depthwise || !blocked_[ri] ||
         model_.values[ri].shape != y.shape || model_.values[ri].kind == ValueKind::kConstant))
      c.fail("internal: a fused residual needs a blocked convolution and a blocked input like y");

    if (blocked_[yi]) {
      // Channel-blocked output (core/layout.h): the NCHWc tiles over the input itself or, where
      // the convolution pads, over a padded copy (measured: csrc/README.md). A stem reads its
      // plain NCHW input (in_block 1: an image's 3 channels) instead of a reorder of it.
      const bool plain_in = !blocked_[xi];
      const size_t in_block = plain_in ? 1 : kNchwcBlock;
      if ((plain_in && G != 1) || (G != 1 && !depthwise) || dh != 1 || dw != 1 || Ci % in_block ||
          Co % kNchwcBlock || (depthwise && kh * kw > 64) || w.encoding == Encoding::kBsr)
        c.fail("internal: not a channel-blocked convolution");
      // Codebook weights stay compressed: each task decodes its 64-channel group pass by pass
      // into a per-thread buffer in the packed layout (the weight memory target: csrc/README.md);
      // depthwise ones and those of plain-input convolutions (a stem: 3 input channels) are tiny
      // and decoded here, as on the NCHW path.
      const bool codebook = w.encoding == Encoding::kCodebook;
      const bool decode = codebook && !depthwise && !plain_in;
      const size_t group_width = kNchwcBlock * kNchwcGroupBlocks;
      // Winograd F(2x2, 3x3) (f32-nchwc.h) for 3x3 stride-1 "same" convolutions of even images:
      // 16 multiplies per 2x2 outputs and channel pair instead of 36, the 16 products of each
      // tile position one 1x1 convolution over a run of tiles (the blocked tiles above).
      const bool winograd = ks.nchwc.wino_in.fn != nullptr && G == 1 && !plain_in &&
                            !fused_residual && kh == 3 && kw == 3 && sh == 1 && sw == 1 &&
                            pad[0] == 1 && pad[1] == 1 && pad[2] == 1 && pad[3] == 1 &&
                            H % 2 == 0 && W % 2 == 0 && H >= 2 && W >= 2;
      if (winograd) {
        // Dense weights are transformed once here (16 / 9 of their size). Codebook weights stay
        // compressed: each run decodes one 64-channel group at a time (the blocked decode) and
        // transforms it into the shared scratch (16 x 64 x Ci floats, 1 MB at Ci = 256), then
        // runs that group's products; the weight memory target (csrc/README.md).
        const cb_weights cw = codebook ? codebook_weights(w, Co, K) : cb_weights{};
        float* packed = nullptr;
        if (!codebook) {
          const float* wd = dense_weights(c, w, owned_);
          packed = owned_.alloc(f32_nchwc_wino_packed_size(Co, Ci));
          f32_nchwc_wino_pack(Co, Ci, wd, packed);
        }
        const size_t each = f32_nchwc_packed_size(Co, Ci, 1, 1);
        const size_t group_floats = (9 + 16) * Ci * group_width;  // decoded + transformed group
        if (codebook) scratch_bytes_ = std::max(scratch_bytes_, group_floats * sizeof(float));
        const size_t tiles = (H / 2) * (W / 2), threads = pool->threads();
        // Runs of tiles, whole 6-pixel tiles of the 1x1 kernel, at most 48 (a run's transformed
        // inputs and products, 16 x (Ci + Co) x 48 floats, stay in L2 for Ci = Co = 128), a
        // multiple of the threads.
        const size_t runs = threads * ceil_div(ceil_div(tiles, 48), threads);
        const size_t run = std::min(ceil_div(ceil_div(tiles, runs), 6) * 6, ceil_div(tiles, 6) * 6);
        const size_t nruns = ceil_div(tiles, run);
        const size_t out_width = codebook ? std::min(Co, group_width) : Co;  // products per run
        const size_t vm_floats = 16 * (Ci + out_width) * run;
        const size_t seg_floats = kNchwcBlock * kNchwcBlock * 9;  // the decoder's 16 rows
        thread_bytes_ =
            std::max(thread_bytes_, (std::max(vm_floats, seg_floats) + 16) * sizeof(float));
        f32_nchwc_conv_params cp;
        cp.g = conv2d_geometry{1, run, 1, run, 1, 1, 1, 1, 0, 0, 1, 1};
        cp.ic = Ci;
        cp.oc = Co;
        cp.hp = 1;
        cp.wp = run;
        cp.pass_blocks = f32_nchwc_pass_blocks(Ci, 1, 1);
        auto offs = std::make_shared<std::vector<size_t>>(run);
        f32_nchwc_offsets(cp.g, cp.wp, offs->data());
        cp.offs = offs->data();
        const size_t groups = ceil_div(Co, group_width);
        const auto kern = ks.nchwc.conv;
        const auto win = ks.nchwc.wino_in;
        const auto wout = ks.nchwc.wino_out;
        const auto decoder = ks.nchwc.decode_cb;
        const auto wpack = ks.nchwc.wino_pack_group;
        step.stats.kernel =
            std::string(win.name) + " + " +
            (codebook ? std::string(decoder.name) + " + " + wpack.name + " + " : "") + kern.name +
            " + " + wout.name;
        // Output channels [o0, o0 + width) of tiles [t0, t0 + nt): transforms, the 16 products
        // (u: their transformed weights, laid out for `width` channels), the output transform.
        auto tile_run = [=](const float* xb, float* yb, const float* u, size_t o0, size_t width,
                            size_t t0, size_t nt) {
          float* v = gemm_scratch(vm_floats);
          float* m = v + 16 * Ci * run;
          win.fn(H, W, Ci / kNchwcBlock, xb, t0, nt, run, v);
          f32_nchwc_conv_params cg = cp;
          cg.oc = width;
          const size_t u_each = codebook ? width * Ci : each;
          for (size_t xi = 0; xi < 16; ++xi)
            for (size_t grp = 0; grp < ceil_div(width, group_width); ++grp)
              kern.fn(&cg, v + xi * Ci * run, u + xi * u_each, nullptr, m + xi * width * run, grp,
                      0, nt, &kNoClamp);
          wout.fn(H, W, width / kNchwcBlock, m, t0, nt, run, bias ? bias + o0 : nullptr,
                  yb + o0 * H * W, &mm);
        };
        step.fn = [=, this]() {
          const float* xp = f32(xi);
          float* yp = f32(yi);
          // Every run of tiles of every image, for output channels [o0, o0 + width).
          auto all_runs = [&](const float* u, size_t o0, size_t width) {
            for (size_t b = 0; b < N; ++b)
              pool->parallel_for(nruns, [&](size_t r) {
                tile_run(xp + b * Ci * H * W, yp + b * Co * H * W, u, o0, width, r * run,
                         std::min(run, tiles - r * run));
              });
          };
          if (!codebook) all_runs(packed, 0, Co);
          // Codebook: each group decoded and transformed once for the whole batch.
          for (size_t grp = 0; codebook && grp < groups; ++grp) {
            const size_t o0 = grp * group_width, width = f32_nchwc_group_width(Co, grp);
            float* w3 = scratch_;
            float* u = scratch_ + 9 * Ci * width;
            pool->parallel_for(Ci / kNchwcBlock, [&](size_t ib) {
              decoder.fn(&cw, o0, width, 9, ib, 1, gemm_scratch(seg_floats),
                         w3 + ib * 9 * kNchwcBlock * width);
              wpack.fn(width, Ci, ib, w3, u);
            });
            all_runs(u, o0, width);
          }
          (void)offs;  // owns cp.offs
          if (hswish) hswish_pass(N * Co * H * W);
        };
        steps_.push_back(std::move(step));
        return;
      }
      const cb_weights cw = decode ? codebook_weights(w, Co, K) : cb_weights{};
      float* packed = nullptr;
      if (!decode) {
        const float* wd = dense_weights(c, w, owned_);
        packed = owned_.alloc(f32_nchwc_packed_size(Co, Cig, kh, kw));
        if (depthwise)
          f32_nchwc_dw_pack(Co, kh, kw, wd, packed);
        else
          f32_nchwc_pack(Co, Ci, kh, kw, wd, packed, in_block);
      }
      const conv2d_geometry geo{
          H, W, Ho, Wo, kh, kw, size_t(sh), size_t(sw), size_t(pad[0]), size_t(pad[1]), 1, 1};
      const bool padded = !depthwise && f32_nchwc_needs_pad(geo);  // depthwise pads in-kernel
      f32_nchwc_conv_params cp;
      cp.g = geo;
      cp.ic = Ci;
      cp.oc = Co;
      cp.in_block = in_block;
      cp.hp = H;
      cp.wp = W;
      if (padded) f32_nchwc_padded(geo, &cp.hp, &cp.wp);
      if (padded) scratch_bytes_ = std::max(scratch_bytes_, Ci * cp.hp * cp.wp * sizeof(float));
      cp.pass_blocks = f32_nchwc_pass_blocks(Ci, kh, kw, in_block);
      // Input channels padded up to a whole block (core/layout.h): the tiles skip them.
      const int64_t zero_tail = c.integer("_zero_tail", 0);
      if (zero_tail < 0 || zero_tail >= int64_t(kNchwcBlock) || size_t(zero_tail) >= Ci ||
          (zero_tail != 0 && in_block != kNchwcBlock))
        c.fail("internal: bad _zero_tail");
      cp.zero_tail = size_t(zero_tail);
      // Per-pixel input offsets for the dense tiles (the depthwise kernel works them out itself).
      auto offs = std::make_shared<std::vector<size_t>>(depthwise ? 0 : P);
      if (!depthwise) f32_nchwc_offsets(geo, cp.wp, offs->data(), in_block);
      cp.offs = offs->data();
      // Tasks: every 64-channel group, its pixels split (in whole 6-pixel tiles) only as far as
      // the threads need work: each split reads the group's weights once more.
      // Depthwise: every 16-channel block is a unit of work, and split likewise.
      const size_t groups =
          depthwise ? Co / kNchwcBlock : ceil_div(Co, kNchwcBlock * kNchwcGroupBlocks);
      const size_t threads = pool->threads();
      size_t splits = threads > 1 ? std::min(ceil_div(4 * threads, groups), ceil_div(P, 6)) : 1;
      // Many groups, but not a multiple of the threads (MobileNetV2's 576 and 960 channels: 9 and
      // 15 groups, 5 : 4 on 2 threads): split each group's pixels too, so the threads get equal
      // work. In-process A/B at 2 threads: features.12-14's expands -3 .. -8 us each. (With
      // fewer groups, 3 for 160 channels, the extra splits' weight reads cost more than they
      // balanced: +6 us.)
      if (threads > 1 && !depthwise && groups >= 2 * threads)
        while ((groups * splits) % threads != 0 && splits < ceil_div(P, 6)) ++splits;
      // A group's splits take whole 6-pixel tiles, as evenly as the tiles go: 196 pixels in 8
      // splits are 24-30 pixels each, where splits of ceil(196 / 8) rounded up to tiles (30) left
      // 7 chunks of 30 + 16 and the threads 120 : 76 pixels of a projection (in-process A/B at 2
      // threads, six runs: 0.993-1.000x, the 14x14 projections -3 us each).
      const size_t tiles = ceil_div(P, 6);
      const auto kern = ks.nchwc.conv;
      const auto dwkern = ks.nchwc.dwconv;
      const auto decoder = ks.nchwc.decode_cb;
      step.stats.kernel = depthwise ? dwkern.name : kern.name;
      const size_t taps = kh * kw;
      const size_t pass_k = cp.pass_blocks * kNchwcBlock * taps;  // one row of a pass
      if (decode) {
        step.stats.kernel = std::string(decoder.name) + " + " + kern.name;
        thread_bytes_ = std::max(thread_bytes_, (pass_k * (group_width + 16) + 16) * 4);
      }
      // A codebook group, pass by pass: decode the pass's weights, then its partial sums.
      auto decoded_group = [=](const f32_nchwc_conv_params& base, const float* xb, float* y,
                               size_t grp, size_t p0, size_t p1) {
        const size_t o0 = grp * group_width, width = f32_nchwc_group_width(Co, grp);
        const size_t nib = Ci / kNchwcBlock;
        float* buf = gemm_scratch(pass_k * (group_width + 16));
        float* seg = buf + pass_k * group_width;
        for (size_t ib0 = 0; ib0 < nib; ib0 += base.pass_blocks) {
          const size_t nb = std::min(base.pass_blocks, nib - ib0);
          decoder.fn(&cw, o0, width, taps, ib0, nb, seg, buf);
          f32_nchwc_conv_params pc = base;
          pc.ic = nb * kNchwcBlock;
          pc.oc = width;
          pc.pass_blocks = nb;
          pc.continues = ib0 != 0;
          pc.zero_tail = ib0 + nb == nib ? base.zero_tail : 0;
          pc.open = ib0 + nb < nib;
          if (base.residual != nullptr) pc.residual = base.residual + o0 * P;
          kern.fn(&pc, xb + ib0 * base.hp * base.wp * kNchwcBlock, buf,
                  bias != nullptr ? bias + o0 : nullptr, y + o0 * P, 0, p0, p1, &mm);
        }
      };
      if (!decode && !fused_residual && !hswish) {
        auto plan = std::make_shared<BlockedConvPlan>();
        plan->cp = cp;
        plan->offs = offs;
        plan->packed = packed;
        plan->bias = bias;
        plan->mm = mm;
        plan->conv = kern;
        plan->dwconv = dwkern;
        plan->depthwise = depthwise;
        plan->padded = padded;
        plan->n = N;
        plan->in_block = in_block;
        plan->x = xi;
        plan->y = yi;
        step.blocked = std::move(plan);
      }
      step.fn = [=, this]() {
        const float* xp = f32(xi);
        float* yp = f32(yi);
        const size_t blocks = Ci / in_block;
        f32_nchwc_conv_params pc = cp;
        for (size_t b = 0; b < N; ++b) {
          const float* xb = xp + b * Ci * H * W;
          if (fused_residual) pc.residual = f32(ri) + b * Co * P;
          if (padded) {
            pool->parallel_for(
                blocks, [&](size_t t) { f32_nchwc_pad(geo, t, t + 1, xb, scratch_, in_block); });
            xb = scratch_;
          }
          pool->parallel_for(groups * splits, [&](size_t t) {
            const size_t grp = t / splits, s = t % splits;
            const size_t p0 = s * tiles / splits * 6,
                         p1 = std::min(P, (s + 1) * tiles / splits * 6);
            if (p0 >= p1) return;
            if (depthwise)
              dwkern.fn(&cp, xb, packed, bias, yp + b * Co * P, grp, grp + 1, p0, p1, &mm);
            else if (decode)
              decoded_group(pc, xb, yp + b * Co * P, grp, p0, p1);
            else
              kern.fn(&pc, xb, packed, bias, yp + b * Co * P, grp, p0, p1, &mm);
          });
        }
        (void)offs;  // owns cp.offs
        if (hswish) hswish_pass(N * Co * P);
      };
    } else if (depthwise && w.encoding != Encoding::kBsr) {
      // Codebook depthwise weights are tiny (Co x kh x kw, 0.2 % of MobileNetV2's weight bytes), so
      // dense_weights decodes them once here for the depthwise kernels; through the codebook GEMM
      // each channel would be its own 1-row GEMM (3x slower end to end). The memory target of
      // codebooks concerns the big 1x1 / 3x3 / linear layers, which stay packed.
      const float* wd = dense_weights(c, w, owned_);
      f32_dwconv_params prm{kh, kw, size_t(sh), size_t(sw), size_t(dh), size_t(dw), mm};
      // Unpadded entry points: a kernel reads its channel in place (zeros for the padding), so
      // no padded copy of every channel is made per run.
      Kernel<f32_dwconv_chw_ukernel_fn> kern = ks.dwconv.chw_generic;
      if (dh == 1 && dw == 1 && kh == kw) {
        Kernel<f32_dwconv_chw_ukernel_fn> fast;
        if (kh == 3 && sh == 1 && sw == 1) fast = ks.dwconv.chw_k3s1;
        if (kh == 3 && sh == 2 && sw == 2) fast = ks.dwconv.chw_k3s2;
        if (kh == 5 && sh == 1 && sw == 1) fast = ks.dwconv.chw_k5s1;
        if (kh == 5 && sh == 2 && sw == 2) fast = ks.dwconv.chw_k5s2;
        if (fast.fn) kern = fast;
      }
      step.stats.kernel = kern.name;
      const size_t pt = size_t(pad[0]), pl = size_t(pad[1]);
      if (!hswish)
        step.chw_dw = std::make_shared<ChwDwPlan>(
            ChwDwPlan{kern, wd, bias, prm, Co, H, W, Ho, Wo, pt, pl, xi, yi});
      // Channels per task: ~8 tasks per thread (balance) and >= ~16K outputs per task, so that
      // a layer of many small channels (7x7 x 960) does not pay one dispatch per channel.
      const size_t channels = N * Co, threads = pool->threads();
      const size_t per = std::max<size_t>(
          1, std::min(ceil_div(channels, 8 * threads), ceil_div(16384, std::max<size_t>(P, 1))));
      step.fn = [=, this]() {
        const float* xp = f32(xi);
        float* yp = f32(yi);
        pool->parallel_for(ceil_div(channels, per), [&](size_t t) {
          // The task's channels, one call per image they fall in (weights index by channel).
          const size_t end = std::min(channels, (t + 1) * per);
          for (size_t c = t * per; c < end;) {
            const size_t ch = c % Co, n = std::min(end - c, Co - ch);
            kern.fn(n, H, W, xp + c * H * W, pt, pl, Ho, Wo, wd + ch * kh * kw,
                    bias ? bias + ch : nullptr, yp + c * P, &prm);
            c += n;
          }
        });
        if (hswish) hswish_pass(N * Co * P);
      };
    } else {
      const bool direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && pad[0] == 0 && pad[1] == 0 &&
                          pad[2] == 0 && pad[3] == 0;
      // The full [K, P] im2col matrix (block-sparse; codebook layers that do not unfold per chunk).
      const size_t im2col_bytes = direct ? 0 : K * P * sizeof(float);
      if (w.encoding == Encoding::kBsr) scratch_bytes_ = std::max(scratch_bytes_, im2col_bytes);
      conv2d_geometry geo{H,
                          W,
                          Ho,
                          Wo,
                          kh,
                          kw,
                          size_t(sh),
                          size_t(sw),
                          size_t(pad[0]),
                          size_t(pad[1]),
                          size_t(dh),
                          size_t(dw)};
      const auto im2col = ks.gemm.im2col.fn;
      // Returns the [K, P] operand of group g of image b (x itself for 1x1 convolutions).
      auto operand = [=, this](const float* xp, size_t b, size_t g) -> const float* {
        const float* xg = xp + (b * Ci + g * Cig) * H * W;
        if (direct) return xg;
        pool->parallel_for(
            Cig, [&](size_t ch) { im2col(&geo, 1, xg + ch * H * W, scratch_ + ch * kh * kw * P); });
        return scratch_;
      };
      // fn(B, C, g) for every image and group: B its [K, P] operand, C its first output row.
      auto each_group = [=](const float* xp, float* yp,
                            const std::function<void(const float*, float*, size_t)>& fn) {
        for (size_t b = 0; b < N; ++b)
          for (size_t g = 0; g < G; ++g) fn(operand(xp, b, g), yp + (b * Co + g * Cog) * P, g);
      };
      const std::string via = direct ? "" : std::string(ks.gemm.im2col.name) + " + ";
      const bool dense = w.encoding == Encoding::kDense || w.encoding == Encoding::kInt8;
      const f32_gemm_t_config tc = ks.gemm.t;
      const size_t strips = ceil_div(Cog, std::max<size_t>(tc.nr, 1)),
                   strip_floats = tc.nr ? f32_gemm_t_packed_size(Cog, K, tc.nr) : 0;
      // The dense weights of every group as transposed-tile strips, K ordered like the weight
      // ([c][ky][kx]) or, for the direct convolution, tap by tap ([ky][kx][c]).
      auto transposed_strips = [&](bool by_tap) -> float* {
        const float* wd = dense_weights(c, w, owned_);
        float* packed = owned_.alloc(G * strip_floats);
        for (size_t g = 0; g < G; ++g) {
          if (by_tap)
            f32_conv_t_pack(Cog, Cig, kh, kw, tc.nr, wd + g * Cog * K, packed + g * strip_floats);
          else
            f32_gemm_t_pack(Cog, K, tc.nr, wd + g * Cog * K, packed + g * strip_floats);
        }
        return packed;
      };
      if (dense && f32_gemm_t_preferred(tc, Cog, P)) {
        // Small images: transposed tiles (pixels broadcast, output channels in vectors), B read
        // in place (1x1) or from the whole [K, P] im2col (k x k; 49 x 4608 floats for ResNet-50).
        const float* packed = transposed_strips(false);
        if (!direct) scratch_bytes_ = std::max(scratch_bytes_, im2col_bytes);
        const size_t tfloats = f32_gemm_t_scratch(tc, P);
        thread_bytes_ = std::max(thread_bytes_, (tfloats + 16) * sizeof(float));
        const size_t tasks = std::min(strips, pool->threads());
        const size_t per = ceil_div(strips, tasks);
        step.stats.kernel = via + ks.gemm.t_name;
        step.fn = [=, this]() {
          each_group(f32(xi), f32(yi), [&](const float* B, float* C, size_t g) {
            const float* bg = bias ? bias + g * Cog : nullptr;
            pool->parallel_for(ceil_div(strips, per), [&](size_t t) {
              f32_gemm_t_strips(tc, Cog, K, packed + g * strip_floats, t * per,
                                std::min(strips, (t + 1) * per), B, P, P, bg, C, P,
                                gemm_scratch(tfloats), &mm);
            });
          });
          if (hswish) hswish_pass(N * Co * P);
        };
      } else if (dense && !direct && f32_conv_t_preferred(tc, geo, Cig, Cog)) {
        // k x k stride-1 convolutions of larger images: transposed tiles straight over a
        // zero-padded copy of the input, no unfold (f32_conv_t_*, measured: csrc/README.md).
        const float* packed = transposed_strips(true);
        const f32_conv_t_shape ps = f32_conv_t_padded(geo);
        scratch_bytes_ = std::max(scratch_bytes_, Cig * ps.plane * sizeof(float));
        auto offs = std::make_shared<std::vector<size_t>>(P);
        f32_conv_t_offsets(geo, offs->data());
        const size_t tfloats = f32_conv_t_scratch(tc);
        thread_bytes_ = std::max(thread_bytes_, (tfloats + 16) * sizeof(float));
        const size_t bands = ceil_div(P, f32_conv_t_band_pixels(P));
        step.stats.kernel = ks.gemm.t_ix_name;
        step.fn = [=, this]() {
          const float* xp = f32(xi);
          float* yp = f32(yi);
          float* xpad = scratch_;
          const size_t pad_tasks = std::min(Cig, 4 * pool->threads());
          const size_t pad_per = ceil_div(Cig, pad_tasks);
          for (size_t b = 0; b < N; ++b)
            for (size_t g = 0; g < G; ++g) {
              const float* xg = xp + (b * Ci + g * Cig) * H * W;
              pool->parallel_for(ceil_div(Cig, pad_per), [&](size_t t) {
                f32_conv_t_pad(geo, t * pad_per, std::min(Cig, (t + 1) * pad_per), xg, xpad);
              });
              // One task per (strip, band), a strip's bands in a row (its weights stay hot).
              pool->parallel_for(strips * bands, [&](size_t t) {
                const size_t s = t / bands, band = t % bands;
                f32_conv_t_run(tc, geo, Cig, Cog, packed + g * strip_floats, s, s + 1, band,
                               band + 1, xpad, offs->data(), bias ? bias + g * Cog : nullptr,
                               yp + (b * Co + g * Cog) * P, P, gemm_scratch(tfloats), &mm);
              });
            }
          if (hswish) hswish_pass(N * Co * P);
        };
      } else if (dense) {
        const float* wd = dense_weights(c, w, owned_);
        const size_t mr = ks.gemm.mr;
        const size_t panel_floats = mr * (K + 1), panels = ceil_div(Cog, mr);
        float* packed = owned_.alloc(G * panels * panel_floats);
        for (size_t g = 0; g < G; ++g)
          f32_gemm_pack(Cog, K, mr, wd + g * Cog * K, bias ? bias + g * Cog : nullptr,
                        packed + g * panels * panel_floats);
        // One blocked GEMM per group (f32_gemm_blocked): B packed in strips once per block and
        // reused by every panel; k x k convolutions unfold straight into those strips.
        const f32_gemm_blocking bl = f32_gemm_choose_blocking(ks.gemm.packed.fn, ks.gemm.gemm.fn,
                                                              mr, ks.gemm.nr, Cog, K, P, direct);
        const f32_gemm_split split = f32_gemm_split_tasks(bl, Cog, P, pool->threads());
        thread_bytes_ = std::max(thread_bytes_, blocked_scratch_bytes(bl));
        const auto unfold = ks.gemm.im2col_packed.fn;
        step.stats.kernel = (direct ? "" : std::string(ks.gemm.im2col_packed.name) + " + ") +
                            std::string(bl.pack ? ks.gemm.packed.name : ks.gemm.gemm.name);
        step.fn = [=, this]() {
          const float* xp = f32(xi);
          float* yp = f32(yi);
          for (size_t b = 0; b < N; ++b)
            for (size_t g = 0; g < G; ++g) {
              const float* xg = xp + (b * Ci + g * Cig) * H * W;
              f32_gemm_operand op;
              if (direct) {
                op.b = xg;
                op.ldb = P;
              } else {
                op.geo = &geo;
                op.x = xg;
                op.unfold = unfold;
              }
              run_blocked(pool, bl, split, Cog, K, P, packed + g * panels * panel_floats,
                          panel_floats, op, yp + (b * Co + g * Cog) * P, &mm);
            }
          if (hswish) hswish_pass(N * Co * P);
        };
      } else if (w.encoding == Encoding::kBsr) {
        const BsrView sp = bsr_view(w);
        if (Cog % sp.block)
          c.fail("block-sparse block does not divide the output channels of a group");
        const size_t bi = sp.block == 1 ? 0 : sp.block == 2 ? 1 : 2;
        const auto kern = ks.spmm.by_block[bi];
        step.stats.kernel = via + kern.name;
        const size_t brows = Cog / sp.block, tile = ks.spmm.tile;
        const size_t threads = pool->threads();
        // Work split: wide layers split their pixels (each thread reads its part of x; on one
        // thread two chunks measured faster than one at 56x56 and 112x112), narrow ones (7x7,
        // 14x14) their output rows, or run as one task on one thread (a pixel chunk would cost
        // the kernel a partial tile, i.e. one more pass over the weights).
        const bool by_pixels = P >= 8 * tile * threads;
        const size_t pc = by_pixels ? ceil_div(ceil_div(P, threads * 2), tile) * tile : P;
        const size_t pchunks = ceil_div(P, pc);
        const size_t rsplit = threads > 1 && !by_pixels ? std::min(brows, 2 * threads) : 1;
        const size_t rc = ceil_div(brows, rsplit);
        if (direct && G == 1 && !hswish)
          step.sparse = std::make_shared<SparseConvPlan>(
              SparseConvPlan{sp, kern, bias, mm, N, Ci, Co, P, xi, yi});
        step.fn = [=, this]() {
          each_group(f32(xi), f32(yi), [&](const float* B, float* C, size_t g) {
            pool->parallel_for(pchunks * rsplit, [&](size_t t) {
              const size_t p0 = (t % pchunks) * pc, r0 = (t / pchunks) * rc;
              if (r0 >= brows) return;
              const size_t rows = std::min(rc, brows - r0);
              const size_t gr = g * brows + r0;
              kern.fn(std::min(pc, P - p0), rows, sp.row_ptr + gr, sp.col_idx, sp.values,
                      bias ? bias + gr * sp.block : nullptr, B + p0, P, C + r0 * sp.block * P + p0,
                      P, &mm);
            });
          });
          if (hswish) hswish_pass(N * Co * P);
        };
      } else {
        const cb_weights cw = codebook_weights(w, Co, K);
        bool hoisted = false;  // decode once per call, then the dense GEMM of this ISA
#if defined(__x86_64__) || defined(_M_X64)
        hoisted = ks.cb.gemm.fn == cb_gemm_ukernel_6x16__avx2_fma && ks.gemm.mr == 6;
#endif
        if (!hoisted) {
          // The fused kernel (scalar reference, NEON): it decodes its panel once per pixel
          // chunk, which costs little next to the GEMM only when chunks are few.
          scratch_bytes_ = std::max(scratch_bytes_, im2col_bytes);
          const auto kern = ks.cb.gemm;
          const size_t mr = ks.cb.mr;
          step.stats.kernel = via + kern.name;
          step.fn = [=, this]() {
            constexpr size_t kChunk = 512;
            const size_t panels = ceil_div(Cog, mr), chunks = ceil_div(P, kChunk);
            each_group(f32(xi), f32(yi), [&](const float* B, float* C, size_t g) {
              pool->parallel_for(panels * chunks, [&](size_t t) {
                const size_t pi = t % panels, j = (t / panels) * kChunk;
                const size_t rows = std::min(mr, Cog - pi * mr);
                kern.fn(g * Cog + pi * mr, rows, std::min(kChunk, P - j), &cw, bias, B + j, P,
                        C + pi * mr * P + j, P, &mm);
              });
            });
            if (hswish) hswish_pass(N * Co * P);
          };
          steps_.push_back(std::move(step));
          return;
        }
#if defined(__x86_64__) || defined(_M_X64)
        if (f32_gemm_t_preferred(tc, Cog, P) && tc.nr == 16) {
          // Small images (7x7): the dense path's transposed tiles, each 16-row weight strip
          // decoded once per call into a per-thread buffer, B read in place (1x1) or from the
          // whole [K, P] im2col. Decoded 6-row panels under column tiles cost 1.3-1.4x the dense
          // layer here (a 49-pixel image is 3 tiles of 16 and a 1-pixel tail).
          if (!direct) scratch_bytes_ = std::max(scratch_bytes_, im2col_bytes);
          const size_t tfloats = f32_gemm_t_scratch(tc, P);
          thread_bytes_ = std::max(thread_bytes_, (tfloats + 16) * sizeof(float));
          const size_t per = ceil_div(strips, std::min(strips, pool->threads()));
          step.stats.kernel = via + "cb_gemm_decode_strip_16__avx2 + " + ks.gemm.t_name;
          step.fn = [=, this]() {
            each_group(f32(xi), f32(yi), [&](const float* B, float* C, size_t g) {
              pool->parallel_for(ceil_div(strips, per), [&](size_t t) {
                thread_local std::vector<float> strip;
                strip.resize(K * tc.nr);
                for (size_t s = t * per; s < std::min(strips, (t + 1) * per); ++s) {
                  const size_t row0 = s * tc.nr, rows = std::min(tc.nr, Cog - row0);
                  cb_gemm_decode_strip_16__avx2(g * Cog + row0, rows, &cw, strip.data());
                  f32_gemm_t_strips(tc, rows, K, strip.data(), 0, 1, B, P, P,
                                    bias ? bias + g * Cog + row0 : nullptr, C + row0 * P, P,
                                    gemm_scratch(tfloats), &mm);
                }
              });
            });
            if (hswish) hswish_pass(N * Co * P);
          };
          steps_.push_back(std::move(step));
          return;
        }
#endif
        // Each panel of MR rows is decoded once per call into a per-thread buffer of at most
        // kBlockBytes (never the whole dense matrix) and multiplied by the blocked dense GEMM of
        // this ISA (f32_gemm_blocked, the dense path's driver): decoding per pixel chunk cost as
        // much as the GEMM itself on deep layers with few pixels.
        const size_t mr = ks.gemm.mr;
        const size_t panel_floats = mr * (K + 1), panels = ceil_div(Cog, mr);
        // A block of decoded panels per task, at most 1 MiB (1 % of ResNet-50's dense weights;
        // it streams from L2 / L3 like the dense packed weights do); one block per thread when
        // it fits, so each weight is decoded once per call.
        constexpr size_t kBlockBytes = 1024 * 1024;
        const size_t fit = std::max<size_t>(1, kBlockBytes / (panel_floats * sizeof(float)));
        const size_t threads = pool->threads();
        const size_t block = std::max<size_t>(1, std::min(fit, ceil_div(panels, threads)));
        const size_t blocks = ceil_div(panels, block);
        // k x k convolutions: each task unfolds its blocks of B straight into packed strips (as
        // the dense path does) instead of a full [K, P] im2col matrix, unless that matrix is
        // small (deep layers) or many blocks would each redo the unfold.
        const bool unfold_chunks = !direct && K * P * sizeof(float) > 1024 * 1024 && blocks <= 4;
        if (!direct && !unfold_chunks) scratch_bytes_ = std::max(scratch_bytes_, im2col_bytes);
        const f32_gemm_blocking bl = f32_gemm_choose_blocking(
            ks.gemm.packed.fn, ks.gemm.gemm.fn, mr, ks.gemm.nr, Cog, K, P, !unfold_chunks);
        thread_bytes_ = std::max(
            thread_bytes_, (block * panel_floats + 8) * sizeof(float) + blocked_scratch_bytes(bl));
        // The AVX2 codebook kernel's two halves, the decode hoisted out of the pixel loop: its
        // vectorised 4-bit panel decode, then the f32-gemm microkernel of this ISA (6 rows).
        const auto decode_fn = [](size_t m0, size_t rows, const cb_weights* cw, const float* bias,
                                  float* panel) {
#if defined(__x86_64__) || defined(_M_X64)
          cb_gemm_decode_panel_6__avx2(m0, rows, cw, bias, panel);
#else
          cb_gemm_decode_panel(m0, rows, 6, cw, bias, panel);
#endif
        };
        const std::string decode_name = ks.cb.gemm.name;
        const std::string gemm_name = bl.pack ? ks.gemm.packed.name : ks.gemm.gemm.name;
        const auto unfold = ks.gemm.im2col_packed.fn;
        step.stats.kernel =
            (unfold_chunks ? std::string(ks.gemm.im2col_packed.name) + " + " : via) + decode_name +
            " + " + gemm_name;
        step.fn = [=, this]() {
          const float* xp = f32(xi);
          float* yp = f32(yi);
          const size_t floats = f32_gemm_blocked_scratch(bl);
          for (size_t b = 0; b < N; ++b)
            for (size_t g = 0; g < G; ++g) {
              f32_gemm_operand op;
              if (unfold_chunks) {
                op.geo = &geo;
                op.x = xp + (b * Ci + g * Cig) * H * W;
                op.unfold = unfold;
              } else {
                op.b = operand(xp, b, g);
                op.ldb = P;
              }
              float* C = yp + (b * Co + g * Cog) * P;
              pool->parallel_for(blocks, [&](size_t t) {
                const size_t p0 = t * block, p1 = std::min(panels, p0 + block);
                thread_local std::vector<float> dec;
                dec.resize((p1 - p0) * panel_floats + 8);  // + slack for the vector decode
                for (size_t pi = p0; pi < p1; ++pi)
                  decode_fn(g * Cog + pi * mr, std::min(mr, Cog - pi * mr), &cw, bias,
                            dec.data() + (pi - p0) * panel_floats);
                // Panels [p0, p1) of this group: rows from p0 * mr on, into C from that row.
                f32_gemm_blocked(bl, Cog - p0 * mr, K, dec.data(), panel_floats, 0, p1 - p0, op, 0,
                                 P, C + p0 * mr * P, P, gemm_scratch(floats), &mm);
              });
            }
          if (hswish) hswish_pass(N * Co * P);
        };
      }
    }
  } else if (n.op == "linear") {
    const ValueDef& x = c.in(0);
    const ValueDef& w = c.in(1);
    c.activation_value(x, DType::kF32, "input");
    if (w.kind != ValueKind::kConstant || w.shape.size() != 2)
      c.fail("weight must be a rank-2 constant [O, K]");
    const size_t O = w.shape[0], K = w.shape[1];
    if (x.shape.size() != 2 || size_t(x.shape[1]) != K)
      c.fail("input " + shape_str(x.shape) + " does not match weight " + shape_str(w.shape));
    const size_t N = x.shape[0];
    c.expect_shape(y, {int64_t(N), int64_t(O)});
    c.activation_value(y, DType::kF32, "output");
    const float* bias = n.inputs.size() > 2 ? c.dense_f32(c.in(2), O, "bias") : nullptr;
    bool hswish = false;
    const f32_minmax mm = c.act(&hswish);
    if (w.encoding == Encoding::kDense || w.encoding == Encoding::kInt8) {
      const float* wd = dense_weights(c, w, owned_);
      const auto gemv = ks.gemm.gemv;
      step.stats.kernel = gemv.name;
      step.fn = [=, this]() {
        const float* xp = f32(xi);
        float* yp = f32(yi);
        constexpr size_t kRows = 64;
        const size_t chunks = ceil_div(O, kRows);
        pool->parallel_for(N * chunks, [&](size_t t) {
          const size_t b = t / chunks, r0 = (t % chunks) * kRows;
          gemv.fn(std::min(kRows, O - r0), K, wd + r0 * K, bias ? bias + r0 : nullptr, xp + b * K,
                  yp + b * O + r0, &mm);
        });
        if (hswish) hswish_pass(N * O);
      };
    } else {
      // Sparse / codebook kernels work on [K, pixels]: the batch becomes the pixel axis.
      if (N > 1) scratch_bytes_ = std::max(scratch_bytes_, (K + O) * N * sizeof(float));
      std::function<void(const float*, float*)> core;
      if (w.encoding == Encoding::kBsr) {
        const BsrView sp = bsr_view(w);
        const auto kern = ks.spmm.by_block[sp.block == 1 ? 0 : sp.block == 2 ? 1 : 2];
        step.stats.kernel = kern.name;
        const size_t brows = O / sp.block;
        core = [=](const float* xt, float* yt) {
          const size_t tasks = std::min(brows, pool->threads() * 4);
          const size_t rc = ceil_div(brows, tasks);
          pool->parallel_for(tasks, [&](size_t t) {
            const size_t r0 = t * rc;
            if (r0 >= brows) return;
            kern.fn(N, std::min(rc, brows - r0), sp.row_ptr + r0, sp.col_idx, sp.values,
                    bias ? bias + r0 * sp.block : nullptr, xt, N, yt + r0 * sp.block * N, N, &mm);
          });
        };
      } else {
        const cb_weights cw = codebook_weights(w, O, K);
        const auto kern = ks.cb.gemm;
        const size_t mr = ks.cb.mr;
        step.stats.kernel = kern.name;
        core = [=](const float* xt, float* yt) {
          pool->parallel_for(ceil_div(O, mr), [&](size_t pi) {
            kern.fn(pi * mr, std::min(mr, O - pi * mr), N, &cw, bias, xt, N, yt + pi * mr * N, N,
                    &mm);
          });
        };
      }
      step.fn = [=, this]() {
        const float* xp = f32(xi);
        float* yp = f32(yi);
        if (N == 1) {
          core(xp, yp);
        } else {
          float* xt = scratch_;
          float* yt = scratch_ + K * N;
          for (size_t b = 0; b < N; ++b)
            for (size_t k = 0; k < K; ++k) xt[k * N + b] = xp[b * K + k];
          core(xt, yt);
          for (size_t b = 0; b < N; ++b)
            for (size_t o = 0; o < O; ++o) yp[b * O + o] = yt[o * N + b];
        }
        if (hswish) hswish_pass(N * O);
      };
    }
  } else if (n.op == "channel_affine") {
    const ValueDef& x = c.in(0);
    c.activation_value(x, DType::kF32, "input");
    if (x.shape.size() < 2) c.fail("input must be [N, C, ...]");
    c.expect_shape(y, x.shape);
    c.activation_value(y, DType::kF32, "output");
    const size_t N = x.shape[0], C = x.shape[1], inner = x.numel() / (N * C);
    const float* scale = c.dense_f32(c.in(1), C, "scale");
    const float* shift = c.dense_f32(c.in(2), C, "shift");
    bool hswish = false;
    const f32_minmax mm = c.act(&hswish);
    const auto kern = ks.elementwise.affine;
    step.stats.kernel = kern.name;
    step.fn = [=, this]() {
      const float* xp = f32(xi);
      float* yp = f32(yi);
      pool->parallel_for(N * C, [&](size_t t) {
        const size_t ch = t % C;
        kern.fn(1, inner, xp + t * inner, scale + ch, shift + ch, yp + t * inner, &mm);
      });
      if (hswish) hswish_pass(N * C * inner);
    };
  } else if (n.op == "relu" || n.op == "relu6" || n.op == "hardswish") {
    c.activation_value(c.in(0), DType::kF32, "input");
    c.expect_shape(y, c.in(0).shape);
    c.activation_value(y, DType::kF32, "output");
    const size_t total = y.numel();
    if (n.op == "hardswish") {
      const auto kern = ks.elementwise.hswish;
      step.stats.kernel = kern.name;
      step.fn = [=, this]() {
        const float* xp = f32(xi);
        float* yp = f32(yi);
        elementwise_split(total, [=](size_t b, size_t len) { kern.fn(len, xp + b, yp + b); });
      };
    } else {
      const f32_minmax mm{0.0f, n.op == "relu6" ? 6.0f : kInf};
      const auto kern = ks.elementwise.clamp;
      step.stats.kernel = kern.name;
      step.fn = [=, this]() {
        const float* xp = f32(xi);
        float* yp = f32(yi);
        elementwise_split(total, [=](size_t b, size_t len) { kern.fn(len, xp + b, yp + b, &mm); });
      };
    }
  } else if (n.op == "add") {
    c.activation_value(c.in(0), DType::kF32, "input");
    const ValueDef& bv = c.in(1);
    if (bv.dtype != DType::kF32 || bv.shape != c.in(0).shape ||
        (bv.kind == ValueKind::kConstant && bv.encoding != Encoding::kDense))
      c.fail("inputs must be f32 of the same shape");
    c.expect_shape(y, c.in(0).shape);
    c.activation_value(y, DType::kF32, "output");
    bool hswish = false;
    const f32_minmax mm = c.act(&hswish);
    const size_t total = y.numel();
    const uint32_t bi = n.inputs[1];
    const auto kern = ks.elementwise.add;
    step.stats.kernel = kern.name;
    step.fn = [=, this]() {
      const float* ap = f32(xi);
      const float* bp = f32(bi);
      float* yp = f32(yi);
      elementwise_split(total,
                        [=](size_t b, size_t len) { kern.fn(len, ap + b, bp + b, yp + b, &mm); });
      if (hswish) hswish_pass(total);
    };
  } else if (n.op == "concat") {
    const size_t rank = y.shape.size();
    int64_t axis = c.integer("axis", 1);
    if (axis < 0) axis += int64_t(rank);
    if (axis < 0 || size_t(axis) >= rank) c.fail("axis out of range");
    std::vector<int64_t> expect = c.in(0).shape;
    if (expect.size() != rank) c.fail("inputs must have the output's rank");
    expect[size_t(axis)] = 0;
    std::vector<size_t> chunk_bytes;
    std::vector<uint32_t> ins;
    size_t outer = 1;
    for (size_t d = 0; d < size_t(axis); ++d) outer *= size_t(y.shape[d]);
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      const ValueDef& v = c.in(i);
      if (v.dtype != y.dtype || v.shape.size() != rank ||
          (v.kind == ValueKind::kConstant && v.encoding != Encoding::kDense))
        c.fail("input '" + v.name + "' does not match the output's dtype / rank");
      for (size_t d = 0; d < rank; ++d)
        if (d != size_t(axis) && v.shape[d] != c.in(0).shape[d])
          c.fail("input shapes differ off the axis");
      expect[size_t(axis)] += v.shape[size_t(axis)];
      chunk_bytes.push_back(v.numel() / outer * dtype_size(v.dtype));
      ins.push_back(n.inputs[i]);
    }
    c.expect_shape(y, expect);
    if (y.kind == ValueKind::kConstant) c.fail("output is a constant");
    step.stats.kernel = "memcpy";
    step.fn = [=, this]() {
      uint8_t* yp = static_cast<uint8_t*>(buf(yi));
      for (size_t o = 0; o < outer; ++o)
        for (size_t i = 0; i < ins.size(); ++i) {
          std::memcpy(yp, static_cast<const uint8_t*>(buf(ins[i])) + o * chunk_bytes[i],
                      chunk_bytes[i]);
          yp += chunk_bytes[i];
        }
    };
  } else if (n.op == "max_pool2d" || n.op == "avg_pool2d") {
    const ValueDef& x = c.in(0);
    c.activation_value(x, DType::kF32, "input");
    if (x.shape.size() != 4) c.fail("input must be [N, C, H, W]");
    const auto [kh, kw] = c.pair("kernel", {0, 0}, 1);
    const auto [sh, sw] = c.pair("stride", {kh, kw}, 1);
    const auto pad = c.padding();
    const bool ceil_mode = c.integer("ceil_mode", 0) != 0;
    const bool include_pad = c.integer("count_include_pad", 1) != 0;
    const int64_t H = x.shape[2], W = x.shape[3];
    auto out_size = [&](int64_t in, int64_t k, int64_t s, int64_t p0, int64_t p1) {
      const int64_t span = in + p0 + p1 - k;
      if (span < 0) c.fail("pooling window larger than the padded input");
      int64_t o = (span + (ceil_mode ? s - 1 : 0)) / s + 1;
      // As torch: the last window must start inside the input or the leading padding.
      if (ceil_mode && (o - 1) * s >= in + p0) --o;
      return o;
    };
    const int64_t Ho = out_size(H, kh, sh, pad[0], pad[2]),
                  Wo = out_size(W, kw, sw, pad[1], pad[3]);
    c.expect_shape(y, {x.shape[0], x.shape[1], Ho, Wo});
    c.activation_value(y, DType::kF32, "output");
    pool2d_geometry geo{size_t(H),      size_t(W),      size_t(Ho), size_t(Wo),     size_t(kh),
                        size_t(kw),     size_t(sh),     size_t(sw), size_t(pad[0]), size_t(pad[1]),
                        size_t(pad[2]), size_t(pad[3]), include_pad};
    const size_t planes = size_t(x.shape[0] * x.shape[1]);
    if (blocked_[xi]) {
      // A max pool inside a blocked region (ResNet-50's stem: core/layout.h).
      if (n.op != "max_pool2d" || !blocked_[yi] || planes % kNchwcBlock)
        c.fail("internal: not a channel-blocked max pool");
      const auto kern = ks.nchwc.maxpool;
      step.stats.kernel = kern.name;
      const size_t blocks = planes / kNchwcBlock;  // of every image: blocks never span images
      step.fn = [=, this]() {
        pool->parallel_for(blocks, [&](size_t t) { kern.fn(&geo, t, t + 1, f32(xi), f32(yi)); });
      };
    } else {
      const auto kern = n.op == "max_pool2d" ? ks.pool.max : ks.pool.avg;
      step.stats.kernel = kern.name;
      step.fn = [=, this]() {
        const float* xp = f32(xi);
        float* yp = f32(yi);
        pool->parallel_for(planes, [&](size_t t) {
          kern.fn(&geo, xp + t * geo.h * geo.w, yp + t * geo.ho * geo.wo);
        });
      };
    }
  } else if (n.op == "global_avg_pool") {
    const ValueDef& x = c.in(0);
    c.activation_value(x, DType::kF32, "input");
    if (x.shape.size() != 4) c.fail("input must be [N, C, H, W]");
    c.expect_shape(y, {x.shape[0], x.shape[1], 1, 1});
    c.activation_value(y, DType::kF32, "output");
    const size_t planes = size_t(x.shape[0] * x.shape[1]), pixels = size_t(x.shape[2] * x.shape[3]);
    if (blocked_[xi]) {
      // [N, C, 1, 1] has the same bytes in both layouts: a blocked input, an NCHW output.
      step.stats.kernel = "f32_nchwc_global_avgpool__scalar";
      step.fn = [=, this]() {
        f32_nchwc_global_avgpool__scalar(planes / kNchwcBlock, pixels, f32(xi), f32(yi));
      };
    } else {
      const auto kern = ks.pool.global_avg;
      step.stats.kernel = kern.name;
      step.fn = [=, this]() { kern.fn(planes, pixels, f32(xi), f32(yi)); };
    }
  } else if (n.op == "to_nchwc" || n.op == "from_nchwc") {
    // Inserted by the layout plan (core/layout.h), never read from a file.
    const ValueDef& x = c.in(0);
    const bool into = n.op == "to_nchwc";
    if (x.shape.size() != 4 || x.shape[1] % int64_t(kNchwcBlock) || blocked_[xi] == into ||
        blocked_[yi] != into)
      c.fail("internal: bad layout reorder");
    c.expect_shape(y, x.shape);
    const size_t images = size_t(x.shape[0]), blocks = size_t(x.shape[1]) / kNchwcBlock;
    const size_t pixels = size_t(x.shape[2] * x.shape[3]);
    const auto kern = into ? ks.nchwc.to_blocked : ks.nchwc.to_plain;
    const auto fn = kern.fn;
    step.stats.kernel = kern.name;
    const size_t rows = size_t(x.shape[2]), cols = size_t(x.shape[3]);
    // Each thread takes the share its consumer will read: back to NCHW, the GEMMs that follow
    // split pixels (so this splits rows, as the row-band steps before it do: in-process A/B at
    // 2 threads, MobileNetV2's 96 x 56x56 reorder 38.9 -> 29.7 us); into blocks, the blocked
    // layers split channel blocks (rows here were +0.9 us).
    const size_t chunks = into ? 1 : std::min(pool->threads(), rows);
    step.fn = [=, this]() {
      const size_t image = blocks * kNchwcBlock * pixels;
      pool->parallel_for(images * chunks * blocks, [&](size_t t) {
        const size_t b = t / (chunks * blocks), ch = t / blocks % chunks, blk = t % blocks;
        const size_t p0 = ch * rows / chunks * cols, p1 = (ch + 1) * rows / chunks * cols;
        fn(pixels, p0, p1, blk, blk + 1, f32(xi) + b * image, f32(yi) + b * image);
      });
    };
  } else if (n.op == "reshape") {
    const ValueDef& x = c.in(0);
    if (x.kind == ValueKind::kConstant) c.fail("reshaping a constant is not supported");
    if (x.numel() != y.numel() || x.dtype != y.dtype)
      c.fail("reshape " + shape_str(x.shape) + " -> " + shape_str(y.shape) +
             " changes the element count");
    if (c.has("shape")) {
      const auto s = c.ints("shape", {});
      if (s != y.shape) c.fail("attr 'shape' " + shape_str(s) + " differs from the output shape");
    }
    step.stats.kernel = "alias";
    step.fn = [] {};
  } else if (n.op == "softmax") {
    const ValueDef& x = c.in(0);
    c.activation_value(x, DType::kF32, "input");
    c.expect_shape(y, x.shape);
    c.activation_value(y, DType::kF32, "output");
    const int64_t rank = int64_t(x.shape.size());
    int64_t axis = c.integer("axis", -1);
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank) c.fail("axis out of range");
    size_t outer = 1, inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= size_t(x.shape[size_t(d)]);
    for (int64_t d = axis + 1; d < rank; ++d) inner *= size_t(x.shape[size_t(d)]);
    const size_t len = size_t(x.shape[size_t(axis)]);
    const auto kern = ks.elementwise.softmax;
    step.stats.kernel = kern.name;
    step.fn = [=, this]() { kern.fn(outer, len, inner, f32(xi), f32(yi)); };
  } else if (n.op == "quantize" || n.op == "dequantize") {
    const bool q = n.op == "quantize";
    const ValueDef& x = c.in(0);
    c.activation_value(x, q ? DType::kF32 : DType::kU8, "input");
    c.expect_shape(y, x.shape);
    c.activation_value(y, q ? DType::kU8 : DType::kF32, "output");
    const std::vector<double> sc = c.floats("scale");
    const std::vector<int64_t> zp =
        c.has("zero_point") ? c.ints("zero_point", {}) : std::vector<int64_t>(sc.size(), 0);
    const int64_t rank = int64_t(x.shape.size());
    int64_t axis = c.integer("axis", 1);
    if (axis < 0) axis += rank;
    if (sc.empty() || sc.size() != zp.size())
      c.fail("scale and zero_point need the same count (>= 1)");
    size_t outer = 1, channels = 1, inner = x.numel();
    if (sc.size() > 1) {
      if (axis < 0 || axis >= rank || size_t(x.shape[size_t(axis)]) != sc.size())
        c.fail("per-channel scale count " + std::to_string(sc.size()) + " does not match axis " +
               std::to_string(axis) + " of " + shape_str(x.shape));
      channels = sc.size();
      for (int64_t d = 0; d < axis; ++d) outer *= size_t(x.shape[size_t(d)]);
      inner = x.numel() / (outer * channels);
    }
    std::vector<float> scale(sc.begin(), sc.end());
    std::vector<int32_t> zero(zp.size());
    for (size_t i = 0; i < sc.size(); ++i) {
      if (!(std::isfinite(scale[i]) && scale[i] > 0.0f))
        c.fail("scale must be positive and finite");
      if (zp[i] < 0 || zp[i] > 255) c.fail("zero_point must be in 0..255");
      zero[i] = int32_t(zp[i]);
    }
    step.stats.kernel = q ? "f32_quantize_u8__scalar" : "u8_dequantize_f32__scalar";
    step.fn = [=, this]() {
      if (q)
        f32_quantize_u8__scalar(outer, channels, inner, f32(xi), scale.data(), zero.data(),
                                static_cast<uint8_t*>(buf(yi)));
      else
        u8_dequantize_f32__scalar(outer, channels, inner, static_cast<const uint8_t*>(buf(xi)),
                                  scale.data(), zero.data(), f32(yi));
    };
  } else {
    c.fail("op not implemented by the native runtime");
  }
  steps_.push_back(std::move(step));
}

// ---- conv -> depthwise fusion ------------------------------------------------------------------

void Runtime::mark_fused_pair(size_t i, const char* second_kernel) {
  steps_[i].stats.kernel += std::string(" -> ") + second_kernel + " (row bands)";
  steps_[i + 1].fn = [] {};
  steps_[i + 1].stats.kernel = "fused into " + steps_[i].stats.name;
}

std::vector<size_t> Runtime::fuse_conv_depthwise() {
  std::vector<size_t> fused;
  if (steps_.size() != model_.nodes.size()) return fused;  // one step per node, in order
  const std::vector<int> uses = value_uses(model_);
  // Pairs whose intermediate (per image) is at least half an L2 (measured, csrc/README.md: at
  // 14x14 and 7x7, where the 1x1's weights outweigh its output, bands made both layers slower),
  // in bands whose rows of it fill at most another half.
  constexpr size_t kMinBytes = size_t(512) << 10, kBandBytes = size_t(512) << 10;
  for (size_t i = 0; i + 1 < steps_.size(); ++i) {
    const std::shared_ptr<const BlockedConvPlan> a = steps_[i].blocked, b = steps_[i + 1].blocked;
    if (!a || !b || a->depthwise || !b->depthwise || b->x != a->y || uses[a->y] != 1) continue;
    const conv2d_geometry& ga = a->cp.g;
    const conv2d_geometry& gb = b->cp.g;
    const size_t co = a->cp.oc, rows_in = gb.h, cols = gb.w;
    if (ga.ho != rows_in || ga.wo != cols || co != b->cp.ic) continue;
    if (co * rows_in * cols * sizeof(float) < kMinBytes) continue;
    const size_t row_floats = co * cols;
    const BandShape shape = band_shape(gb.ho, gb.sh, gb.kh, row_floats * sizeof(float), kBandBytes);
    const size_t rows = shape.rows, cap = shape.cap;
    const size_t buf_floats = cap * row_floats;
    thread_bytes_ = std::max(thread_bytes_, (buf_floats + 16) * sizeof(float));
    ThreadPool* pool = pool_.get();
    // A rows [r0, r1) that depthwise output rows [oy, oe) read, within the image.
    auto a_rows = [gb, rows_in](size_t oy, size_t oe) {
      return band_input_rows(oy, oe, gb.sh, gb.pt, gb.kh, rows_in);
    };
    // Each task a contiguous run of output rows, band by band. A padded input (an RGB stem's
    // image) is padded by each task, only the rows its bands read, into a share of the scratch
    // of its own: no join before the bands, and no core reads rows the other padded.
    const size_t tasks = std::min(pool->threads(), gb.ho);
    std::vector<size_t> pad_row0(tasks), pad_rows(tasks), pad_at(tasks);
    size_t pad_floats = 0;
    for (size_t t = 0; t < tasks && a->padded; ++t) {
      const auto [a0, a1] = a_rows(t * gb.ho / tasks, (t + 1) * gb.ho / tasks);
      pad_row0[t] = size_t(a0) * ga.sh;  // the padded rows those A rows read
      pad_rows[t] = size_t(a1 - 1) * ga.sh + (ga.kh - 1) * ga.dh + 1 - pad_row0[t];
      pad_at[t] = pad_floats;
      pad_floats += a->cp.ic * pad_rows[t] * a->cp.wp;
    }
    scratch_bytes_ = std::max(scratch_bytes_, pad_floats * sizeof(float));
    const uint32_t xa = a->x, yb = b->y;
    steps_[i].fn = [=, this]() {
      const size_t n = a->n, ci = a->cp.ic, cb = b->cp.oc;
      const size_t blocks_a = ci / a->in_block, blocks_b = cb / kNchwcBlock;
      const size_t groups = ceil_div(co, kNchwcBlock * kNchwcGroupBlocks);
      const size_t taps_b = gb.kh * gb.kw, pb = gb.ho * gb.wo;
      for (size_t img = 0; img < n; ++img) {
        const float* image = f32(xa) + img * ci * ga.h * ga.w;
        float* y = f32(yb) + img * cb * pb;
        // The A rows two bands share are moved to the buffer's front, not recomputed (only a
        // task's first band computes the rows it shares with the task before it).
        pool->parallel_for(tasks, [&](size_t t) {
          const size_t oy_begin = t * gb.ho / tasks, oy_end = (t + 1) * gb.ho / tasks;
          float* buf = gemm_scratch(buf_floats);
          const float* x = image;
          f32_nchwc_conv_params pa = a->cp;
          pa.g.ho = cap;  // the buffer's block stride: cap rows
          if (a->padded) {
            const size_t r0 = pad_row0[t], nr = pad_rows[t];
            f32_nchwc_pad(ga, 0, blocks_a, image, scratch_ + pad_at[t], a->in_block, r0, r0 + nr);
            // Blocks nr rows apart; read through a pointer r0 rows before the share, so that
            // the pixel offsets stay the whole padded image's.
            pa.hp = nr;
            x = scratch_ + pad_at[t] - r0 * a->cp.wp * a->in_block;
          }
          const size_t blk_floats = cap * cols * kNchwcBlock, row_floats = cols * kNchwcBlock;
          auto band = [&](size_t oy, size_t oe, ptrdiff_t r0, ptrdiff_t r1, size_t keep) {
            pa.offs = a->cp.offs + size_t(r0) * cols;
            for (size_t grp = 0; grp < groups; ++grp)
              a->conv.fn(&pa, x, a->packed, a->bias, buf, grp, keep * cols, size_t(r1 - r0) * cols,
                         &a->mm);
            // The depthwise layer reads rows [r0, r1) through a pointer r0 rows before the
            // buffer's start, so that its row arithmetic stays the image's.
            for (size_t blk = 0; blk < blocks_b; ++blk)
              b->dwconv.fn(&b->cp, buf + blk * blk_floats - size_t(r0) * row_floats,
                           b->packed + blk * taps_b * kNchwcBlock,
                           b->bias != nullptr ? b->bias + blk * kNchwcBlock : nullptr,
                           y + blk * pb * kNchwcBlock, 0, 1, oy * gb.wo, oe * gb.wo, &b->mm);
          };
          walk_bands(oy_begin, oy_end, rows, a_rows, buf, co / kNchwcBlock, blk_floats, row_floats,
                     band);
        });
      }
    };
    mark_fused_pair(i, b->dwconv.name);
    fused.push_back(i);
    ++i;
  }
  return fused;
}

// ---- NCHW block-sparse 1x1 -> depthwise fusion -------------------------------------------------

std::vector<size_t> Runtime::fuse_spmm_depthwise() {
  std::vector<size_t> fused;
  if (steps_.size() != model_.nodes.size()) return fused;
  const std::vector<int> uses = value_uses(model_);
  // Only intermediates larger than both cores' L2 caches together (sparse MobileNetV2's
  // features.2: 4.8 MB), which otherwise go to L3 / DRAM and back; bands of at most half an L2.
  // Down to half an L2 (features.3-7's 0.6-1.8 MB too) measured 1.05x slower overall: the bands'
  // short SpMM runs and per-channel depthwise calls cost more than storing the intermediate
  // (csrc/README.md).
  constexpr size_t kMinBytes = size_t(2) << 20, kBandBytes = size_t(512) << 10;
  for (size_t i = 0; i + 1 < steps_.size(); ++i) {
    const std::shared_ptr<const SparseConvPlan> a = steps_[i].sparse;
    const std::shared_ptr<const ChwDwPlan> b = steps_[i + 1].chw_dw;
    if (!a || !b || b->x != a->y || uses[a->y] != 1 || a->co != b->c) continue;
    if (a->co * a->pixels * sizeof(float) < kMinBytes || a->pixels != b->h * b->w) continue;
    const f32_dwconv_params& prm = b->prm;
    const size_t cols = b->w, row_floats = a->co * cols;
    const size_t reach = (prm.kh - 1) * prm.dh + 1;
    const BandShape shape =
        band_shape(b->ho, prm.sh, reach, row_floats * sizeof(float), kBandBytes);
    const size_t rows = shape.rows, cap = shape.cap;
    const size_t buf_floats = cap * row_floats;
    thread_bytes_ = std::max(thread_bytes_, (buf_floats + 16) * sizeof(float));
    // Input rows [r0, r1) that output rows [oy, oe) read, within the image.
    auto in_rows = [b, reach](size_t oy, size_t oe) {
      return band_input_rows(oy, oe, b->prm.sh, b->pt, reach, b->h);
    };
    ThreadPool* pool = pool_.get();
    const size_t tasks = std::min(pool->threads(), b->ho);
    const size_t brows = a->co / a->sp.block;
    steps_[i].fn = [=, this]() {
      const size_t plane_in = a->pixels, plane_out = b->ho * b->wo;
      for (size_t img = 0; img < a->n; ++img) {
        const float* x = f32(a->x) + img * a->ci * plane_in;
        float* y = f32(b->y) + img * b->c * plane_out;
        // Each task a contiguous run of output rows, band by band; the input rows two bands
        // share are moved to the buffer's front, not recomputed.
        pool->parallel_for(tasks, [&](size_t t) {
          const size_t oy_begin = t * b->ho / tasks, oy_end = (t + 1) * b->ho / tasks;
          float* buf = gemm_scratch(buf_floats);
          auto band = [&](size_t oy, size_t oe, ptrdiff_t r0, ptrdiff_t r1, size_t keep) {
            const size_t fresh = size_t(r1 - r0) - keep;
            if (fresh > 0)
              a->kern.fn(fresh * cols, brows, a->sp.row_ptr, a->sp.col_idx, a->sp.values, a->bias,
                         x + (size_t(r0) + keep) * cols, plane_in, buf + keep * cols, cap * cols,
                         &a->mm);
            // The band's planes are cap rows apart: one call per channel, each reading its
            // rows [r0, r1) as an image whose top padding is what remains of the layer's.
            const size_t pad_top =
                size_t(std::max<ptrdiff_t>(0, ptrdiff_t(b->pt) - ptrdiff_t(oy * prm.sh)));
            for (size_t ch = 0; ch < b->c; ++ch)
              b->kern.fn(1, size_t(r1 - r0), cols, buf + ch * cap * cols, pad_top, b->pl, oe - oy,
                         b->wo, b->weights + ch * prm.kh * prm.kw,
                         b->bias != nullptr ? b->bias + ch : nullptr,
                         y + ch * plane_out + oy * b->wo, &prm);
          };
          walk_bands(oy_begin, oy_end, rows, in_rows, buf, a->co, cap * cols, cols, band);
        });
      }
    };
    mark_fused_pair(i, b->kern.name);
    fused.push_back(i);
    ++i;
  }
  return fused;
}

}  // namespace edgefit
