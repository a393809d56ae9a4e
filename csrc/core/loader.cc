// Artifact loader: bounds-checked reads of the graph section, then semantic checks of the graph.
#include "core/loader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>

namespace edgefit {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kF32:
      return "f32";
    case DType::kF16:
      return "f16";
    case DType::kI8:
      return "i8";
    case DType::kU8:
      return "u8";
    case DType::kI32:
      return "i32";
  }
  return "?";
}

const char* encoding_name(Encoding e) {
  switch (e) {
    case Encoding::kDense:
      return "dense";
    case Encoding::kInt8:
      return "int8";
    case Encoding::kBsr:
      return "bsr";
    case Encoding::kCodebook:
      return "codebook";
  }
  return "?";
}

size_t ValueDef::numel() const {
  size_t n = 1;
  for (int64_t d : shape) n *= size_t(d);
  return n;
}
size_t ValueDef::rows() const { return shape.empty() ? 1 : size_t(shape[0]); }
size_t ValueDef::cols() const {
  size_t n = 1;
  for (size_t i = 1; i < shape.size(); ++i) n *= size_t(shape[i]);
  return n;
}

// ---- file bytes ------------------------------------------------------------------------------

std::shared_ptr<FileBytes> FileBytes::map(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw LoadError(path + ": cannot open (" + std::strerror(errno) + ")");
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw LoadError(path + ": not a regular file");
  }
  std::shared_ptr<FileBytes> out(new FileBytes());
  out->size_ = size_t(st.st_size);
  if (out->size_ == 0) {
    ::close(fd);
    throw LoadError(path + ": empty file is not an edgefit artifact");
  }
  void* p = ::mmap(nullptr, out->size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) throw LoadError(path + ": mmap failed (" + std::strerror(errno) + ")");
  out->data_ = static_cast<const uint8_t*>(p);
  out->mapped_ = true;
  return out;
}

std::shared_ptr<FileBytes> FileBytes::copy(const uint8_t* data, size_t size) {
  std::shared_ptr<FileBytes> out(new FileBytes());
  const size_t padded = (size + kBlobAlign - 1) / kBlobAlign * kBlobAlign + kBlobAlign;
  out->owned_ = std::aligned_alloc(kBlobAlign, padded);
  if (out->owned_ == nullptr) throw std::bad_alloc();
  if (size) std::memcpy(out->owned_, data, size);
  out->data_ = static_cast<const uint8_t*>(out->owned_);
  out->size_ = size;
  return out;
}

FileBytes::~FileBytes() {
  if (mapped_) ::munmap(const_cast<uint8_t*>(data_), size_);
  std::free(owned_);
}

// ---- CRC-32 (IEEE 802.3, as zlib.crc32) --------------------------------------------------------

uint32_t crc32_ieee(const uint8_t* data, size_t size) {
  static const auto table = [] {
    struct T {
      uint32_t v[8][256];
    } t;
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t.v[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i)
      for (int s = 1; s < 8; ++s) t.v[s][i] = (t.v[s - 1][i] >> 8) ^ t.v[0][t.v[s - 1][i] & 0xFF];
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  // Slicing-by-8: the checksum of a 100 MB model should not dominate load time.
  while (size >= 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, data, 4);
    std::memcpy(&hi, data + 4, 4);
    lo ^= c;
    c = table.v[7][lo & 0xFF] ^ table.v[6][(lo >> 8) & 0xFF] ^ table.v[5][(lo >> 16) & 0xFF] ^
        table.v[4][lo >> 24] ^ table.v[3][hi & 0xFF] ^ table.v[2][(hi >> 8) & 0xFF] ^
        table.v[1][(hi >> 16) & 0xFF] ^ table.v[0][hi >> 24];
    data += 8;
    size -= 8;
  }
  while (size--) c = table.v[0][(c ^ *data++) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

// ---- ops ---------------------------------------------------------------------------------------

bool op_arity(const std::string& op, uint32_t* lo, uint32_t* hi) {
  static const std::map<std::string, std::pair<uint32_t, uint32_t>> kOps = {
      {"conv2d", {2, 3}},     {"linear", {2, 3}},          {"channel_affine", {3, 3}},
      {"relu", {1, 1}},       {"relu6", {1, 1}},           {"hardswish", {1, 1}},
      {"add", {2, 2}},        {"concat", {1, 64}},         {"max_pool2d", {1, 1}},
      {"avg_pool2d", {1, 1}}, {"global_avg_pool", {1, 1}}, {"reshape", {1, 1}},
      {"softmax", {1, 1}},    {"quantize", {1, 1}},        {"dequantize", {1, 1}},
  };
  auto it = kOps.find(op);
  if (it == kOps.end()) return false;
  *lo = it->second.first;
  *hi = it->second.second;
  return true;
}

// ---- parsing -----------------------------------------------------------------------------------

namespace {

class Reader {
 public:
  Reader(const uint8_t* p, size_t n, const std::string& where) : p_(p), n_(n), where_(where) {}

  void need(size_t k) const {
    if (k > n_ - pos_)
      throw LoadError(where_ + ": graph section truncated at byte " + std::to_string(pos_) +
                      " (wanted " + std::to_string(k) + " more)");
  }
  template <typename T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  uint32_t count(const char* what, uint32_t limit) {
    const uint32_t n = get<uint32_t>();
    if (n > limit)
      throw LoadError(where_ + ": " + what + " count " + std::to_string(n) + " is implausible");
    return n;
  }
  std::string bytes(size_t k) {
    need(k);
    std::string s(reinterpret_cast<const char*>(p_ + pos_), k);
    pos_ += k;
    return s;
  }
  size_t remaining() const { return n_ - pos_; }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
  const std::string& where_;
};

// Names reach Python (dict keys, error messages): invalid UTF-8 becomes '?' as the Python
// reader's errors="replace" would make it U+FFFD.
std::string valid_utf8(std::string s) {
  size_t i = 0;
  while (i < s.size()) {
    const uint8_t c = uint8_t(s[i]);
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 0;
    bool ok = len != 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) ok = (uint8_t(s[i + k]) >> 6) == 0x2;
    if (ok && len == 2) ok = c >= 0xC2;
    if (ok && len == 3) {
      const uint8_t c1 = uint8_t(s[i + 1]);
      ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);
    }
    if (ok && len == 4) {
      const uint8_t c1 = uint8_t(s[i + 1]);
      ok = c <= 0xF4 && !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90);
    }
    if (!ok) {
      s[i] = '?';
      len = 1;
    }
    i += len;
  }
  return s;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

constexpr int64_t kCodebookU8Group = 1, kCodebookUnitScale = 2;

int64_t codebook_flags(const ValueDef& v) { return v.params.size() == 3 ? v.params[2] : 0; }

void check_constant(const ValueDef& v, const std::string& where) {
  const std::string what = where + ": constant '" + v.name + "'";
  auto fail = [&](const std::string& msg) { throw LoadError(what + ": " + msg); };
  const size_t o = v.rows(), k = v.cols();
  std::vector<size_t> expected;
  if (v.encoding != Encoding::kDense && v.dtype != DType::kF32)
    fail(std::string("encoding ") + encoding_name(v.encoding) + " needs dtype f32");
  if (v.encoding != Encoding::kDense && v.shape.empty()) fail("encoded weights need rank >= 1");
  switch (v.encoding) {
    case Encoding::kDense:
      if (!v.params.empty()) fail("dense constants take no params");
      expected = {v.numel() * dtype_size(v.dtype)};
      break;
    case Encoding::kInt8:
      if (!v.params.empty()) fail("int8 constants take no params");
      expected = {o * k, 4 * o};
      break;
    case Encoding::kBsr: {
      if (v.params.size() != 1) fail("block-sparse needs 1 param (block)");
      const int64_t block = v.params[0];
      if (!(block == 1 || block == 2 || block == 4) || o % size_t(block))
        fail("block-sparse block " + std::to_string(block) + " does not divide " +
             std::to_string(o) + " output channels (blocks are 1, 2 or 4)");
      if (v.blobs.size() != 3) fail("block-sparse needs 3 blobs");
      const size_t nnzb = v.blobs[1].size / 4;
      expected = {4 * (o / size_t(block) + 1), 4 * nnzb, 4 * nnzb * size_t(block)};
      break;
    }
    case Encoding::kCodebook: {
      if (v.params.size() != 2 && v.params.size() != 3)
        fail("codebook needs params (bits, groups[, flags])");
      const int64_t bits = v.params[0], groups = v.params[1], flags = codebook_flags(v);
      if (bits < 2 || bits > 8 || groups < 1 || groups > (int64_t(1) << 24))
        fail("codebook bits " + std::to_string(bits) + " / groups " + std::to_string(groups) +
             " out of range");
      if (flags & ~int64_t(kCodebookU8Group | kCodebookUnitScale))
        fail("unknown codebook flags " + std::to_string(flags));
      if ((flags & kCodebookU8Group) && groups > 256) fail("a u8 group map needs <= 256 groups");
      expected = {o * ((k * size_t(bits) + 7) / 8), 4 * size_t(groups) * (size_t(1) << bits),
                  (flags & kCodebookU8Group) ? o : 4 * o};
      if (!(flags & kCodebookUnitScale)) expected.push_back(4 * o);
      break;
    }
  }
  if (v.blobs.size() != expected.size())
    fail("has " + std::to_string(v.blobs.size()) + " blobs, expected " +
         std::to_string(expected.size()));
  for (size_t i = 0; i < expected.size(); ++i)
    if (v.blobs[i].size != expected[i])
      fail("blob " + std::to_string(i) + " has " + std::to_string(v.blobs[i].size) +
           " bytes, expected " + std::to_string(expected[i]));
  if (v.encoding == Encoding::kBsr) {
    const BsrView b = bsr_view(v);
    const size_t nrows = o / b.block;
    if (b.row_ptr[0] != 0) fail("block-sparse row_ptr does not start at 0");
    for (size_t r = 0; r < nrows; ++r)
      if (b.row_ptr[r + 1] < b.row_ptr[r]) fail("block-sparse row_ptr decreases");
    if (size_t(b.row_ptr[nrows]) != b.nnz_blocks)
      fail("block-sparse row_ptr does not end at the block count");
    for (size_t j = 0; j < b.nnz_blocks; ++j)
      if (b.col_idx[j] < 0 || size_t(b.col_idx[j]) >= k)
        fail("block-sparse column index " + std::to_string(b.col_idx[j]) + " out of range [0, " +
             std::to_string(k) + ")");
  }
  if (v.encoding == Encoding::kCodebook) {
    const bool u8 = codebook_flags(v) & kCodebookU8Group;
    const uint8_t* raw = v.blobs[2].data;
    for (size_t r = 0; r < o; ++r) {
      const int64_t g = u8 ? int64_t(raw[r]) : int64_t(reinterpret_cast<const int32_t*>(raw)[r]);
      if (g < 0 || g >= v.params[1])
        fail("codebook group index " + std::to_string(g) + " out of range");
    }
  }
}

// After check_constant: widen a compact codebook's group map and unit row scales.
void widen_codebook(ValueDef& v) {
  if (v.encoding != Encoding::kCodebook) return;
  const int64_t flags = codebook_flags(v);
  const size_t o = v.rows();
  if (flags & kCodebookU8Group) v.wide_group.assign(v.blobs[2].data, v.blobs[2].data + o);
  if (flags & kCodebookUnitScale) v.wide_row_scale.assign(o, 1.0f);
}

}  // namespace

BsrView bsr_view(const ValueDef& v) {
  if (v.encoding != Encoding::kBsr) throw LoadError("'" + v.name + "' is not block-sparse");
  BsrView b;
  b.block = uint32_t(v.params[0]);
  b.nnz_blocks = v.blobs[1].size / 4;
  b.row_ptr = reinterpret_cast<const int32_t*>(v.blobs[0].data);
  b.col_idx = reinterpret_cast<const int32_t*>(v.blobs[1].data);
  b.values = reinterpret_cast<const float*>(v.blobs[2].data);
  return b;
}

CodebookView codebook_view(const ValueDef& v) {
  if (v.encoding != Encoding::kCodebook) throw LoadError("'" + v.name + "' is not a codebook");
  CodebookView c;
  c.bits = uint32_t(v.params[0]);
  c.groups = uint32_t(v.params[1]);
  c.row_bytes = (v.cols() * c.bits + 7) / 8;
  c.packed = v.blobs[0].data;
  c.table = reinterpret_cast<const float*>(v.blobs[1].data);
  c.group = v.wide_group.empty() ? reinterpret_cast<const int32_t*>(v.blobs[2].data)
                                 : v.wide_group.data();
  c.row_scale = v.wide_row_scale.empty() ? reinterpret_cast<const float*>(v.blobs[3].data)
                                         : v.wide_row_scale.data();
  return c;
}

Int8View int8_view(const ValueDef& v) {
  if (v.encoding != Encoding::kInt8) throw LoadError("'" + v.name + "' is not int8");
  return {reinterpret_cast<const int8_t*>(v.blobs[0].data),
          reinterpret_cast<const float*>(v.blobs[1].data)};
}

static Model parse(std::shared_ptr<FileBytes> bytes, const std::string& where) {
  const uint8_t* raw = bytes->data();
  const size_t size = bytes->size();
  if (size < sizeof(FileHeader))
    throw LoadError(where + ": " + std::to_string(size) +
                    " bytes is too short for an edgefit artifact");
  FileHeader h;
  std::memcpy(&h, raw, sizeof h);
  if (std::memcmp(h.magic, "EDGEFIT\0", 8) != 0)
    throw LoadError(where + ": not an edgefit artifact (bad magic)");
  if (h.major != 1)
    throw LoadError(where + ": format version " + std::to_string(h.major) +
                    " is not supported (this edgefit reads 1)");
  if (h.header_size != sizeof(FileHeader))
    throw LoadError(where + ": header size " + std::to_string(h.header_size) + " != 64");
  if (h.file_size != size)
    throw LoadError(where + ": file size " + std::to_string(size) + " does not match its header (" +
                    std::to_string(h.file_size) + "); truncated?");
  // Overflow-safe: every term is compared against the (small) real size first.
  const bool sections_ok =
      h.graph_offset >= 64 && h.graph_offset <= size && h.graph_size <= size - h.graph_offset &&
      h.data_offset >= h.graph_offset + h.graph_size && h.data_offset <= size &&
      h.data_size <= size - h.data_offset && h.data_offset % kBlobAlign == 0;
  if (!sections_ok) throw LoadError(where + ": section offsets are inconsistent");
  if (crc32_ieee(raw + 64, size - 64) != h.crc32)
    throw LoadError(where + ": checksum mismatch (the file is corrupt)");

  Model m;
  m.bytes = bytes;
  m.minor = h.minor;
  Reader r(raw + h.graph_offset, size_t(h.graph_size), where);
  const uint8_t* data = raw + h.data_offset;
  const size_t data_size = size_t(h.data_size);

  std::vector<std::string> strings(r.count("string", uint32_t(r.remaining() / 4)));
  for (auto& s : strings) s = valid_utf8(r.bytes(r.count("string length", 1u << 20)));
  auto str = [&]() -> const std::string& {
    const uint32_t i = r.get<uint32_t>();
    if (i >= strings.size())
      throw LoadError(where + ": string index " + std::to_string(i) + " out of range");
    return strings[i];
  };

  // Each record takes several bytes, so a count above remaining()/4 cannot be honest; this keeps
  // a hostile count from allocating gigabytes before the truncation is noticed.
  auto plausible = [&]() { return uint32_t(std::min<size_t>(r.remaining() / 4, 1u << 24)); };
  m.values.resize(r.count("values", plausible()));
  for (auto& v : m.values) {
    v.name = str();
    const uint8_t dtype = r.get<uint8_t>(), kind = r.get<uint8_t>();
    const uint8_t enc = r.get<uint8_t>(), rank = r.get<uint8_t>();
    if (dtype > 4 || kind > 2 || enc > 3 || rank > 8)
      throw LoadError(where + ": value '" + v.name + "' has bad dtype/kind/encoding/rank (" +
                      std::to_string(dtype) + "/" + std::to_string(kind) + "/" +
                      std::to_string(enc) + "/" + std::to_string(rank) + ")");
    v.dtype = DType(dtype);
    v.kind = ValueKind(kind);
    v.encoding = Encoding(enc);
    v.shape.resize(rank);
    unsigned __int128 numel = 1;
    for (auto& d : v.shape) {
      d = r.get<int64_t>();
      if (d < 1) throw LoadError(where + ": value '" + v.name + "' has a dimension < 1");
      numel *= uint64_t(d);
      if (numel >= (unsigned __int128)1 << 40)
        throw LoadError(where + ": value '" + v.name + "' has 2^40 or more elements");
    }
    if (v.kind != ValueKind::kConstant && v.encoding != Encoding::kDense)
      throw LoadError(where + ": value '" + v.name + "' is not a constant but has an encoding");
    if (v.kind == ValueKind::kConstant) {
      v.blobs.resize(r.count("blobs", 16));
      for (auto& b : v.blobs) {
        const uint64_t off = r.get<uint64_t>(), sz = r.get<uint64_t>();
        if (off % kBlobAlign || off > data_size || sz > data_size - off)
          throw LoadError(where + ": constant '" + v.name + "' data lies outside the file");
        b.data = data + off;
        b.size = size_t(sz);
      }
      v.params.resize(r.count("params", 16));
      for (auto& p : v.params) p = r.get<int64_t>();
      check_constant(v, where);
      widen_codebook(v);
    }
  }
  auto ids = [&](const char* what, std::vector<uint32_t>& out) {
    out.resize(r.count(what, 1u << 16));
    for (auto& i : out) {
      i = r.get<uint32_t>();
      if (i >= m.values.size())
        throw LoadError(where + ": " + what + " value index " + std::to_string(i) +
                        " out of range");
    }
  };
  ids("inputs", m.inputs);
  ids("outputs", m.outputs);
  m.nodes.resize(r.count("nodes", plausible()));
  for (auto& n : m.nodes) {
    n.op = str();
    n.name = str();
    n.source = str();
    uint32_t lo = 0, hi = 0;
    if (!op_arity(n.op, &lo, &hi))
      throw LoadError(where + ": node '" + n.name + "' has unknown op '" + n.op + "'");
    ids("node inputs", n.inputs);
    ids("node outputs", n.outputs);
    if (n.inputs.size() < lo || n.inputs.size() > hi)
      throw LoadError(where + ": node '" + n.name + "': " + n.op + " takes " + std::to_string(lo) +
                      ".." + std::to_string(hi) + " inputs, got " +
                      std::to_string(n.inputs.size()));
    if (n.outputs.size() != 1)
      throw LoadError(where + ": node '" + n.name + "' must have exactly one output");
    const uint32_t n_attrs = r.count("attrs", 64);
    for (uint32_t a = 0; a < n_attrs; ++a) {
      const std::string key = str();
      Attr attr;
      const uint8_t type = r.get<uint8_t>();
      const uint32_t cnt = r.count("attr values", 1u << 16);
      switch (type) {
        case 0:
          attr.type = AttrType::kInts;
          for (uint32_t i = 0; i < cnt; ++i) attr.ints.push_back(r.get<int64_t>());
          break;
        case 1:
          attr.type = AttrType::kFloats;
          for (uint32_t i = 0; i < cnt; ++i) attr.floats.push_back(r.get<double>());
          break;
        case 2:
          if (cnt != 1) throw LoadError(where + ": string attr '" + key + "' count != 1");
          attr.type = AttrType::kString;
          attr.str = str();
          break;
        case 3:
          if (cnt != 1) throw LoadError(where + ": int attr '" + key + "' count != 1");
          attr.type = AttrType::kInt;
          attr.ints.push_back(r.get<int64_t>());
          break;
        case 4:
          if (cnt != 1) throw LoadError(where + ": float attr '" + key + "' count != 1");
          attr.type = AttrType::kFloat;
          attr.floats.push_back(r.get<double>());
          break;
        default:
          throw LoadError(where + ": node '" + n.name + "' attr '" + key + "' has bad type " +
                          std::to_string(type));
      }
      n.attrs[key] = std::move(attr);
    }
  }
  const uint32_t n_meta = r.count("meta", plausible());
  for (uint32_t i = 0; i < n_meta; ++i) {
    const std::string key = str();
    m.meta[key] = str();
  }

  // Graph rules: inputs are graph inputs, every activation produced once before it is read.
  std::vector<bool> defined(m.values.size(), false);
  for (uint32_t i : m.inputs) {
    if (m.values[i].kind != ValueKind::kInput)
      throw LoadError(where + ": graph input '" + m.values[i].name + "' is not of kind input");
    defined[i] = true;
  }
  for (size_t i = 0; i < m.values.size(); ++i) {
    if (m.values[i].kind == ValueKind::kConstant) defined[i] = true;
    if (m.values[i].kind == ValueKind::kInput && !defined[i])
      throw LoadError(where + ": value '" + m.values[i].name +
                      "' is of kind input but not a graph input");
  }
  for (size_t ni = 0; ni < m.nodes.size(); ++ni) {
    const NodeDef& n = m.nodes[ni];
    for (uint32_t i : n.inputs)
      if (!defined[i])
        throw LoadError(where + ": node '" + n.name + "' reads '" + m.values[i].name +
                        "' before it is defined");
    for (uint32_t o : n.outputs) {
      if (defined[o])
        throw LoadError(where + ": tensor '" + m.values[o].name + "' is defined twice (node '" +
                        n.name + "')");
      defined[o] = true;
      m.values[o].producer = int(ni);
    }
  }
  for (uint32_t o : m.outputs) {
    if (!defined[o])
      throw LoadError(where + ": graph output '" + m.values[o].name + "' is never produced");
    if (m.values[o].kind == ValueKind::kConstant)
      throw LoadError(where + ": graph output '" + m.values[o].name + "' is a constant");
  }
  (void)shape_str;
  return m;
}

Model load_model(const std::string& path) { return parse(FileBytes::map(path), path); }

Model load_model_bytes(const uint8_t* data, size_t size, const std::string& where) {
  return parse(FileBytes::copy(data, size), where);
}

}  // namespace edgefit
