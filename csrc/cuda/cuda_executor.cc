// CudaRuntime: per-node preparation (shape checks as strict as the CPU executor's where a kernel
// relies on them, weight upload, kernel choice) and the run loop on one stream. Every activation
// gets its own device buffer (no liveness reuse yet); reshape aliases its input.
#include "cuda/cuda_executor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/node_context.h"
#include "core/weight_decode.h"

namespace edgefit {

namespace {

using node_context::kInf;
using Ctx = node_context::NodeCtx;

void check(int err, const std::string& what) {
  if (err != 0) throw CudaError("CUDA: " + what + ": " + cuda::error_string(err));
}

}  // namespace

CudaRuntime::CudaRuntime(const std::string& path) : CudaRuntime(load_model(path)) {}

CudaRuntime::CudaRuntime(Model model) : model_(std::move(model)) {
  if (cuda::device_count() == 0)
    throw CudaError("no CUDA device: cudaGetDeviceCount found none (is the NVIDIA driver loaded?)");
  try {
    check(cuda::stream_create(&stream_), "creating the stream");
    const size_t nv = model_.values.size();
    dev_.assign(nv, nullptr);
    for (size_t i = 0; i < nv; ++i) {
      const ValueDef& v = model_.values[i];
      if (v.kind == ValueKind::kConstant) continue;
      if (v.dtype != DType::kF32 && v.dtype != DType::kU8)
        throw LoadError("value '" + v.name + "' has dtype " + dtype_name(v.dtype) +
                        " (activations are f32 or u8)");
    }
    for (uint32_t i : model_.inputs) {
      const ValueDef& v = model_.values[i];
      inputs_.push_back({v.name, v.shape, v.dtype});
      dev_[i] = alloc(v.numel() * dtype_size(v.dtype));
    }
    for (const NodeDef& n : model_.nodes) prepare_node(n);
    if (workspace_floats_ != 0)
      workspace_ = static_cast<float*>(alloc(workspace_floats_ * sizeof(float)));
    size_t pinned = 0;
    for (const auto& s : inputs_) in_off_.push_back(pinned), pinned += (s.bytes() + 63) / 64 * 64;
    for (uint32_t o : model_.outputs) {
      const ValueDef& v = model_.values[o];
      outputs_.push_back({v.name, v.shape, v.dtype});
      out_off_.push_back(pinned);
      pinned += (outputs_.back().bytes() + 63) / 64 * 64;
    }
    check(cuda::malloc_pinned(&pinned_, std::max<size_t>(pinned, 64)), "pinned host buffers");
    check(cuda::stream_synchronize(stream_), "uploading the weights");
  } catch (...) {
    release();  // no destructor runs for a throwing constructor
    throw;
  }
}

CudaRuntime::~CudaRuntime() { release(); }

void CudaRuntime::release() {
  for (void* p : allocations_) cuda::free_device(p);
  allocations_.clear();
  if (pinned_ != nullptr) cuda::free_pinned(pinned_);
  pinned_ = nullptr;
  if (stream_ != nullptr) cuda::stream_destroy(stream_);
  stream_ = nullptr;
}

void* CudaRuntime::alloc(size_t bytes) {
  void* p = nullptr;
  check(cuda::malloc_device(&p, std::max<size_t>(bytes, 4)),
        "allocating " + std::to_string(bytes) + " bytes");
  allocations_.push_back(p);
  device_bytes_ += bytes;
  return p;
}

const void* CudaRuntime::upload(const void* host, size_t bytes) {
  void* p = alloc(bytes);
  // Synchronous: the host source may be a temporary (decoded int8 weights).
  check(cuda::copy_to_device(p, host, bytes, stream_), "uploading weights");
  check(cuda::stream_synchronize(stream_), "uploading weights");
  return p;
}

const float* CudaRuntime::upload_weight_f32(const ValueDef& w) {
  if (w.encoding == Encoding::kDense) {
    if (w.dtype != DType::kF32) throw LoadError("'" + w.name + "': dense weights must be f32");
    return static_cast<const float*>(upload(w.blobs[0].data, w.numel() * 4));
  }
  std::vector<float> dense(w.rows() * w.cols());
  decode_weights_f32(w, dense.data());
  return static_cast<const float*>(upload(dense.data(), dense.size() * 4));
}

cb_weights CudaRuntime::upload_codebook(const ValueDef& w, size_t rows, size_t k) {
  cb_weights d = codebook_weights(w, rows, k);  // host pointers into the artifact
  const size_t table_floats = codebook_view(w).groups * (size_t(1) << d.bits);
  d.packed = static_cast<const uint8_t*>(upload(d.packed, rows * d.row_bytes));
  d.table = static_cast<const float*>(upload(d.table, table_floats * sizeof(float)));
  d.group = static_cast<const int32_t*>(upload(d.group, rows * 4));
  d.row_scale = static_cast<const float*>(upload(d.row_scale, rows * 4));
  return d;
}

const float* CudaRuntime::upload_dense(uint32_t value, size_t numel, const char* what,
                                       const NodeDef& n) {
  const ValueDef& v = model_.values[value];
  if (v.kind != ValueKind::kConstant || v.encoding != Encoding::kDense || v.dtype != DType::kF32 ||
      v.numel() != numel)
    throw LoadError("node '" + n.name + "': " + what + " '" + v.name +
                    "' must be a dense f32 constant of " + std::to_string(numel) + " elements");
  return static_cast<const float*>(upload(v.blobs[0].data, numel * 4));
}

void CudaRuntime::stage_inputs(const std::vector<const void*>& inputs) {
  if (inputs.size() != inputs_.size()) throw std::invalid_argument("wrong number of inputs");
  uint8_t* pin = static_cast<uint8_t*>(pinned_);
  for (size_t i = 0; i < inputs_.size(); ++i) {
    std::memcpy(pin + in_off_[i], inputs[i], inputs_[i].bytes());
    check(
        cuda::copy_to_device(dev_[model_.inputs[i]], pin + in_off_[i], inputs_[i].bytes(), stream_),
        "copying input '" + inputs_[i].name + "'");
  }
}

void CudaRuntime::run(const std::vector<const void*>& inputs, const std::vector<void*>& outputs) {
  std::lock_guard<std::mutex> lock(mu_);
  if (outputs.size() != outputs_.size()) throw std::invalid_argument("wrong number of outputs");
  stage_inputs(inputs);
  uint8_t* pin = static_cast<uint8_t*>(pinned_);
  for (size_t s = 0; s < steps_.size(); ++s) check(steps_[s](), "node '" + infos_[s].name + "'");
  for (size_t i = 0; i < outputs_.size(); ++i)
    check(cuda::copy_to_host(pin + out_off_[i], dev_[model_.outputs[i]], outputs_[i].bytes(),
                             stream_),
          "copying output '" + outputs_[i].name + "'");
  check(cuda::stream_synchronize(stream_), "running the graph");
  for (size_t i = 0; i < outputs_.size(); ++i)
    std::memcpy(outputs[i], pin + out_off_[i], outputs_[i].bytes());
}

std::vector<double> CudaRuntime::profile(const std::vector<const void*>& inputs, int repeats) {
  std::lock_guard<std::mutex> lock(mu_);
  stage_inputs(inputs);
  struct Events {  // destroyed on every path out
    std::vector<cuda::event_t> e;
    ~Events() {
      for (cuda::event_t x : e) cuda::event_destroy(x);
    }
  } ev;
  for (size_t s = 0; s <= steps_.size(); ++s) {
    cuda::event_t e = nullptr;
    check(cuda::event_create(&e), "creating an event");
    ev.e.push_back(e);
  }
  std::vector<double> ms(steps_.size(), 0.0);
  for (int r = 0; r < repeats; ++r) {
    check(cuda::event_record(ev.e[0], stream_), "recording an event");
    for (size_t s = 0; s < steps_.size(); ++s) {
      check(steps_[s](), "node '" + infos_[s].name + "'");
      check(cuda::event_record(ev.e[s + 1], stream_), "recording an event");
    }
    check(cuda::stream_synchronize(stream_), "running the graph");
    for (size_t s = 0; s < steps_.size(); ++s) {
      float t = 0.0f;
      check(cuda::event_elapsed_ms(ev.e[s], ev.e[s + 1], &t), "reading an event");
      ms[s] += t;
    }
  }
  for (double& t : ms) t /= std::max(repeats, 1);
  return ms;
}

void CudaRuntime::prepare_node(const NodeDef& n) {
  Ctx c{model_, n};
  const uint32_t xi = n.inputs[0], yi = n.outputs[0];
  const ValueDef& y = c.out();
  CudaNodeInfo info{n.name, n.op, ""};
  std::function<int()> fn;
  cuda::stream_t st = stream_;
  // Output buffer (reshape aliases instead).
  if (n.op != "reshape") {
    if (y.kind == ValueKind::kConstant) c.fail("output is a constant");
    dev_[yi] = alloc(y.numel() * dtype_size(y.dtype));
  }
  auto hswish_after = [this, yi, st](std::function<int()> f, size_t total) {
    return [f, this, yi, st, total]() {
      const int e = f();
      return e != 0 ? e : cuda::f32_vhswish(total, f32(yi), f32(yi), st);
    };
  };

  if (n.op == "conv2d") {
    const ValueDef& x = c.in(0);
    const ValueDef& w = c.in(1);
    c.activation_value(x, DType::kF32, "tensor");
    c.activation_value(y, DType::kF32, "tensor");
    if (x.shape.size() != 4 || w.kind != ValueKind::kConstant || w.shape.size() != 4)
      c.fail("input must be [N, C, H, W] and the weight a rank-4 constant");
    const size_t N = x.shape[0], Ci = x.shape[1], H = x.shape[2], W = x.shape[3];
    const size_t Co = w.shape[0], Cig = w.shape[1], kh = w.shape[2], kw = w.shape[3];
    const int64_t groups = c.integer("groups", 1);
    if (groups < 1 || Ci % size_t(groups) || Co % size_t(groups) || Cig != Ci / size_t(groups))
      c.fail("groups do not fit the input and weight");
    const size_t G = size_t(groups), Cog = Co / G;
    const auto [sh, sw] = c.size_pair("stride", {1, 1});
    const auto [dh, dw] = c.size_pair("dilation", {1, 1});
    const auto pad = c.size_padding();
    const int64_t eh = int64_t(H + pad[0] + pad[2]) - int64_t(dh * (kh - 1)) - 1;
    const int64_t ew = int64_t(W + pad[1] + pad[3]) - int64_t(dw * (kw - 1)) - 1;
    if (eh < 0 || ew < 0) c.fail("kernel larger than the padded input");
    const size_t Ho = size_t(eh) / sh + 1, Wo = size_t(ew) / sw + 1, P = Ho * Wo;
    c.expect_shape(y, {int64_t(N), int64_t(Co), int64_t(Ho), int64_t(Wo)});
    const float* bias = n.inputs.size() > 2 ? upload_dense(n.inputs[2], Co, "bias", n) : nullptr;
    bool hswish = false;
    const f32_minmax mm = c.act(&hswish);
    const conv2d_geometry geo{H, W, Ho, Wo, kh, kw, sh, sw, pad[0], pad[1], dh, dw};
    const bool direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && pad[0] == 0 && pad[1] == 0 &&
                        pad[2] == 0 && pad[3] == 0;
    const size_t K = Cig * kh * kw;
    const bool depthwise = Cig == 1 && Cog == 1;
    // Codebook depthwise filters are tiny (C x kh x kw: 0.2 % of MobileNetV2's weight bytes), so
    // they are decoded once at load, as on the CPU; through cb_gemm every channel was its own
    // 1-row GEMM launch (MobileNetV2 4-bit on an H200: 57.5 ms, 18x PyTorch).
    if (w.encoding == Encoding::kDense || w.encoding == Encoding::kInt8 ||
        (depthwise && w.encoding == Encoding::kCodebook)) {
      const float* wd = upload_weight_f32(w);
      if (depthwise) {
        info.kernel = "cuda f32_dwconv2d";
        fn = [=]() { return cuda::f32_dwconv2d(N, Co, geo, wd, bias, f32(xi), f32(yi), mm, st); };
      } else {
        const size_t ws = cuda::f32_conv2d_workspace_floats(N, Ci, Co, G, geo);
        workspace_floats_ = std::max(workspace_floats_, ws);
        info.kernel =
            std::string(direct ? "cuda f32_conv2d (gemm" : "cuda f32_conv2d (implicit gemm") +
            (ws != 0 ? ", split K)" : ")");
        fn = [=]() {
          return cuda::f32_conv2d(N, Ci, Co, G, geo, wd, bias, f32(xi), f32(yi), mm, st, workspace_,
                                  workspace_floats_);
        };
      }
    } else if (w.encoding == Encoding::kBsr) {
      // The sparse kernel reads a [K, P] operand: x itself for 1x1, else im2col columns.
      float* cols = direct ? nullptr : static_cast<float*>(alloc(K * P * sizeof(float)));
      const BsrView sp = bsr_view(w);
      if (Cog % sp.block) c.fail("block-sparse block does not divide the group's channels");
      const size_t brows = Cog / sp.block, nblk = Co / sp.block;
      const int32_t* rp = static_cast<const int32_t*>(upload(sp.row_ptr, (nblk + 1) * 4));
      const int32_t* ci = static_cast<const int32_t*>(upload(sp.col_idx, sp.nnz_blocks * 4 + 4));
      const float* vals =
          static_cast<const float*>(upload(sp.values, sp.nnz_blocks * sp.block * 4 + 4));
      const uint32_t block = sp.block;
      info.kernel = std::string(direct ? "" : "cuda f32_im2col + ") + "cuda f32_spmm";
      fn = [=]() {
        for (size_t b = 0; b < N; ++b)
          for (size_t g = 0; g < G; ++g) {
            const float* xg = f32(xi) + (b * Ci + g * Cig) * H * W;
            if (!direct) {
              const int e = cuda::f32_im2col(geo, Cig, xg, cols, st);
              if (e != 0) return e;
            }
            const int e = cuda::f32_spmm(P, brows, block, rp + g * brows, ci, vals,
                                         bias ? bias + g * Cog : nullptr, direct ? xg : cols, P, 1,
                                         f32(yi) + (b * Co + g * Cog) * P, P, 1, mm, st);
            if (e != 0) return e;
          }
        return 0;
      };
    } else {
      // Codebook: decoded through the tables in shared memory, im2col gathered on the fly.
      const cb_weights cw = upload_codebook(w, Co, K);
      const size_t ws = cuda::cb_conv2d_workspace_floats(N, Ci, Co, G, geo);
      workspace_floats_ = std::max(workspace_floats_, ws);
      info.kernel = std::string("cuda cb_conv2d") + (ws != 0 ? " (split K)" : "");
      fn = [=]() {
        return cuda::cb_conv2d(N, Ci, G, geo, cw, bias, f32(xi), f32(yi), mm, st, workspace_,
                               workspace_floats_);
      };
    }
    if (hswish) fn = hswish_after(fn, N * Co * P);
  } else if (n.op == "linear") {
    const ValueDef& x = c.in(0);
    const ValueDef& w = c.in(1);
    c.activation_value(x, DType::kF32, "tensor");
    c.activation_value(y, DType::kF32, "tensor");
    if (w.kind != ValueKind::kConstant || w.shape.size() != 2) c.fail("weight must be [O, K]");
    const size_t O = w.shape[0], K = w.shape[1];
    if (x.shape.size() != 2 || size_t(x.shape[1]) != K) c.fail("input does not match the weight");
    const size_t N = x.shape[0];
    c.expect_shape(y, {int64_t(N), int64_t(O)});
    const float* bias = n.inputs.size() > 2 ? upload_dense(n.inputs[2], O, "bias", n) : nullptr;
    bool hswish = false;
    const f32_minmax mm = c.act(&hswish);
    if (w.encoding == Encoding::kDense || w.encoding == Encoding::kInt8) {
      const float* wd = upload_weight_f32(w);
      info.kernel = "cuda f32_linear";
      fn = [=]() { return cuda::f32_linear(N, O, K, wd, bias, f32(xi), f32(yi), mm, st); };
    } else if (w.encoding == Encoding::kBsr) {
      // The batch is the pixel axis: x(k, p) = x[p * K + k], y(o, p) = y[p * O + o].
      const BsrView sp = bsr_view(w);
      const size_t nblk = O / sp.block;
      const int32_t* rp = static_cast<const int32_t*>(upload(sp.row_ptr, (nblk + 1) * 4));
      const int32_t* ci = static_cast<const int32_t*>(upload(sp.col_idx, sp.nnz_blocks * 4 + 4));
      const float* vals =
          static_cast<const float*>(upload(sp.values, sp.nnz_blocks * sp.block * 4 + 4));
      const uint32_t block = sp.block;
      info.kernel = "cuda f32_spmm";
      fn = [=]() {
        return cuda::f32_spmm(N, nblk, block, rp, ci, vals, bias, f32(xi), 1, K, f32(yi), 1, O, mm,
                              st);
      };
    } else {
      const cb_weights cw = upload_codebook(w, O, K);
      const size_t ws = cuda::cb_gemm_workspace_floats(O, N, K);
      workspace_floats_ = std::max(workspace_floats_, ws);
      info.kernel = std::string("cuda cb_gemm") + (ws != 0 ? " (split K)" : "");
      fn = [=]() {
        return cuda::cb_gemm(cw, bias, N, f32(xi), 1, K, f32(yi), 1, O, mm, st, workspace_,
                             workspace_floats_);
      };
    }
    if (hswish) fn = hswish_after(fn, N * O);
  } else if (n.op == "channel_affine") {
    const ValueDef& x = c.in(0);
    c.activation_value(x, DType::kF32, "tensor");
    c.activation_value(y, DType::kF32, "tensor");
    if (x.shape.size() < 2) c.fail("input must be [N, C, ...]");
    c.expect_shape(y, x.shape);
    const size_t N = x.shape[0], C = x.shape[1], inner = x.numel() / (N * C);
    const float* scale = upload_dense(n.inputs[1], C, "scale", n);
    const float* shift = upload_dense(n.inputs[2], C, "shift", n);
    bool hswish = false;
    const f32_minmax mm = c.act(&hswish);
    info.kernel = "cuda f32_vaffine";
    fn = [=]() { return cuda::f32_vaffine(N, C, inner, f32(xi), scale, shift, f32(yi), mm, st); };
    if (hswish) fn = hswish_after(fn, N * C * inner);
  } else if (n.op == "relu" || n.op == "relu6" || n.op == "hardswish") {
    c.activation_value(c.in(0), DType::kF32, "tensor");
    c.activation_value(y, DType::kF32, "tensor");
    c.expect_shape(y, c.in(0).shape);
    const size_t total = y.numel();
    if (n.op == "hardswish") {
      info.kernel = "cuda f32_vhswish";
      fn = [=]() { return cuda::f32_vhswish(total, f32(xi), f32(yi), st); };
    } else {
      const f32_minmax mm{0.0f, n.op == "relu6" ? 6.0f : kInf};
      info.kernel = "cuda f32_vclamp";
      fn = [=]() { return cuda::f32_vclamp(total, f32(xi), f32(yi), mm, st); };
    }
  } else if (n.op == "add") {
    c.activation_value(c.in(0), DType::kF32, "tensor");
    c.activation_value(y, DType::kF32, "tensor");
    const ValueDef& bv = c.in(1);
    if (bv.dtype != DType::kF32 || bv.shape != c.in(0).shape) c.fail("inputs must match");
    c.expect_shape(y, c.in(0).shape);
    const size_t total = y.numel();
    const uint32_t bi = n.inputs[1];
    const float* bconst =
        bv.kind == ValueKind::kConstant ? upload_dense(bi, total, "b", n) : nullptr;
    bool hswish = false;
    const f32_minmax mm = c.act(&hswish);
    info.kernel = "cuda f32_vadd";
    fn = [=]() {
      return cuda::f32_vadd(total, f32(xi), bconst ? bconst : f32(bi), f32(yi), mm, st);
    };
    if (hswish) fn = hswish_after(fn, total);
  } else if (n.op == "concat") {
    const size_t rank = y.shape.size();
    int64_t axis = c.integer("axis", 1);
    if (axis < 0) axis += int64_t(rank);
    if (axis < 0 || size_t(axis) >= rank) c.fail("axis out of range");
    std::vector<int64_t> expect = c.in(0).shape;
    if (expect.size() != rank) c.fail("inputs must have the output's rank");
    expect[size_t(axis)] = 0;
    size_t outer = 1;
    for (size_t d = 0; d < size_t(axis); ++d) outer *= size_t(y.shape[d]);
    std::vector<size_t> chunk;
    std::vector<uint32_t> ins;
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      const ValueDef& v = c.in(i);
      if (v.kind == ValueKind::kConstant || v.dtype != y.dtype || v.shape.size() != rank)
        c.fail("input '" + v.name + "' must be an activation of the output's dtype and rank");
      for (size_t d = 0; d < rank; ++d)
        if (d != size_t(axis) && v.shape[d] != c.in(0).shape[d])
          c.fail("input shapes differ off the axis");
      expect[size_t(axis)] += v.shape[size_t(axis)];
      chunk.push_back(v.numel() / outer * dtype_size(v.dtype));
      ins.push_back(n.inputs[i]);
    }
    c.expect_shape(y, expect);
    size_t row = 0;
    for (size_t b : chunk) row += b;
    info.kernel = "cuda copy_2d";
    fn = [=]() {
      size_t off = 0;
      for (size_t i = 0; i < ins.size(); ++i) {
        const int e = cuda::copy_2d_on_device(static_cast<uint8_t*>(dev_[yi]) + off, row,
                                              dev_[ins[i]], chunk[i], chunk[i], outer, st);
        if (e != 0) return e;
        off += chunk[i];
      }
      return 0;
    };
  } else if (n.op == "max_pool2d" || n.op == "avg_pool2d") {
    const ValueDef& x = c.in(0);
    c.activation_value(x, DType::kF32, "tensor");
    c.activation_value(y, DType::kF32, "tensor");
    if (x.shape.size() != 4) c.fail("input must be [N, C, H, W]");
    const auto [kh, kw] = c.size_pair("kernel", {0, 0});
    const auto [sh, sw] = c.size_pair("stride", {int64_t(kh), int64_t(kw)});
    const auto pad = c.size_padding();
    const bool ceil_mode = c.integer("ceil_mode", 0) != 0;
    const bool include_pad = c.integer("count_include_pad", 1) != 0;
    const size_t H = x.shape[2], W = x.shape[3];
    auto out_size = [&](size_t in, size_t k, size_t s, size_t p0, size_t p1) {
      if (in + p0 + p1 < k) c.fail("pooling window larger than the padded input");
      size_t o = (in + p0 + p1 - k + (ceil_mode ? s - 1 : 0)) / s + 1;
      if (ceil_mode && (o - 1) * s >= in + p0) --o;  // as torch
      return o;
    };
    const size_t Ho = out_size(H, kh, sh, pad[0], pad[2]), Wo = out_size(W, kw, sw, pad[1], pad[3]);
    c.expect_shape(y, {x.shape[0], x.shape[1], int64_t(Ho), int64_t(Wo)});
    const pool2d_geometry geo{H,  W,      Ho,     Wo,     kh,     kw,         sh,
                              sw, pad[0], pad[1], pad[2], pad[3], include_pad};
    const size_t planes = size_t(x.shape[0] * x.shape[1]);
    const bool is_max = n.op == "max_pool2d";
    info.kernel = is_max ? "cuda f32_maxpool2d" : "cuda f32_avgpool2d";
    fn = [=]() {
      return is_max ? cuda::f32_maxpool2d(planes, geo, f32(xi), f32(yi), st)
                    : cuda::f32_avgpool2d(planes, geo, f32(xi), f32(yi), st);
    };
  } else if (n.op == "global_avg_pool") {
    const ValueDef& x = c.in(0);
    c.activation_value(x, DType::kF32, "tensor");
    c.activation_value(y, DType::kF32, "tensor");
    if (x.shape.size() != 4) c.fail("input must be [N, C, H, W]");
    c.expect_shape(y, {x.shape[0], x.shape[1], 1, 1});
    const size_t planes = size_t(x.shape[0] * x.shape[1]), pixels = size_t(x.shape[2] * x.shape[3]);
    info.kernel = "cuda f32_global_avgpool";
    fn = [=]() { return cuda::f32_global_avgpool(planes, pixels, f32(xi), f32(yi), st); };
  } else if (n.op == "reshape") {
    const ValueDef& x = c.in(0);
    if (x.kind == ValueKind::kConstant) c.fail("reshaping a constant is not supported");
    if (x.numel() != y.numel() || x.dtype != y.dtype) c.fail("reshape changes the element count");
    dev_[yi] = dev_[xi];
    info.kernel = "alias";
    fn = [] { return 0; };
  } else if (n.op == "softmax") {
    const ValueDef& x = c.in(0);
    c.activation_value(x, DType::kF32, "tensor");
    c.activation_value(y, DType::kF32, "tensor");
    c.expect_shape(y, x.shape);
    const int64_t rank = int64_t(x.shape.size());
    int64_t axis = c.integer("axis", -1);
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank) c.fail("axis out of range");
    size_t outer = 1, inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= size_t(x.shape[size_t(d)]);
    for (int64_t d = axis + 1; d < rank; ++d) inner *= size_t(x.shape[size_t(d)]);
    const size_t len = size_t(x.shape[size_t(axis)]);
    info.kernel = "cuda f32_softmax";
    fn = [=]() { return cuda::f32_softmax(outer, len, inner, f32(xi), f32(yi), st); };
  } else if (n.op == "quantize" || n.op == "dequantize") {
    const bool q = n.op == "quantize";
    const ValueDef& x = c.in(0);
    c.activation_value(x, q ? DType::kF32 : DType::kU8, "tensor");
    c.activation_value(y, q ? DType::kU8 : DType::kF32, "tensor");
    c.expect_shape(y, x.shape);
    auto it = n.attrs.find("scale");
    if (it == n.attrs.end()) c.fail("missing attr 'scale'");
    std::vector<double> sc = it->second.floats;
    if (it->second.type == AttrType::kInts || it->second.type == AttrType::kInt)
      sc.assign(it->second.ints.begin(), it->second.ints.end());
    const std::vector<int64_t> zp = n.attrs.count("zero_point") != 0
                                        ? c.ints("zero_point", {})
                                        : std::vector<int64_t>(sc.size(), 0);
    const int64_t rank = int64_t(x.shape.size());
    int64_t axis = c.integer("axis", 1);
    if (axis < 0) axis += rank;
    if (sc.empty() || sc.size() != zp.size()) c.fail("scale and zero_point need the same count");
    size_t outer = 1, channels = 1, inner = x.numel();
    if (sc.size() > 1) {
      if (axis < 0 || axis >= rank || size_t(x.shape[size_t(axis)]) != sc.size())
        c.fail("per-channel scale count does not match the axis");
      channels = sc.size();
      for (int64_t d = 0; d < axis; ++d) outer *= size_t(x.shape[size_t(d)]);
      inner = x.numel() / (outer * channels);
    }
    std::vector<float> scale(sc.begin(), sc.end());
    std::vector<int32_t> zero(zp.size());
    for (size_t i = 0; i < sc.size(); ++i) {
      if (!(std::isfinite(scale[i]) && scale[i] > 0.0f)) c.fail("scale must be positive");
      if (zp[i] < 0 || zp[i] > 255) c.fail("zero_point must be in 0..255");
      zero[i] = int32_t(zp[i]);
    }
    const float* dscale = static_cast<const float*>(upload(scale.data(), scale.size() * 4));
    const int32_t* dzero = static_cast<const int32_t*>(upload(zero.data(), zero.size() * 4));
    info.kernel = q ? "cuda f32_quantize_u8" : "cuda u8_dequantize_f32";
    fn = [=]() {
      return q ? cuda::f32_quantize_u8(outer, channels, inner, f32(xi), dscale, dzero,
                                       static_cast<uint8_t*>(dev_[yi]), st)
               : cuda::u8_dequantize_f32(outer, channels, inner,
                                         static_cast<const uint8_t*>(dev_[xi]), dscale, dzero,
                                         f32(yi), st);
    };
  } else {
    c.fail("op not implemented by the CUDA runtime");
  }
  steps_.push_back(std::move(fn));
  infos_.push_back(std::move(info));
}

}  // namespace edgefit
