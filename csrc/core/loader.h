// Reads an `.efm` artifact (docs/artifact-format.md): maps the file and validates every header
// field, offset, blob size, index, shape, op name and arity and the CRC-32 before anything
// trusts a byte. Errors are LoadError with a message that says what is wrong.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/encodings.h"

namespace edgefit {

class LoadError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The bytes of a file: mmap'd read-only, or an owned 64-byte aligned copy.
class FileBytes {
 public:
  static std::shared_ptr<FileBytes> map(const std::string& path);
  static std::shared_ptr<FileBytes> copy(const uint8_t* data, size_t size);
  ~FileBytes();
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  FileBytes() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;
  void* owned_ = nullptr;
};

enum class AttrType : uint8_t { kInts = 0, kFloats = 1, kString = 2, kInt = 3, kFloat = 4 };

struct Attr {
  AttrType type = AttrType::kInts;
  std::vector<int64_t> ints;   // kInts, kInt
  std::vector<double> floats;  // kFloats, kFloat
  std::string str;             // kString
};

struct Blob {
  const uint8_t* data = nullptr;
  size_t size = 0;
};

struct ValueDef {
  std::string name;
  DType dtype = DType::kF32;
  ValueKind kind = ValueKind::kActivation;
  Encoding encoding = Encoding::kDense;
  std::vector<int64_t> shape;
  std::vector<Blob> blobs;      // constants only
  std::vector<int64_t> params;  // constants only
  int producer = -1;            // index of the node writing it (activations)
  // Codebooks stored compactly (u8 group map, no row scales: format 1.1 flags) are widened here
  // at load, so kernels always see int32 groups and a float scale per row.
  std::vector<int32_t> wide_group;
  std::vector<float> wide_row_scale;

  size_t numel() const;
  size_t rows() const;  // O of the [O, K] weight view
  size_t cols() const;  // K
};

// A graph input or output as callers see it (both executors and the Python module).
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  DType dtype = DType::kF32;
  size_t bytes() const {
    size_t n = dtype_size(dtype);
    for (int64_t d : shape) n *= size_t(d);
    return n;
  }
};

struct NodeDef {
  std::string op, name, source;
  std::vector<uint32_t> inputs, outputs;
  std::map<std::string, Attr> attrs;
};

struct Model {
  std::shared_ptr<FileBytes> bytes;
  uint16_t minor = 0;
  std::vector<ValueDef> values;
  std::vector<uint32_t> inputs, outputs;
  std::vector<NodeDef> nodes;
  std::map<std::string, std::string> meta;
};

// Known ops and their input-count range (docs/ops.md; mirrors compiler/ir.py OPS).
bool op_arity(const std::string& op, uint32_t* lo, uint32_t* hi);

uint32_t crc32_ieee(const uint8_t* data, size_t size);

Model load_model(const std::string& path);
// Same checks on bytes in memory (copied); `where` names them in error messages.
Model load_model_bytes(const uint8_t* data, size_t size, const std::string& where = "artifact");

// Typed views of a validated constant (throws if the encoding differs).
BsrView bsr_view(const ValueDef& v);
CodebookView codebook_view(const ValueDef& v);
Int8View int8_view(const ValueDef& v);

}  // namespace edgefit
