// NEON+FMA f32 GEMM microkernel, 8 rows x 8 columns: 16 named q-register accumulators, one
// vfmaq_laneq_f32 per accumulator per k (8 weights in two q registers, 8 B values in two).
// Named accumulators rather than an array: GCC 12 spilled a [8][2] float32x4_t array to the stack.
// Column tails: 4 columns with the same tile halved, then 1..3 columns loaded lane by lane (never
// reading past column n of B).
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

// ---- Full 8x8 tiles in inline assembly.
// GCC 12 compiles the intrinsics k loop to 23 instructions per 16 fmla (separate counter, compare
// and address adds; unrolled, it also copies accumulators between registers), and qemu counted
// those as a third of MobileNetV2's instructions beyond its fmla. The assembly loop is 4 ldp + 32
// fmla + 4 scalar per two k. Its registers: accumulators v16..v31 (row r: v[16+2r] = columns 0-3,
// v[17+2r] = 4-7), weights v0/v1 and v4/v5, B v2/v3 and v6/v7 (v8..v15, callee-saved, unused).

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

// One full 8x8 tile: C (rows ldc floats apart) = clamp(init + sum over k of w[k][0..8) (rows) x
// b[k][0..8) (columns)); init = bias[r] per row, or C itself when bias is null (a later K block).
__attribute__((always_inline)) inline void tile_8x8_asm(size_t k, const float* bias, const float* w,
                                                        const float* b, size_t ldb, float* c,
                                                        size_t ldc, const f32_minmax* mm) {
  // An unbounded clamp (layers with no activation) is skipped: 34 instructions per tile.
  if (mm != nullptr && mm->min == -INFINITY && mm->max == INFINITY) mm = nullptr;
  size_t pairs = k / 2;
  float* t;
  asm volatile(EDGEFIT_NEON_INIT_8X8 EDGEFIT_NEON_KLOOP_8X8 EDGEFIT_NEON_STORE_8X8
               : [pairs] "+r"(pairs), [w] "+r"(w), [b] "+r"(b), [t] "=&r"(t)
               : [k] "r"(k), [ldb] "r"(ldb * sizeof(float)), [bias] "r"(bias), [c] "r"(c),
                 [ldc] "r"(ldc * sizeof(float)), [mm] "r"(mm)
               : "cc", "memory", "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v16", "v17",
                 "v18", "v19", "v20", "v21", "v22", "v23", "v24", "v25", "v26", "v27", "v28", "v29",
                 "v30", "v31");
}
#undef EDGEFIT_NEON_FMLA_8X8_V0123
#undef EDGEFIT_NEON_FMLA_8X8_V4567
#undef EDGEFIT_NEON_KLOOP_8X8
#undef EDGEFIT_NEON_INIT_8X8
#undef EDGEFIT_NEON_STORE_8X8

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

// One 8-row x 4-column tile, otherwise as tile_8x8_asm (B rows hold at least 4 readable floats).
__attribute__((always_inline)) inline void tile_8x4_asm(size_t k, const float* bias, const float* w,
                                                        const float* b, size_t ldb, float* c,
                                                        size_t ldc, const f32_minmax* mm) {
  if (mm != nullptr && mm->min == -INFINITY && mm->max == INFINITY) mm = nullptr;
  size_t pairs = k / 2;
  float* t;
  asm volatile(EDGEFIT_NEON_TILE_8X4
               : [pairs] "+r"(pairs), [w] "+r"(w), [b] "+r"(b), [t] "=&r"(t)
               : [k] "r"(k), [ldb] "r"(ldb * sizeof(float)), [bias] "r"(bias), [c] "r"(c),
                 [ldc] "r"(ldc * sizeof(float)), [mm] "r"(mm)
               : "cc", "memory", "v0", "v1", "v2", "v4", "v5", "v6", "v16", "v17", "v18", "v19",
                 "v20", "v21", "v22", "v23");
}
#undef EDGEFIT_NEON_FMLA_8X4_V012
#undef EDGEFIT_NEON_FMLA_8X4_V456
#undef EDGEFIT_NEON_TILE_8X4
#undef EDGEFIT_NEON_CLAMP_ROWS_0_3
#undef EDGEFIT_NEON_CLAMP_ROWS_4_7

// A packed strip's last 1..4 columns (nr of them) in an 8x4 tile: through an [8][4] buffer when
// nr < 4, so C is never read or written past column nr.
inline void tile_8x4_packed(size_t nr, size_t k, const float* bias, const float* w, const float* b,
                            float* c, size_t ldc, const f32_minmax* mm) {
  if (nr == 4) return tile_8x4_asm(k, bias, w, b, 8, c, ldc, mm);
  alignas(16) float t[MR][4] = {};
  if (bias == nullptr)
    for (size_t r = 0; r < MR; ++r)
      for (size_t j = 0; j < nr; ++j) t[r][j] = c[r * ldc + j];
  tile_8x4_asm(k, bias, w, b, 8, &t[0][0], 4, mm);
  for (size_t r = 0; r < MR; ++r)
    for (size_t j = 0; j < nr; ++j) c[r * ldc + j] = t[r][j];
}

// 8 rows x 4 columns (full = 4 columns, else `nr` < 4 columns loaded and stored lane by lane).
template <bool full>
inline void tile_8x4(size_t mr, size_t nr, size_t k, const float* panel, const float* b, size_t ldb,
                     float* c, size_t ldc, float32x4_t vmin, float32x4_t vmax) {
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
    const float32x4_t bv = full ? vld1q_f32(b) : load_partial(b, nr);
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
    v = clamp(v, vmin, vmax);
    if (full)
      vst1q_f32(c + i * ldc, v);
    else
      store_partial(c + i * ldc, v, nr);
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
  const float32x4_t vmin = vdupq_n_f32(params->min);
  const float32x4_t vmax = vdupq_n_f32(params->max);
  const float32x4_t bias0123 = vld1q_f32(panel);
  const float32x4_t bias4567 = vld1q_f32(panel + 4);
  size_t j = 0;
  for (; j + 8 <= n; j += 8) {
    if (mr == MR) {
      tile_8x8_asm(k, panel, panel + MR, b + j, ldb, c + j, ldc, params);
      continue;
    }
    // Row r of the tile: c{r}a holds columns j..j+3, c{r}b columns j+4..j+7.
    float32x4_t c0a = vdupq_laneq_f32(bias0123, 0), c0b = c0a;
    float32x4_t c1a = vdupq_laneq_f32(bias0123, 1), c1b = c1a;
    float32x4_t c2a = vdupq_laneq_f32(bias0123, 2), c2b = c2a;
    float32x4_t c3a = vdupq_laneq_f32(bias0123, 3), c3b = c3a;
    float32x4_t c4a = vdupq_laneq_f32(bias4567, 0), c4b = c4a;
    float32x4_t c5a = vdupq_laneq_f32(bias4567, 1), c5b = c5a;
    float32x4_t c6a = vdupq_laneq_f32(bias4567, 2), c6b = c6a;
    float32x4_t c7a = vdupq_laneq_f32(bias4567, 3), c7b = c7a;
    const float* w = panel + MR;
    const float* bp = b + j;
    for (size_t kk = 0; kk < k; ++kk) {
      const float32x4_t w0123 = vld1q_f32(w);
      const float32x4_t w4567 = vld1q_f32(w + 4);
      w += MR;
      const float32x4_t ba = vld1q_f32(bp);
      const float32x4_t bb = vld1q_f32(bp + 4);
      bp += ldb;
      c0a = vfmaq_laneq_f32(c0a, ba, w0123, 0);
      c0b = vfmaq_laneq_f32(c0b, bb, w0123, 0);
      c1a = vfmaq_laneq_f32(c1a, ba, w0123, 1);
      c1b = vfmaq_laneq_f32(c1b, bb, w0123, 1);
      c2a = vfmaq_laneq_f32(c2a, ba, w0123, 2);
      c2b = vfmaq_laneq_f32(c2b, bb, w0123, 2);
      c3a = vfmaq_laneq_f32(c3a, ba, w0123, 3);
      c3b = vfmaq_laneq_f32(c3b, bb, w0123, 3);
      c4a = vfmaq_laneq_f32(c4a, ba, w4567, 0);
      c4b = vfmaq_laneq_f32(c4b, bb, w4567, 0);
      c5a = vfmaq_laneq_f32(c5a, ba, w4567, 1);
      c5b = vfmaq_laneq_f32(c5b, bb, w4567, 1);
      c6a = vfmaq_laneq_f32(c6a, ba, w4567, 2);
      c6b = vfmaq_laneq_f32(c6b, bb, w4567, 2);
      c7a = vfmaq_laneq_f32(c7a, ba, w4567, 3);
      c7b = vfmaq_laneq_f32(c7b, bb, w4567, 3);
    }
    // Stores row by row with an early exit, so no accumulator needs an addressable array.
    float* cr = c + j;
    vst1q_f32(cr, clamp(c0a, vmin, vmax));
    vst1q_f32(cr + 4, clamp(c0b, vmin, vmax));
    if (mr > 1) {
      cr += ldc;
      vst1q_f32(cr, clamp(c1a, vmin, vmax));
      vst1q_f32(cr + 4, clamp(c1b, vmin, vmax));
    }
    if (mr > 2) {
      cr += ldc;
      vst1q_f32(cr, clamp(c2a, vmin, vmax));
      vst1q_f32(cr + 4, clamp(c2b, vmin, vmax));
    }
    if (mr > 3) {
      cr += ldc;
      vst1q_f32(cr, clamp(c3a, vmin, vmax));
      vst1q_f32(cr + 4, clamp(c3b, vmin, vmax));
    }
    if (mr > 4) {
      cr += ldc;
      vst1q_f32(cr, clamp(c4a, vmin, vmax));
      vst1q_f32(cr + 4, clamp(c4b, vmin, vmax));
    }
    if (mr > 5) {
      cr += ldc;
      vst1q_f32(cr, clamp(c5a, vmin, vmax));
      vst1q_f32(cr + 4, clamp(c5b, vmin, vmax));
    }
    if (mr > 6) {
      cr += ldc;
      vst1q_f32(cr, clamp(c6a, vmin, vmax));
      vst1q_f32(cr + 4, clamp(c6b, vmin, vmax));
    }
    if (mr > 7) {
      cr += ldc;
      vst1q_f32(cr, clamp(c7a, vmin, vmax));
      vst1q_f32(cr + 4, clamp(c7b, vmin, vmax));
    }
  }
  if (j + 4 <= n) {
    if (mr == MR)
      tile_8x4_asm(k, panel, panel + MR, b + j, ldb, c + j, ldc, params);
    else
      tile_8x4<true>(mr, 4, k, panel, b + j, ldb, c + j, ldc, vmin, vmax);
    j += 4;
  }
  if (j < n) tile_8x4<false>(mr, n - j, k, panel, b + j, ldb, c + j, ldc, vmin, vmax);
}

namespace {

// 8 floats of row r of c (columns past nr: zero on load, untouched on store).
inline void load_row8(const float* p, size_t nr, float32x4_t& a, float32x4_t& b) {
  if (nr >= 8) {
    a = vld1q_f32(p);
    b = vld1q_f32(p + 4);
  } else if (nr >= 4) {
    a = vld1q_f32(p);
    b = nr > 4 ? load_partial(p + 4, nr - 4) : vdupq_n_f32(0.0f);
  } else {
    a = load_partial(p, nr);
    b = vdupq_n_f32(0.0f);
  }
}

inline void store_row8(float* p, size_t nr, float32x4_t a, float32x4_t b) {
  if (nr >= 8) {
    vst1q_f32(p, a);
    vst1q_f32(p + 4, b);
  } else if (nr >= 4) {
    vst1q_f32(p, a);
    if (nr > 4) store_partial(p + 4, b, nr - 4);
  } else {
    store_partial(p, a, nr);
  }
}

}  // namespace

// Packed-B variant: strips of 8 columns ([k][8], zero past n), so every B load is a full q pair;
// only the loads of c (accumulating K blocks) and the stores of a tail strip go lane by lane.
void f32_gemm_packed_ukernel_8x8__neonfma(size_t mr, size_t n, size_t k, const float* w,
                                          const float* bias, const float* b, float* c, size_t ldc,
                                          const f32_minmax* params) {
  for (size_t j = 0; j < n; j += 8, b += k * 8) {
    const size_t nr = n - j < 8 ? n - j : 8;
    float* cj = c + j;
    if (mr == MR && nr == 8) {
      tile_8x8_asm(k, bias, w, b, 8, cj, ldc, params);
      continue;
    }
    if (mr == MR && nr <= 4) {  // half the fmla of an 8x8 tile (7x7 images: 49 = 6 x 8 + 1)
      tile_8x4_packed(nr, k, bias, w, b, cj, ldc, params);
      continue;
    }
    float32x4_t c0a, c0b, c1a, c1b, c2a, c2b, c3a, c3b, c4a, c4b, c5a, c5b, c6a, c6b, c7a, c7b;
    if (bias != nullptr) {
      const float32x4_t bias0123 = vld1q_f32(bias);
      const float32x4_t bias4567 = vld1q_f32(bias + 4);
      c0a = c0b = vdupq_laneq_f32(bias0123, 0);
      c1a = c1b = vdupq_laneq_f32(bias0123, 1);
      c2a = c2b = vdupq_laneq_f32(bias0123, 2);
      c3a = c3b = vdupq_laneq_f32(bias0123, 3);
      c4a = c4b = vdupq_laneq_f32(bias4567, 0);
      c5a = c5b = vdupq_laneq_f32(bias4567, 1);
      c6a = c6b = vdupq_laneq_f32(bias4567, 2);
      c7a = c7b = vdupq_laneq_f32(bias4567, 3);
    } else {
      // Rows past mr start from row mr - 1 (read, never stored).
      auto row = [&](size_t r) { return cj + (r < mr ? r : mr - 1) * ldc; };
      load_row8(row(0), nr, c0a, c0b);
      load_row8(row(1), nr, c1a, c1b);
      load_row8(row(2), nr, c2a, c2b);
      load_row8(row(3), nr, c3a, c3b);
      load_row8(row(4), nr, c4a, c4b);
      load_row8(row(5), nr, c5a, c5b);
      load_row8(row(6), nr, c6a, c6b);
      load_row8(row(7), nr, c7a, c7b);
    }
    const float* wp = w;
    const float* bp = b;
    for (size_t kk = 0; kk < k; ++kk) {
      const float32x4_t w0123 = vld1q_f32(wp);
      const float32x4_t w4567 = vld1q_f32(wp + 4);
      wp += MR;
      const float32x4_t ba = vld1q_f32(bp);
      const float32x4_t bb = vld1q_f32(bp + 4);
      bp += 8;
      c0a = vfmaq_laneq_f32(c0a, ba, w0123, 0);
      c0b = vfmaq_laneq_f32(c0b, bb, w0123, 0);
      c1a = vfmaq_laneq_f32(c1a, ba, w0123, 1);
      c1b = vfmaq_laneq_f32(c1b, bb, w0123, 1);
      c2a = vfmaq_laneq_f32(c2a, ba, w0123, 2);
      c2b = vfmaq_laneq_f32(c2b, bb, w0123, 2);
      c3a = vfmaq_laneq_f32(c3a, ba, w0123, 3);
      c3b = vfmaq_laneq_f32(c3b, bb, w0123, 3);
      c4a = vfmaq_laneq_f32(c4a, ba, w4567, 0);
      c4b = vfmaq_laneq_f32(c4b, bb, w4567, 0);
      c5a = vfmaq_laneq_f32(c5a, ba, w4567, 1);
      c5b = vfmaq_laneq_f32(c5b, bb, w4567, 1);
      c6a = vfmaq_laneq_f32(c6a, ba, w4567, 2);
      c6b = vfmaq_laneq_f32(c6b, bb, w4567, 2);
      c7a = vfmaq_laneq_f32(c7a, ba, w4567, 3);
      c7b = vfmaq_laneq_f32(c7b, bb, w4567, 3);
    }
    if (params != nullptr) {
      const float32x4_t vmin = vdupq_n_f32(params->min), vmax = vdupq_n_f32(params->max);
      c0a = clamp(c0a, vmin, vmax), c0b = clamp(c0b, vmin, vmax);
      c1a = clamp(c1a, vmin, vmax), c1b = clamp(c1b, vmin, vmax);
      c2a = clamp(c2a, vmin, vmax), c2b = clamp(c2b, vmin, vmax);
      c3a = clamp(c3a, vmin, vmax), c3b = clamp(c3b, vmin, vmax);
      c4a = clamp(c4a, vmin, vmax), c4b = clamp(c4b, vmin, vmax);
      c5a = clamp(c5a, vmin, vmax), c5b = clamp(c5b, vmin, vmax);
      c6a = clamp(c6a, vmin, vmax), c6b = clamp(c6b, vmin, vmax);
      c7a = clamp(c7a, vmin, vmax), c7b = clamp(c7b, vmin, vmax);
    }
    store_row8(cj, nr, c0a, c0b);
    if (mr > 1) store_row8(cj + ldc, nr, c1a, c1b);
    if (mr > 2) store_row8(cj + 2 * ldc, nr, c2a, c2b);
    if (mr > 3) store_row8(cj + 3 * ldc, nr, c3a, c3b);
    if (mr > 4) store_row8(cj + 4 * ldc, nr, c4a, c4b);
    if (mr > 5) store_row8(cj + 5 * ldc, nr, c5a, c5b);
    if (mr > 6) store_row8(cj + 6 * ldc, nr, c6a, c6b);
    if (mr > 7) store_row8(cj + 7 * ldc, nr, c7a, c7b);
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
