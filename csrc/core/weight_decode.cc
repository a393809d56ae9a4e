#include "core/weight_decode.h"

namespace edgefit {

cb_weights codebook_weights(const ValueDef& w, size_t m, size_t k) {
  const CodebookView cv = codebook_view(w);
  return cb_weights{m, k, cv.bits, cv.row_bytes, cv.packed, cv.table, cv.group, cv.row_scale};
}

void decode_weights_f32(const ValueDef& w, float* out) {
  const size_t o = w.rows(), k = w.cols();
  if (w.encoding == Encoding::kCodebook) {
    const cb_weights cw = codebook_weights(w, o, k);
    cb_gemm_decode_rows(0, o, &cw, out);
    return;
  }
  const Int8View q = int8_view(w);
  for (size_t i = 0; i < o; ++i)
    for (size_t j = 0; j < k; ++j) out[i * k + j] = float(q.q[i * k + j]) * q.scale[i];
}

}  // namespace edgefit
