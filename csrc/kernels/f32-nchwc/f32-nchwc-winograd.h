// Winograd F(2x2, 3x3) arithmetic for the blocked convolutions (f32-nchwc.h): the input and output
// transforms of one tile, written once for any value type V with + and - (a float, or a GCC
// vector of 16 floats: one 16-channel block). B, G, A are Lavin & Gray's F(2x2, 3x3) matrices.
#pragma once

namespace edgefit {

// u = G g G^T: the 4x4 transformed weights (row-major) of a 3x3 kernel g (row-major).
template <class V>
inline void f32_wino_weight_tile(const V* g, V* u) {
  V t[12];  // G g, 4x3
  for (int c = 0; c < 3; ++c) {
    t[0 * 3 + c] = g[0 * 3 + c];
    t[1 * 3 + c] = (g[0 * 3 + c] + g[1 * 3 + c] + g[2 * 3 + c]) * 0.5f;
    t[2 * 3 + c] = (g[0 * 3 + c] - g[1 * 3 + c] + g[2 * 3 + c]) * 0.5f;
    t[3 * 3 + c] = g[2 * 3 + c];
  }
  for (int r = 0; r < 4; ++r) {  // (G g) G^T
    u[r * 4 + 0] = t[r * 3 + 0];
    u[r * 4 + 1] = (t[r * 3 + 0] + t[r * 3 + 1] + t[r * 3 + 2]) * 0.5f;
    u[r * 4 + 2] = (t[r * 3 + 0] - t[r * 3 + 1] + t[r * 3 + 2]) * 0.5f;
    u[r * 4 + 3] = t[r * 3 + 2];
  }
}

// out = B^T d B for a 4x4 input tile d (row-major): adds only.
template <class V>
inline void f32_wino_input_tile(const V* d, V* out) {
  V t[16];
  for (int j = 0; j < 4; ++j) {
    t[0 * 4 + j] = d[0 * 4 + j] - d[2 * 4 + j];
    t[1 * 4 + j] = d[1 * 4 + j] + d[2 * 4 + j];
    t[2 * 4 + j] = d[2 * 4 + j] - d[1 * 4 + j];
    t[3 * 4 + j] = d[1 * 4 + j] - d[3 * 4 + j];
  }
  for (int i = 0; i < 4; ++i) {
    out[i * 4 + 0] = t[i * 4 + 0] - t[i * 4 + 2];
    out[i * 4 + 1] = t[i * 4 + 1] + t[i * 4 + 2];
    out[i * 4 + 2] = t[i * 4 + 2] - t[i * 4 + 1];
    out[i * 4 + 3] = t[i * 4 + 1] - t[i * 4 + 3];
  }
}

// y = A^T m A: the 2x2 outputs (row-major) of a 4x4 tile of products m.
template <class V>
inline void f32_wino_output_tile(const V* m, V* y) {
  V t[8];
  for (int j = 0; j < 4; ++j) {
    t[0 * 4 + j] = m[0 * 4 + j] + m[1 * 4 + j] + m[2 * 4 + j];
    t[1 * 4 + j] = m[1 * 4 + j] - m[2 * 4 + j] - m[3 * 4 + j];
  }
  for (int i = 0; i < 2; ++i) {
    y[i * 2 + 0] = t[i * 4 + 0] + t[i * 4 + 1] + t[i * 4 + 2];
    y[i * 2 + 1] = t[i * 4 + 1] - t[i * 4 + 2] - t[i * 4 + 3];
  }
}

}  // namespace edgefit
