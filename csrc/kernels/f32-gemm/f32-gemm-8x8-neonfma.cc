// NEON+FMA f32 GEMM microkernels, 8 rows x 8 columns (and 8 x 4 for a strip's last 1-4 columns).
// The tiles are inline assembly: GCC 12 compiled the intrinsics k loop to 23 instructions per 16
// fmla (separate counter, compare, address adds; unrolled, it also copied accumulators between
// registers), which qemu counted as a third of MobileNetV2's instructions beyond its fmla. An asm
// statement takes at most 30 operands, so each tile's whole life (init from the bias or C, k loop,
// clamp, store) is one asm block with its accumulators in fixed registers.
// Partial tiles (fewer rows, or fewer columns of a packed strip) run the same assembly into a
// small buffer; only 1..3 columns of an in-place B are loaded lane by lane (never reading past
// column n of B).
#include <arm_neon.h>

#include <cmath>

#include "kernels/f32-gemm/f32-gemm.h"

namespace edgefit {
namespace {

constexpr size_t MR = 8;

// 1..3 floats into the low lanes of a vector; the other lanes are zero.
inline float32x4_t load_partial(const float* p, size_t n) {
  float32x4_t v = vdupq_n_f32(0.0f);
  v = vld1q_lane_f32(p, v, 0);
  if (n > 1) v = vld1q_lane_f32(p + 1, v, 1);
  if (n > 2) v = vld1q_lane_f32(p + 2, v, 2);
  return v;
}

inline void store_partial(float* p, float32x4_t v, size_t n) {
  vst1q_lane_f32(p, v, 0);
  if (n > 1) vst1q_lane_f32(p + 1, v, 1);
  if (n > 2) vst1q_lane_f32(p + 2, v, 2);
}

inline float32x4_t clamp(float32x4_t v, float32x4_t lo, float32x4_t hi) {
  return vminq_f32(vmaxq_f32(v, lo), hi);
}

// ---- 8x8 tiles: 4 ldp + 32 fmla + 4 scalar per two k. Registers: accumulators v16..v31 (row r:
// v[16+2r] = columns 0-3, v[17+2r] = 4-7), weights v0/v1 and v4/v5, B v2/v3 and v6/v7 (v8..v15,
// callee-saved, unused).

// 16 fmla of one k step: B (BA = columns 0-3, BB = 4-7) times weights W0 (rows 0-3), W1 (4-7).
#define EDGEFIT_NEON_FMLA_8X8_V0123 \
  "fmla v16.4s, v2.4s, v0.s[0]\n"   \
  "fmla v17.4s, v3.4s, v0.s[0]\n"   \
  "fmla v18.4s, v2.4s, v0.s[1]\n"   \
  "fmla v19.4s, v3.4s, v0.s[1]\n"   \
  "fmla v20.4s, v2.4s, v0.s[2]\n"   \
  "fmla v21.4s, v3.4s, v0.s[2]\n"   \
  "fmla v22.4s, v2.4s, v0.s[3]\n"   \
  "fmla v23.4s, v3.4s, v0.s[3]\n"   \
  "fmla v24.4s, v2.4s, v1.s[0]\n"   \
  "fmla v25.4s, v3.4s, v1.s[0]\n"   \
  "fmla v26.4s, v2.4s, v1.s[1]\n"   \
  "fmla v27.4s, v3.4s, v1.s[1]\n"   \
  "fmla v28.4s, v2.4s, v1.s[2]\n"   \
  "fmla v29.4s, v3.4s, v1.s[2]\n"   \
  "fmla v30.4s, v2.4s, v1.s[3]\n"   \
  "fmla v31.4s, v3.4s, v1.s[3]\n"
#define EDGEFIT_NEON_FMLA_8X8_V4567 \
  "fmla v16.4s, v6.4s, v4.s[0]\n"   \
  "fmla v17.4s, v7.4s, v4.s[0]\n"   \
  "fmla v18.4s, v6.4s, v4.s[1]\n"   \
  "fmla v19.4s, v7.4s, v4.s[1]\n"   \
  "fmla v20.4s, v6.4s, v4.s[2]\n"   \
  "fmla v21.4s, v7.4s, v4.s[2]\n"   \
  "fmla v22.4s, v6.4s, v4.s[3]\n"   \
  "fmla v23.4s, v7.4s, v4.s[3]\n"   \
  "fmla v24.4s, v6.4s, v5.s[0]\n"   \
  "fmla v25.4s, v7.4s, v5.s[0]\n"   \
  "fmla v26.4s, v6.4s, v5.s[1]\n"   \
  "fmla v27.4s, v7.4s, v5.s[1]\n"   \
  "fmla v28.4s, v6.4s, v5.s[2]\n"   \
  "fmla v29.4s, v7.4s, v5.s[2]\n"   \
  "fmla v30.4s, v6.4s, v5.s[3]\n"   \
  "fmla v31.4s, v7.4s, v5.s[3]\n"
// The k loop: two steps per iteration, an odd k's last step after it. w: [k][8] weights; b: B rows
// ldb bytes apart. Clobbers w, b, pairs (x operands).
#define EDGEFIT_NEON_KLOOP_8X8                                \
  "cbz %[pairs], 2f\n"                                        \
  "1:\n"                                                      \
  "ldp q0, q1, [%[w]], #32\n"                                 \
  "ldp q2, q3, [%[b]]\n"                                      \
  "add %[b], %[b], %[ldb]\n"                                  \
  "ldp q4, q5, [%[w]], #32\n"                                 \
  "ldp q6, q7, [%[b]]\n"                                      \
  "add %[b], %[b], %[ldb]\n" EDGEFIT_NEON_FMLA_8X8_V0123      \
  "subs %[pairs], %[pairs], #1\n" EDGEFIT_NEON_FMLA_8X8_V4567 \
  "b.ne 1b\n"                                                 \
  "2:\n"                                                      \
  "tbz %[k], #0, 3f\n"                                        \
  "ldp q0, q1, [%[w]]\n"                                      \
  "ldp q2, q3, [%[b]]\n" EDGEFIT_NEON_FMLA_8X8_V0123 "3:\n"

// Accumulators from the bias (one value per row) or, with no bias, from C's 8 rows (ld1 / st1
// of a register pair step to the next row by ldc themselves: 8 adds fewer per tile than ldp / stp).
#define EDGEFIT_NEON_INIT_8X8              \
  "cbz %[bias], 10f\n"                     \
  "ldp q0, q1, [%[bias]]\n"                \
  "dup v16.4s, v0.s[0]\n"                  \
  "dup v17.4s, v0.s[0]\n"                  \
  "dup v18.4s, v0.s[1]\n"                  \
  "dup v19.4s, v0.s[1]\n"                  \
  "dup v20.4s, v0.s[2]\n"                  \
  "dup v21.4s, v0.s[2]\n"                  \
  "dup v22.4s, v0.s[3]\n"                  \
  "dup v23.4s, v0.s[3]\n"                  \
  "dup v24.4s, v1.s[0]\n"                  \
  "dup v25.4s, v1.s[0]\n"                  \
  "dup v26.4s, v1.s[1]\n"                  \
  "dup v27.4s, v1.s[1]\n"                  \
  "dup v28.4s, v1.s[2]\n"                  \
  "dup v29.4s, v1.s[2]\n"                  \
  "dup v30.4s, v1.s[3]\n"                  \
  "dup v31.4s, v1.s[3]\n"                  \
  "b 11f\n"                                \
  "10:\n"                                  \
  "mov %[t], %[c]\n"                       \
  "ld1 {v16.4s, v17.4s}, [%[t]], %[ldc]\n" \
  "ld1 {v18.4s, v19.4s}, [%[t]], %[ldc]\n" \
  "ld1 {v20.4s, v21.4s}, [%[t]], %[ldc]\n" \
  "ld1 {v22.4s, v23.4s}, [%[t]], %[ldc]\n" \
  "ld1 {v24.4s, v25.4s}, [%[t]], %[ldc]\n" \
  "ld1 {v26.4s, v27.4s}, [%[t]], %[ldc]\n" \
  "ld1 {v28.4s, v29.4s}, [%[t]], %[ldc]\n" \
  "ld1 {v30.4s, v31.4s}, [%[t]], %[ldc]\n" \
  "11:\n"
// Clamp to mm unless it is null (then a jump to the local label "12", which each tile places
// right after its clamp): v0 / v1 take min / max; then v16..v23 (rows 0-3 of an 8x8 tile, all 8
// rows of an 8x4 one) and v24..v31 (rows 4-7 of an 8x8 tile).
#define EDGEFIT_NEON_CLAMP_ROWS_0_3 \
  "cbz %[mm], 12f\n"                \
  "ldp s0, s1, [%[mm]]\n"           \
  "dup v0.4s, v0.s[0]\n"            \
  "dup v1.4s, v1.s[0]\n"            \
  "fmax v16.4s, v16.4s, v0.4s\n"    \
  "fmin v16.4s, v16.4s, v1.4s\n"    \
  "fmax v17.4s, v17.4s, v0.4s\n"    \
  "fmin v17.4s, v17.4s, v1.4s\n"    \
  "fmax v18.4s, v18.4s, v0.4s\n"    \
  "fmin v18.4s, v18.4s, v1.4s\n"    \
  "fmax v19.4s, v19.4s, v0.4s\n"    \
  "fmin v19.4s, v19.4s, v1.4s\n"    \
  "fmax v20.4s, v20.4s, v0.4s\n"    \
  "fmin v20.4s, v20.4s, v1.4s\n"    \
  "fmax v21.4s, v21.4s, v0.4s\n"    \
  "fmin v21.4s, v21.4s, v1.4s\n"    \
  "fmax v22.4s, v22.4s, v0.4s\n"    \
  "fmin v22.4s, v22.4s, v1.4s\n"    \
  "fmax v23.4s, v23.4s, v0.4s\n"    \
  "fmin v23.4s, v23.4s, v1.4s\n"
#define EDGEFIT_NEON_CLAMP_ROWS_4_7 \
  "fmax v24.4s, v24.4s, v0.4s\n"    \
  "fmin v24.4s, v24.4s, v1.4s\n"    \
  "fmax v25.4s, v25.4s, v0.4s\n"    \
  "fmin v25.4s, v25.4s, v1.4s\n"    \
  "fmax v26.4s, v26.4s, v0.4s\n"    \
  "fmin v26.4s, v26.4s, v1.4s\n"    \
  "fmax v27.4s, v27.4s, v0.4s\n"    \
  "fmin v27.4s, v27.4s, v1.4s\n"    \
  "fmax v28.4s, v28.4s, v0.4s\n"    \
  "fmin v28.4s, v28.4s, v1.4s\n"    \
  "fmax v29.4s, v29.4s, v0.4s\n"    \
  "fmin v29.4s, v29.4s, v1.4s\n"    \
  "fmax v30.4s, v30.4s, v0.4s\n"    \
  "fmin v30.4s, v30.4s, v1.4s\n"    \
  "fmax v31.4s, v31.4s, v0.4s\n"    \
  "fmin v31.4s, v31.4s, v1.4s\n"
// Clamp, then store the 8 rows of C.
#define EDGEFIT_NEON_STORE_8X8                            \
  EDGEFIT_NEON_CLAMP_ROWS_0_3 EDGEFIT_NEON_CLAMP_ROWS_4_7 \
      "12:\n"                                             \
      "mov %[t], %[c]\n"                                  \
      "st1 {v16.4s, v17.4s}, [%[t]], %[ldc]\n"            \
      "st1 {v18.4s, v19.4s}, [%[t]], %[ldc]\n"            \
      "st1 {v20.4s, v21.4s}, [%[t]], %[ldc]\n"            \
      "st1 {v22.4s, v23.4s}, [%[t]], %[ldc]\n"            \
      "st1 {v24.4s, v25.4s}, [%[t]], %[ldc]\n"            \
      "st1 {v26.4s, v27.4s}, [%[t]], %[ldc]\n"            \
      "st1 {v28.4s, v29.4s}, [%[t]], %[ldc]\n"            \
      "st1 {v30.4s, v31.4s}, [%[t]], %[ldc]\n"

#define EDGEFIT_NEON_TILE_8X8 EDGEFIT_NEON_INIT_8X8 EDGEFIT_NEON_KLOOP_8X8 EDGEFIT_NEON_STORE_8X8

// ---- 8x4 tiles (a strip's last 4 or fewer columns) in the same style: accumulators v16..v23
// (row r: v[16+r]), weights v0/v1 and v4/v5, B v2 and v6. 24 instructions per 16 fmla.
#define EDGEFIT_NEON_FMLA_8X4_V012 \
  "fmla v16.4s, v2.4s, v0.s[0]\n"  \
  "fmla v17.4s, v2.4s, v0.s[1]\n"  \
  "fmla v18.4s, v2.4s, v0.s[2]\n"  \
  "fmla v19.4s, v2.4s, v0.s[3]\n"  \
  "fmla v20.4s, v2.4s, v1.s[0]\n"  \
  "fmla v21.4s, v2.4s, v1.s[1]\n"  \
  "fmla v22.4s, v2.4s, v1.s[2]\n"  \
  "fmla v23.4s, v2.4s, v1.s[3]\n"
#define EDGEFIT_NEON_FMLA_8X4_V456 \
  "fmla v16.4s, v6.4s, v4.s[0]\n"  \
  "fmla v17.4s, v6.4s, v4.s[1]\n"  \
  "fmla v18.4s, v6.4s, v4.s[2]\n"  \
  "fmla v19.4s, v6.4s, v4.s[3]\n"  \
  "fmla v20.4s, v6.4s, v5.s[0]\n"  \
  "fmla v21.4s, v6.4s, v5.s[1]\n"  \
  "fmla v22.4s, v6.4s, v5.s[2]\n"  \
  "fmla v23.4s, v6.4s, v5.s[3]\n"
#define EDGEFIT_NEON_TILE_8X4                                                      \
  "cbz %[bias], 10f\n"                                                             \
  "ldp q0, q1, [%[bias]]\n"                                                        \
  "dup v16.4s, v0.s[0]\n"                                                          \
  "dup v17.4s, v0.s[1]\n"                                                          \
  "dup v18.4s, v0.s[2]\n"                                                          \
  "dup v19.4s, v0.s[3]\n"                                                          \
  "dup v20.4s, v1.s[0]\n"                                                          \
  "dup v21.4s, v1.s[1]\n"                                                          \
  "dup v22.4s, v1.s[2]\n"                                                          \
  "dup v23.4s, v1.s[3]\n"                                                          \
  "b 11f\n"                                                                        \
  "10:\n"                                                                          \
  "mov %[t], %[c]\n"                                                               \
  "ld1 {v16.4s}, [%[t]], %[ldc]\n"                                                 \
  "ld1 {v17.4s}, [%[t]], %[ldc]\n"                                                 \
  "ld1 {v18.4s}, [%[t]], %[ldc]\n"                                                 \
  "ld1 {v19.4s}, [%[t]], %[ldc]\n"                                                 \
  "ld1 {v20.4s}, [%[t]], %[ldc]\n"                                                 \
  "ld1 {v21.4s}, [%[t]], %[ldc]\n"                                                 \
  "ld1 {v22.4s}, [%[t]], %[ldc]\n"                                                 \
  "ld1 {v23.4s}, [%[t]], %[ldc]\n"                                                 \
  "11:\n"                                                                          \
  "cbz %[pairs], 2f\n"                                                             \
  "1:\n"                                                                           \
  "ldp q0, q1, [%[w]], #32\n"                                                      \
  "ldr q2, [%[b]]\n"                                                               \
  "add %[b], %[b], %[ldb]\n"                                                       \
  "ldp q4, q5, [%[w]], #32\n"                                                      \
  "ldr q6, [%[b]]\n"                                                               \
  "add %[b], %[b], %[ldb]\n" EDGEFIT_NEON_FMLA_8X4_V012                            \
  "subs %[pairs], %[pairs], #1\n" EDGEFIT_NEON_FMLA_8X4_V456                       \
  "b.ne 1b\n"                                                                      \
  "2:\n"                                                                           \
  "tbz %[k], #0, 3f\n"                                                             \
  "ldp q0, q1, [%[w]]\n"                                                           \
  "ldr q2, [%[b]]\n" EDGEFIT_NEON_FMLA_8X4_V012 "3:\n" EDGEFIT_NEON_CLAMP_ROWS_0_3 \
  "12:\n"                                                                          \
  "mov %[t], %[c]\n"                                                               \
  "st1 {v16.4s}, [%[t]], %[ldc]\n"                                                 \
  "st1 {v17.4s}, [%[t]], %[ldc]\n"                                                 \
  "st1 {v18.4s}, [%[t]], %[ldc]\n"                                                 \
  "st1 {v19.4s}, [%[t]], %[ldc]\n"                                                 \
  "st1 {v20.4s}, [%[t]], %[ldc]\n"                                                 \
  "st1 {v21.4s}, [%[t]], %[ldc]\n"                                                 \
  "st1 {v22.4s}, [%[t]], %[ldc]\n"                                                 \
  "st1 {v23.4s}, [%[t]], %[ldc]\n"

// One 8 x W tile (W = 8 or 4): C (rows ldc floats apart) = clamp(init + sum over k of
// w[k][0..8) (rows) x b[k][0..W) (columns)); init = bias[r] per row, or C itself when bias is null
// (a later K block); B rows ldb floats apart. No clamp when mm is null or unbounded (34
// instructions per 8x8 tile).
template <size_t W>
__attribute__((always_inline)) inline void tile_asm(size_t k, const float* bias, const float* w,
                                                    const float* b, size_t ldb, float* c,
                                                    size_t ldc, const f32_minmax* mm) {
  if (mm != nullptr && mm->min == -INFINITY && mm->max == INFINITY) mm = nullptr;
  size_t pairs = k / 2;
  float* t;
#define EDGEFIT_NEON_TILE_OPERANDS                                                              \
  : [pairs] "+r"(pairs), [w] "+r"(w), [b] "+r"(b), [t] "=&r"(t)                                \
  : [k] "r"(k), [ldb] "r"(ldb * sizeof(float)), [bias] "r"(bias), [c] "r"(c),                  \
    [ldc] "r"(ldc * sizeof(float)), [mm] "r"(mm)                                               \
  : "cc", "memory", "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v16", "v17", "v18", "v19", \
    "v20", "v21", "v22", "v23", "v24", "v25", "v26", "v27", "v28", "v29", "v30", "v31"
  if constexpr (W == 8)
    asm volatile(EDGEFIT_NEON_TILE_8X8 EDGEFIT_NEON_TILE_OPERANDS);
  else
    asm volatile(EDGEFIT_NEON_TILE_8X4 EDGEFIT_NEON_TILE_OPERANDS);
#undef EDGEFIT_NEON_TILE_OPERANDS
}
#undef EDGEFIT_NEON_FMLA_8X8_V0123
#undef EDGEFIT_NEON_FMLA_8X8_V4567
#undef EDGEFIT_NEON_KLOOP_8X8
#undef EDGEFIT_NEON_INIT_8X8
#undef EDGEFIT_NEON_STORE_8X8
#undef EDGEFIT_NEON_TILE_8X8
#undef EDGEFIT_NEON_FMLA_8X4_V012
#undef EDGEFIT_NEON_FMLA_8X4_V456
#undef EDGEFIT_NEON_TILE_8X4
#undef EDGEFIT_NEON_CLAMP_ROWS_0_3
#undef EDGEFIT_NEON_CLAMP_ROWS_4_7

// mr x nr of an 8 x W tile: whole tiles straight to C; partial ones (fewer rows, or a packed
// strip's last columns, zero past n) through an [8][W] buffer, so C is never read or written past
// row mr or column nr. The panel always holds 8 rows of weights (zero past m).
template <size_t W>
__attribute__((always_inline)) inline void tile(size_t mr, size_t nr, size_t k, const float* bias,
                                                const float* w, const float* b, size_t ldb,
                                                float* c, size_t ldc, const f32_minmax* mm) {
  if (mr == MR && nr == W) return tile_asm<W>(k, bias, w, b, ldb, c, ldc, mm);
  alignas(16) float t[MR][W] = {};
  if (bias == nullptr)
    for (size_t r = 0; r < mr; ++r)
      for (size_t j = 0; j < nr; ++j) t[r][j] = c[r * ldc + j];
  tile_asm<W>(k, bias, w, b, ldb, &t[0][0], W, mm);
  for (size_t r = 0; r < mr; ++r)
    for (size_t j = 0; j < nr; ++j) c[r * ldc + j] = t[r][j];
}

// 8 rows x the last 1..3 columns of an in-place B, loaded and stored lane by lane.
inline void tile_8x4_lanes(size_t mr, size_t nr, size_t k, const float* panel, const float* b,
                           size_t ldb, float* c, size_t ldc, const f32_minmax* params) {
  const float32x4_t vmin = vdupq_n_f32(params->min);
  const float32x4_t vmax = vdupq_n_f32(params->max);
  const float32x4_t bias0123 = vld1q_f32(panel);
  const float32x4_t bias4567 = vld1q_f32(panel + 4);
  float32x4_t c0 = vdupq_laneq_f32(bias0123, 0);
  float32x4_t c1 = vdupq_laneq_f32(bias0123, 1);
  float32x4_t c2 = vdupq_laneq_f32(bias0123, 2);
  float32x4_t c3 = vdupq_laneq_f32(bias0123, 3);
  float32x4_t c4 = vdupq_laneq_f32(bias4567, 0);
  float32x4_t c5 = vdupq_laneq_f32(bias4567, 1);
  float32x4_t c6 = vdupq_laneq_f32(bias4567, 2);
  float32x4_t c7 = vdupq_laneq_f32(bias4567, 3);
  const float* w = panel + MR;
  for (size_t kk = 0; kk < k; ++kk) {
    const float32x4_t w0123 = vld1q_f32(w);
    const float32x4_t w4567 = vld1q_f32(w + 4);
    w += MR;
    const float32x4_t bv = load_partial(b, nr);
    b += ldb;
    c0 = vfmaq_laneq_f32(c0, bv, w0123, 0);
    c1 = vfmaq_laneq_f32(c1, bv, w0123, 1);
    c2 = vfmaq_laneq_f32(c2, bv, w0123, 2);
    c3 = vfmaq_laneq_f32(c3, bv, w0123, 3);
    c4 = vfmaq_laneq_f32(c4, bv, w4567, 0);
    c5 = vfmaq_laneq_f32(c5, bv, w4567, 1);
    c6 = vfmaq_laneq_f32(c6, bv, w4567, 2);
    c7 = vfmaq_laneq_f32(c7, bv, w4567, 3);
  }
  // An if-chain rather than a loop over an array of the results, which GCC puts on the stack.
  auto store = [&](size_t i, float32x4_t v) {
    store_partial(c + i * ldc, clamp(v, vmin, vmax), nr);
  };
  store(0, c0);
  if (mr > 1) store(1, c1);
  if (mr > 2) store(2, c2);
  if (mr > 3) store(3, c3);
  if (mr > 4) store(4, c4);
  if (mr > 5) store(5, c5);
  if (mr > 6) store(6, c6);
  if (mr > 7) store(7, c7);
}

}  // namespace

void f32_gemm_ukernel_8x8__neonfma(size_t mr, size_t n, size_t k, const float* panel,
                                   const float* b, size_t ldb, float* c, size_t ldc,
                                   const f32_minmax* params) {
  size_t j = 0;
  for (; j + 8 <= n; j += 8) tile<8>(mr, 8, k, panel, panel + MR, b + j, ldb, c + j, ldc, params);
  if (j + 4 <= n) {
    tile<4>(mr, 4, k, panel, panel + MR, b + j, ldb, c + j, ldc, params);
    j += 4;
  }
  if (j < n) tile_8x4_lanes(mr, n - j, k, panel, b + j, ldb, c + j, ldc, params);
}

// Packed-B variant: strips of 8 columns ([k][8], zero past n), so every B load is a full q pair;
// a strip's last 1-4 columns take the 8x4 tile.
void f32_gemm_packed_ukernel_8x8__neonfma(size_t mr, size_t n, size_t k, const float* w,
                                          const float* bias, const float* b, float* c, size_t ldc,
                                          const f32_minmax* params) {
  for (size_t j = 0; j < n; j += 8, b += k * 8) {
    const size_t nr = n - j < 8 ? n - j : 8;
    if (nr <= 4)  // half the fmla of an 8x8 tile (7x7 images: 49 = 6 x 8 + 1)
      tile<4>(mr, nr, k, bias, w, b, 8, c + j, ldc, params);
    else
      tile<8>(mr, nr, k, bias, w, b, 8, c + j, ldc, params);
  }
}

// 4 rows at a time, 4 k lanes per fmla (8 k per step): accumulator vectors per row, reduced
// pairwise at the end so the 4 results land in one vector (bias add, clamp and a single store).
void f32_gemv_ukernel_4x4__neonfma(size_t m, size_t k, const float* w, const float* bias,
                                   const float* x, float* y, const f32_minmax* params) {
  const float32x4_t vmin = vdupq_n_f32(params->min);
  const float32x4_t vmax = vdupq_n_f32(params->max);
  size_t i = 0;
  for (; i + 4 <= m; i += 4) {
    const float* w0 = w + i * k;
    const float* w1 = w0 + k;
    const float* w2 = w1 + k;
    const float* w3 = w2 + k;
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
    float32x4_t b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    size_t kk = 0;
    // 8 k per step in two accumulator sets: paired loads, half the loop overhead per fmla.
    for (; kk + 8 <= k; kk += 8) {
      const float32x4_t xa = vld1q_f32(x + kk), xb = vld1q_f32(x + kk + 4);
      a0 = vfmaq_f32(a0, vld1q_f32(w0 + kk), xa);
      b0 = vfmaq_f32(b0, vld1q_f32(w0 + kk + 4), xb);
      a1 = vfmaq_f32(a1, vld1q_f32(w1 + kk), xa);
      b1 = vfmaq_f32(b1, vld1q_f32(w1 + kk + 4), xb);
      a2 = vfmaq_f32(a2, vld1q_f32(w2 + kk), xa);
      b2 = vfmaq_f32(b2, vld1q_f32(w2 + kk + 4), xb);
      a3 = vfmaq_f32(a3, vld1q_f32(w3 + kk), xa);
      b3 = vfmaq_f32(b3, vld1q_f32(w3 + kk + 4), xb);
    }
    a0 = vaddq_f32(a0, b0);
    a1 = vaddq_f32(a1, b1);
    a2 = vaddq_f32(a2, b2);
    a3 = vaddq_f32(a3, b3);
    if (kk + 4 <= k) {
      const float32x4_t xv = vld1q_f32(x + kk);
      a0 = vfmaq_f32(a0, vld1q_f32(w0 + kk), xv);
      a1 = vfmaq_f32(a1, vld1q_f32(w1 + kk), xv);
      a2 = vfmaq_f32(a2, vld1q_f32(w2 + kk), xv);
      a3 = vfmaq_f32(a3, vld1q_f32(w3 + kk), xv);
      kk += 4;
    }
    float32x4_t sum = vpaddq_f32(vpaddq_f32(a0, a1), vpaddq_f32(a2, a3));
    if (kk < k) {
      // k tail: the same dot products over the remaining 1..3 columns, lane by lane.
      float32x4_t t = vdupq_n_f32(0.0f);
      for (; kk < k; ++kk) {
        float32x4_t wv = vdupq_n_f32(w0[kk]);
        wv = vsetq_lane_f32(w1[kk], wv, 1);
        wv = vsetq_lane_f32(w2[kk], wv, 2);
        wv = vsetq_lane_f32(w3[kk], wv, 3);
        t = vfmaq_n_f32(t, wv, x[kk]);
      }
      sum = vaddq_f32(sum, t);
    }
    if (bias != nullptr) sum = vaddq_f32(sum, vld1q_f32(bias + i));
    vst1q_f32(y + i, clamp(sum, vmin, vmax));
  }
  for (; i < m; ++i) {
    const float* wr = w + i * k;
    float32x4_t a = vdupq_n_f32(0.0f);
    size_t kk = 0;
    for (; kk + 4 <= k; kk += 4) a = vfmaq_f32(a, vld1q_f32(wr + kk), vld1q_f32(x + kk));
    float s = vaddvq_f32(a);
    for (; kk < k; ++kk) s += wr[kk] * x[kk];
    if (bias != nullptr) s += bias[i];
    y[i] = f32_clamp(s, params);
  }
}

}  // namespace edgefit
