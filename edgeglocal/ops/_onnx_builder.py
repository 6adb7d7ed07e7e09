"""A tiny node builder for the ops' standard-ONNX function bodies.

Values get fresh names, so a body reads like the math (``g("Mul", a, b)``); function attributes
are read with attribute-reference Constants, so one body serves every node of an op type.
"""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

_ATTR_FIELDS = {
    onnx.AttributeProto.INT: "value_int",
    onnx.AttributeProto.INTS: "value_ints",
    onnx.AttributeProto.FLOAT: "value_float",
}


class GraphBuilder:
    """Collects nodes for a function body or a control-flow subgraph."""

    _ids = itertools.count()

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.nodes: list[onnx.NodeProto] = []

    def __call__(self, op_type: str, *inputs: str, n_out: int = 1, **attrs) -> str | list[str]:
        outs = [f"{self.tag}_{op_type.lower()}_{next(self._ids)}" for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, **attrs))
        return outs[0] if n_out == 1 else outs

    def const(self, value, dtype=np.int64) -> str:
        return self("Constant", value=numpy_helper.from_array(np.asarray(value, dtype=dtype)))

    def attr(self, name: str, kind: int) -> str:
        """The function attribute ``name`` as a tensor (INT/FLOAT -> scalar, INTS -> 1-D)."""
        out = f"{self.tag}_{name}_{next(self._ids)}"
        node = helper.make_node("Constant", [], [out])
        node.attribute.append(helper.make_attribute_ref(_ATTR_FIELDS[kind], kind, ref_attr_name=name))
        self.nodes.append(node)
        return out

    def flag(self, name: str) -> str:
        """The INT function attribute ``name`` as a boolean scalar (for ``If``)."""
        return self("Cast", self.attr(name, onnx.AttributeProto.INT), to=TensorProto.BOOL)

    def dim(self, x: str, axis: int) -> str:
        """Size of ``x`` along ``axis`` (>= 0) as a 1-D int64 tensor, ready for Concat into a shape."""
        return self("Shape", x, start=axis, end=axis + 1)

    def shape(self, *parts: str | int) -> str:
        """A shape tensor from 1-D dims and Python ints (-1 allowed once)."""
        return self("Concat", *[p if isinstance(p, str) else self.const([p]) for p in parts], axis=0)

    def item(self, vec: str, i: int) -> str:
        """Element ``i`` of a 1-D int64 tensor, kept 1-D (for Concat into shapes)."""
        return self("Slice", vec, self.const([i]), self.const([i + 1]))

    def subgraph(self, name: str, inputs: Sequence[str], outputs: Sequence[str],
                 rank: int | None = None) -> onnx.GraphProto:
        """The collected nodes as a float graph; ``rank`` declares the rank of every input and output
        (ONNX Runtime's Scan needs shaped body outputs even when the model inputs are unshaped)."""
        shape = None if rank is None else [None] * rank

        def info(n: str) -> onnx.ValueInfoProto:
            return helper.make_tensor_value_info(n, TensorProto.FLOAT, shape)

        return helper.make_graph(self.nodes, name, [info(i) for i in inputs], [info(o) for o in outputs])
