// Weight encodings of the artifact, defined once in C++ (mirrors compiler/encodings.py; byte
// layout in docs/artifact-format.md). Views point into the mmap'd file; nothing is copied.
#pragma once

#include <cstddef>
#include <cstdint>

namespace edgefit {

enum class DType : uint8_t { kF32 = 0, kF16 = 1, kI8 = 2, kU8 = 3, kI32 = 4 };
enum class ValueKind : uint8_t { kActivation = 0, kConstant = 1, kInput = 2 };
enum class Encoding : uint8_t { kDense = 0, kInt8 = 1, kBsr = 2, kCodebook = 3 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::kF32:
    case DType::kI32:
      return 4;
    case DType::kF16:
      return 2;
    case DType::kI8:
    case DType::kU8:
      return 1;
  }
  return 0;
}
const char* dtype_name(DType t);
const char* encoding_name(Encoding e);

// The fixed 64-byte file header.
struct FileHeader {
  char magic[8];
  uint16_t major;
  uint16_t minor;
  uint32_t header_size;
  uint64_t file_size;
  uint64_t graph_offset;
  uint64_t graph_size;
  uint64_t data_offset;
  uint64_t data_size;
  uint32_t crc32;
  uint32_t flags;
};
static_assert(sizeof(FileHeader) == 64, "artifact header is 64 bytes");
static_assert(offsetof(FileHeader, file_size) == 16, "header layout");
static_assert(offsetof(FileHeader, crc32) == 56, "header layout");

constexpr size_t kBlobAlign = 64;

// Encoding 1: w[o, k] = q[o, k] * scale[o].
struct Int8View {
  const int8_t* q;     // [O * K]
  const float* scale;  // [O]
};

// Encoding 2: block-sparse rows, blocks of `block` output channels x 1 column.
struct BsrView {
  uint32_t block;  // 1, 2 or 4, divides O
  size_t nnz_blocks;
  const int32_t* row_ptr;  // [O / block + 1], prefix sum from 0 to nnz_blocks
  const int32_t* col_idx;  // [nnz_blocks], each in [0, K)
  const float* values;     // [nnz_blocks * block], output channel fastest
};

// Encoding 3: w[o, k] = table[group[o] * 2^bits + code(o, k)] * row_scale[o].
struct CodebookView {
  uint32_t bits;     // 2..8
  uint32_t groups;   // G >= 1
  size_t row_bytes;  // ceil(K * bits / 8)
  const uint8_t* packed;
  const float* table;      // [G * 2^bits]
  const int32_t* group;    // [O], each in [0, G)
  const float* row_scale;  // [O]
};

}  // namespace edgefit
