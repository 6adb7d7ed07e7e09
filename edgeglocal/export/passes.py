"""Graph passes applied to every exported model before it is written.

:func:`attach_edgeglocal_functions` makes a graph self-contained under the custom-op contract
(shared/design.md): each ``edgeglocal`` node, wherever it sits (main graph, ``If``/``Loop`` bodies,
local functions), gets its standard-ONNX ``FunctionProto`` (once per op type), the TensorRT plugin
attributes, and the model gets the ``edgeglocal`` opset import.
"""

from __future__ import annotations

from typing import Iterator

import onnx
from onnx import helper

import edgeglocal.ops  # noqa: F401  (importing the ops registers their schemas and bodies)
from edgeglocal.errors import ExportError
from edgeglocal.ops._registry import DOMAIN, OPSET_VERSION, PLUGIN_ATTRS, registered_ops


def _walk(nodes) -> Iterator[onnx.NodeProto]:
    for node in nodes:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _walk(attr.g.node)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from _walk(sub.node)


def iter_nodes(model: onnx.ModelProto) -> Iterator[onnx.NodeProto]:
    """Every node of ``model``: the main graph, nested subgraphs and local function bodies."""
    yield from _walk(model.graph.node)
    for function in model.functions:
        if function.domain != DOMAIN:  # our own bodies hold standard ops only
            yield from _walk(function.node)


def default_opset(model: onnx.ModelProto) -> int:
    """The model's version of the default ONNX domain."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    raise ExportError("The exported model imports no default ONNX opset.")


def attach_edgeglocal_functions(model: onnx.ModelProto) -> list[str]:
    """Attach bodies, plugin attributes and the opset import in place; return the op types used.

    Raises :class:`ExportError` for an ``edgeglocal`` op this version does not define.
    """
    known = registered_ops()
    used: set[str] = set()
    for node in iter_nodes(model):
        if node.domain != DOMAIN:
            continue
        if node.op_type not in known:
            raise ExportError(
                f"The graph uses edgeglocal op {node.op_type!r} (node {node.name!r}), which this "
                f"edgeglocal does not define; known ops: {', '.join(sorted(known)) or 'none'}."
            )
        present = {a.name for a in node.attribute}
        node.attribute.extend(
            helper.make_attribute(k, v) for k, v in PLUGIN_ATTRS.items() if k not in present
        )
        used.add(node.op_type)
    if not used:
        return []
    attached = {f.name for f in model.functions if f.domain == DOMAIN}
    opset = default_opset(model)
    for op_type in sorted(used - attached):
        model.functions.append(known[op_type].function(opset))
    if not any(e.domain == DOMAIN for e in model.opset_import):
        model.opset_import.append(helper.make_opsetid(DOMAIN, OPSET_VERSION))
    return sorted(used)
