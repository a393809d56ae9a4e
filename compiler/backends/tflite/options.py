"""Builders for the TFLite BuiltinOptions tables the lowerings use (each returns an OptionsFn)."""

from __future__ import annotations

import numpy as np
import tflite

from edgefit.compiler.backends.tflite.flatmodel import OptionsFn

T = tflite
PADDING = {"SAME": T.Padding.SAME, "VALID": T.Padding.VALID}


def conv2d(padding: str, stride: tuple[int, int], dilation: tuple[int, int], act: int) -> OptionsFn:
    def write(b):
        T.Conv2DOptionsStart(b)
        T.Conv2DOptionsAddPadding(b, PADDING[padding])
        T.Conv2DOptionsAddStrideH(b, stride[0])
        T.Conv2DOptionsAddStrideW(b, stride[1])
        T.Conv2DOptionsAddDilationHFactor(b, dilation[0])
        T.Conv2DOptionsAddDilationWFactor(b, dilation[1])
        T.Conv2DOptionsAddFusedActivationFunction(b, act)
        return T.BuiltinOptions.Conv2DOptions, T.Conv2DOptionsEnd(b)

    return write


def depthwise(
    padding: str, stride: tuple[int, int], dilation: tuple[int, int], multiplier: int, act: int
) -> OptionsFn:
    def write(b):
        T.DepthwiseConv2DOptionsStart(b)
        T.DepthwiseConv2DOptionsAddPadding(b, PADDING[padding])
        T.DepthwiseConv2DOptionsAddStrideH(b, stride[0])
        T.DepthwiseConv2DOptionsAddStrideW(b, stride[1])
        T.DepthwiseConv2DOptionsAddDepthMultiplier(b, multiplier)
        T.DepthwiseConv2DOptionsAddDilationHFactor(b, dilation[0])
        T.DepthwiseConv2DOptionsAddDilationWFactor(b, dilation[1])
        T.DepthwiseConv2DOptionsAddFusedActivationFunction(b, act)
        return T.BuiltinOptions.DepthwiseConv2DOptions, T.DepthwiseConv2DOptionsEnd(b)

    return write


def fully_connected(act: int) -> OptionsFn:
    def write(b):
        T.FullyConnectedOptionsStart(b)
        T.FullyConnectedOptionsAddFusedActivationFunction(b, act)
        return T.BuiltinOptions.FullyConnectedOptions, T.FullyConnectedOptionsEnd(b)

    return write


def add(act: int) -> OptionsFn:
    def write(b):
        T.AddOptionsStart(b)
        T.AddOptionsAddFusedActivationFunction(b, act)
        return T.BuiltinOptions.AddOptions, T.AddOptionsEnd(b)

    return write


def mul(act: int) -> OptionsFn:
    def write(b):
        T.MulOptionsStart(b)
        T.MulOptionsAddFusedActivationFunction(b, act)
        return T.BuiltinOptions.MulOptions, T.MulOptionsEnd(b)

    return write


def concat(axis: int) -> OptionsFn:
    def write(b):
        T.ConcatenationOptionsStart(b)
        T.ConcatenationOptionsAddAxis(b, axis)
        return T.BuiltinOptions.ConcatenationOptions, T.ConcatenationOptionsEnd(b)

    return write


def pool(padding: str, kernel: tuple[int, int], stride: tuple[int, int]) -> OptionsFn:
    def write(b):
        T.Pool2DOptionsStart(b)
        T.Pool2DOptionsAddPadding(b, PADDING[padding])
        T.Pool2DOptionsAddStrideH(b, stride[0])
        T.Pool2DOptionsAddStrideW(b, stride[1])
        T.Pool2DOptionsAddFilterHeight(b, kernel[0])
        T.Pool2DOptionsAddFilterWidth(b, kernel[1])
        return T.BuiltinOptions.Pool2DOptions, T.Pool2DOptionsEnd(b)

    return write


def reducer(keep_dims: bool) -> OptionsFn:
    def write(b):
        T.ReducerOptionsStart(b)
        T.ReducerOptionsAddKeepDims(b, keep_dims)
        return T.BuiltinOptions.ReducerOptions, T.ReducerOptionsEnd(b)

    return write


def softmax(beta: float = 1.0) -> OptionsFn:
    def write(b):
        T.SoftmaxOptionsStart(b)
        T.SoftmaxOptionsAddBeta(b, beta)
        return T.BuiltinOptions.SoftmaxOptions, T.SoftmaxOptionsEnd(b)

    return write


def reshape(b):
    T.ReshapeOptionsStart(b)
    return T.BuiltinOptions.ReshapeOptions, T.ReshapeOptionsEnd(b)


def transpose(b):
    T.TransposeOptionsStart(b)
    return T.BuiltinOptions.TransposeOptions, T.TransposeOptionsEnd(b)


def pad(b):
    T.PadOptionsStart(b)
    return T.BuiltinOptions.PadOptions, T.PadOptionsEnd(b)


def padv2(b):
    T.PadV2OptionsStart(b)
    return T.BuiltinOptions.PadV2Options, T.PadV2OptionsEnd(b)


def cast_to_int32(src: type) -> OptionsFn:
    """CAST from the numpy dtype `src` to int32 (GATHER's index type)."""
    from edgefit.compiler.backends.tflite.flatmodel import TENSOR_TYPES

    def write(b):
        T.CastOptionsStart(b)
        T.CastOptionsAddInDataType(b, TENSOR_TYPES[np.dtype(src)])
        T.CastOptionsAddOutDataType(b, T.TensorType.INT32)
        return T.BuiltinOptions.CastOptions, T.CastOptionsEnd(b)

    return write


def gather_axis0(b):
    T.GatherOptionsStart(b)
    T.GatherOptionsAddAxis(b, 0)
    return T.BuiltinOptions.GatherOptions, T.GatherOptionsEnd(b)


def slice_(b):
    T.SliceOptionsStart(b)
    return T.BuiltinOptions.SliceOptions, T.SliceOptionsEnd(b)
