"""The custom-op contract in one place (see shared/design.md, "The custom-op contract").

Each edgeglocal kernel registers an :class:`OnnxOpDef`: its ONNX schema (with shape inference),
a builder for its standard-ONNX ``FunctionProto`` body, the ``torch.ops.edgeglocal.*`` overload
and the onnxscript translation used by ``torch.onnx.export(dynamo=True)``. The exporter and the
graph passes only talk to this registry, never to a particular op.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import onnx
import onnxscript
from onnx import defs

DOMAIN = "edgeglocal"
OPSET_VERSION = 1
#: Attributes every edgeglocal node carries, so TensorRT 10.7+ prefers our plugin over the body.
PLUGIN_ATTRS = {"plugin_namespace": DOMAIN, "plugin_version": "1"}
#: The onnxscript opset that translations call, e.g. ``EDGEGLOCAL_OPSET.SelectiveScan(...)``.
EDGEGLOCAL_OPSET = onnxscript.values.Opset(DOMAIN, OPSET_VERSION)

FLOAT_TYPES = ["tensor(float)", "tensor(float16)"]


@dataclass(frozen=True)
class OnnxOpDef:
    """One edgeglocal op as ONNX sees it.

    ``function(opset)`` returns the body as a ``FunctionProto`` (domain ``edgeglocal``, name
    ``op_type``) written with standard ops of default-domain version ``opset``.
    """

    op_type: str
    schema: defs.OpSchema
    function: Callable[[int], onnx.FunctionProto]
    torch_op: Any
    translation: Callable[..., Any]


_REGISTRY: dict[str, OnnxOpDef] = {}


def make_schema(
    op_type: str,
    doc: str,
    inputs: Sequence[tuple[str, str, bool]],
    outputs: Sequence[tuple[str, str]],
    attributes: Sequence[tuple[str, Any]],
    infer: Callable[[Any], None],
    type_constraints: Sequence[tuple[str, Sequence[str]]] = (("T", FLOAT_TYPES),),
) -> defs.OpSchema:
    """Build an ``OpSchema`` in the edgeglocal domain.

    ``inputs``: (name, type string, optional); ``attributes``: (name, default value) where the
    default's Python type picks INT/FLOAT/STRING or their lists. The plugin attributes are added.
    """
    fp = defs.OpSchema.FormalParameter
    opt = defs.OpSchema.FormalParameterOption
    schema = defs.OpSchema(
        op_type,
        DOMAIN,
        OPSET_VERSION,
        doc,
        inputs=[fp(n, t, param_option=opt.Optional if o else opt.Single) for n, t, o in inputs],
        outputs=[fp(n, t) for n, t in outputs],
        type_constraints=[(name, list(types), "") for name, types in type_constraints],
        attributes=[
            defs.OpSchema.Attribute(name, onnx.helper.make_attribute(name, default), "")
            for name, default in list(attributes) + list(PLUGIN_ATTRS.items())
        ],
    )
    schema.set_type_and_shape_inference_function(infer)
    return schema


def register_op(defn: OnnxOpDef) -> OnnxOpDef:
    """Register ``defn`` with onnx (once per process) and with edgeglocal's exporter."""
    if not defs.has(defn.op_type, DOMAIN):
        defs.register_schema(defn.schema)
    _REGISTRY[defn.op_type] = defn
    return defn


def registered_ops() -> dict[str, OnnxOpDef]:
    """All edgeglocal ops by ONNX ``op_type``."""
    return dict(_REGISTRY)


def custom_translation_table() -> dict[Any, Callable[..., Any]]:
    """The ``custom_translation_table`` for ``torch.onnx.export(..., dynamo=True)``."""
    return {d.torch_op: d.translation for d in _REGISTRY.values()}
