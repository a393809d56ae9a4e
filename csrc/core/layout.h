// Which activations the executor keeps channel-blocked (NCHW16c, kernels/f32-nchwc), decided
// once per model at load, and the reorder nodes at the borders of those regions.
#pragma once

#include <vector>

#include "core/loader.h"
#include "core/weight_store.h"

namespace edgefit {

// Rewrites `model` in place: inserts "to_nchwc" / "from_nchwc" nodes (and their values) where a
// blocked region starts or ends, and returns, per value of the rewritten model, whether it is
// stored blocked. Blocked are the outputs of undilated convolutions, ungrouped or depthwise,
// whose channel counts are multiples of 16 and whose weights are dense, int8 or codebooks
// (block-sparse ones keep their CHW SpMM), and of add / relu / relu6 / hardswish / max pool whose
// inputs are all blocked; a global average pool reads a blocked input directly. An ungrouped
// convolution of fewer than 16 input channels (a stem reading an image) reads its plain input as
// it is and writes blocks; others need their input blocked (a reorder). Graph inputs and outputs
// stay NCHW. A region (values joined through the nodes that produce them) is kept blocked only when
// its convolutions outnumber its reorders at least two to one: each reorder is a copy of a tensor,
// and a MobileNetV2 block (1x1, depthwise, 1x1) would pay two per two convolutions. Then an add of
// two blocked tensors, one the sole use of a blocked convolution without an activation, is fused
// into that convolution (its other input added before the clamp; the conv gets the add's
// activation, attr "_residual" and the residual as its last input).
std::vector<bool> plan_nchwc(Model& model);

// Rewrites `model` so that tensors whose channels almost fill whole blocks (at most a third short:
// MobileNetV2's 24 channels -> 32) are stored with zero channels up to the block, where every
// node around them allows it: ungrouped convolutions with dense f32 weights (zero filters write
// the extra channels, zero weights read them) and add / relu / relu6 / hardswish between such
// tensors. plan_nchwc can then keep the whole region blocked. Graph inputs and outputs keep their
// shapes, so results are unchanged; the padded weights live in `store` (measured at 1 and 2
// threads: csrc/README.md).
void pad_channels_to_blocks(Model& model, WeightStore& store);

}  // namespace edgefit
