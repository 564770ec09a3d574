"""Float ONNX models into the golden model's float layers.

Gemm / MatMul / Conv become :class:`~golden_model.graph.Dense` /
:class:`~golden_model.graph.Conv2d` with float32 weights and bias; an ``Add`` of a constant
right after one is folded into its bias; each ``Relu`` is fused into the last weighted layer
before it, across MaxPool / Flatten (which commute with it).
"""

import numpy as np

from golden_model.graph import Conv2d, Dense, GraphError

from .chain import float_constant
from .nodes import node_desc
from .reader import OnnxImport, Reader

__all__ = ["FloatReader"]


class FloatReader(Reader):
    """Reads a float :class:`~.chain.Chain`: ``FloatReader(chain).read()`` is an
    :class:`~.reader.OnnxImport` of kind ``"float"`` holding ``layers``."""

    def _weighted_layer(self, op):
        node = op.node
        name = self._name(node, "fc" if op.kind == "dense" else "conv")
        w = float_constant(node, op.w, "weights")
        if op.kind == "dense" and op.out_axis == 1:
            w = np.ascontiguousarray(w.T)
        b = (np.zeros(op.out_ch, np.float32) if op.bias is None
             else self._bias_vector(node, float_constant(node, op.bias, "bias")))
        layer = (Dense(w, b, name=name) if op.kind == "dense"
                 else Conv2d(w, b, stride=op.stride, padding=op.padding, name=name))
        self._append(layer, node.output[0])
        self.fuse_target = layer

    def _add_bias(self, node, value):
        b = self._bias_vector(node, float_constant(node, value, "bias"))
        target = self.fuse_target
        target.b = (target.b + b).astype(np.float32)
        self.tensors[-1] = node.output[0]

    def _relu(self, node):
        weighted = [i for i, layer in enumerate(self.layers)
                    if isinstance(layer, (Dense, Conv2d))]
        if not weighted:
            raise GraphError(f"Relu {node_desc(node)} comes before any Gemm/MatMul/Conv; it "
                             "cannot be fused")
        last = weighted[-1]
        self.layers[last].relu = True
        between = self.layers[last + 1:]
        if between:
            # max(relu(x)) = relu(max(x)) and flattening commutes: fuse into the layer, the
            # pooled / flattened tensors in between are then post-ReLU (no ONNX tensor).
            for i in range(last + 1, len(self.tensors) - 1):
                self.tensors[i] = None
            self.notes.append(f"Relu {node.name or node.output[0]!r} fused into "
                              f"{self.layers[last].name!r} across "
                              f"{', '.join(type(x).__name__ for x in between)}")
        self.tensors[-1] = node.output[0]

    def _result(self):
        return OnnxImport("float", self.chain.input_name, self.chain.input_shape,
                          layers=self.layers, tensors=self.tensors, notes=self.notes)
