"""The explicit registry: ONNX op type -> converter.

A converter is ``(ctx, node) -> None``; it emits IR nodes through the
:class:`~verinet.onnx_import.context.ConvertContext` and raises
:class:`~verinet.onnx_import.context.Unsupported` with a reason.  Op types absent here are
unsupported (unless every input is constant: such nodes are folded at import time).
"""

from __future__ import annotations

from collections.abc import Callable

import onnx

from verinet.onnx_import import ops_conv, ops_elementwise, ops_linear, ops_shape
from verinet.onnx_import.context import ConvertContext

Converter = Callable[[ConvertContext, onnx.NodeProto], None]

CONVERTERS: dict[str, Converter] = {
    # elementwise arithmetic
    "Add": ops_elementwise.convert_binary,
    "Sub": ops_elementwise.convert_binary,
    "Mul": ops_elementwise.convert_binary,
    "Div": ops_elementwise.convert_binary,
    # dense layers
    "MatMul": ops_linear.convert_matmul,
    "Gemm": ops_linear.convert_gemm,
    # activations
    "Relu": ops_elementwise.convert_relu,
    "LeakyRelu": ops_elementwise.convert_leaky_relu,
    "Sigmoid": ops_elementwise.convert_sigmoid,
    "Tanh": ops_elementwise.convert_tanh,
    "Clip": ops_elementwise.convert_clip,
    "Softmax": ops_elementwise.convert_softmax,
    # layout
    "Flatten": ops_shape.convert_flatten,
    "Reshape": ops_shape.convert_reshape,
    "Squeeze": ops_shape.convert_squeeze,
    "Unsqueeze": ops_shape.convert_unsqueeze,
    "Transpose": ops_shape.convert_transpose,
    "Concat": ops_shape.convert_concat,
    # convolution, normalisation, pooling
    "Conv": ops_conv.convert_conv,
    "BatchNormalization": ops_conv.convert_batchnorm,
    "MaxPool": ops_conv.convert_maxpool,
    "AveragePool": ops_conv.convert_avgpool,
    "GlobalAveragePool": ops_conv.convert_global_avgpool,
    "Pad": ops_conv.convert_pad,
    # pass-through and shape queries
    "Identity": ops_elementwise.convert_identity,
    "Dropout": ops_elementwise.convert_dropout,
    "Cast": ops_elementwise.convert_cast,
    "Shape": ops_elementwise.convert_shape,
    "Size": ops_elementwise.convert_size,
}
