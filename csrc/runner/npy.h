// A tiny .npy reader / writer (format 1.0-3.0 read, 1.0 written) for float32 and uint8 C-order
// arrays: enough for the standalone runner, no Python needed on the board.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace edgefit {

struct NpyArray {
  std::string descr;  // "<f4" or "|u1"
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

NpyArray read_npy(const std::string& path);
void write_npy(const std::string& path, const NpyArray& a);

}  // namespace edgefit
