"""PyTorch -> ONNX bundle: dynamo export with edgeglocal's translations, graph pass, checks, manifest.

``to_onnx`` writes ``NAME.onnx`` (plus ``NAME.onnx.data`` when the weights do not fit the 2 GB
protobuf limit) and ``NAME.json``; nothing appears under the final names unless every step passed.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import onnx
import torch

from edgeglocal.bundle import Manifest, TensorSpec, manifest_path
from edgeglocal.errors import EdgeglocalError, ExportError, InputError, SinkError
from edgeglocal.export.passes import attach_edgeglocal_functions, iter_nodes
from edgeglocal.ops._registry import custom_translation_table

DYNAMIC_MODES = (None, "batch", "hw", "all")
#: Weights above this go to an external data file (protobuf cannot serialise 2 GB).
EXTERNAL_DATA_BYTES = 1_800_000_000

_ONNX_DTYPES = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.BFLOAT16: "bfloat16",
    onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.INT32: "int32",
    onnx.TensorProto.UINT8: "uint8",
    onnx.TensorProto.BOOL: "bool",
}


def _dynamic_shapes(inputs: Sequence[torch.Tensor], dynamic: str | None) -> tuple[dict[int, str], ...] | None:
    """Named dynamic dims per input: dim 0 is the batch, dims 2 and 3 of 4-D (NCHW) inputs are H, W."""
    if dynamic is None:
        return None
    shapes = []
    for x in inputs:
        dims: dict[int, str] = {}
        if dynamic in ("batch", "all") and x.dim() >= 1:
            dims[0] = "batch"
        if dynamic in ("hw", "all") and x.dim() == 4:
            dims.update({2: "height", 3: "width"})
        shapes.append(dims)
    return tuple(shapes)


def _batch_of_two(inputs: tuple, dynamic: str | None) -> tuple:
    """Trace a dynamic batch with batch 2: torch.export specialises size-1 dims, so a batch-1
    example would bake batch 1 into reshapes although the manifest says ``batch``."""
    if dynamic not in ("batch", "all"):
        return inputs
    return tuple(x.expand(2, *x.shape[1:]).clone() if x.dim() >= 1 and x.shape[0] == 1 else x for x in inputs)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Hide the exporter's chatter (missing torchvision ops, pytree deprecations); errors still raise."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        registration.setLevel(level)


def _reason(exc: BaseException) -> str:
    """The innermost cause's first line: what went wrong, without the exporter's advice text."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first[:300]}"


def _value_specs(values: Sequence[onnx.ValueInfoProto], given: Sequence[TensorSpec | dict] | None) -> list[TensorSpec]:
    """TensorSpecs from the graph (name, shape with named dims, dtype), meaning/layout/preprocess
    taken from ``given`` by position."""
    given = [TensorSpec.from_dict(g) if isinstance(g, dict) else g for g in (given or [])]
    specs = []
    for i, value in enumerate(values):
        t = value.type.tensor_type
        shape = [d.dim_param or d.dim_value if (d.dim_param or d.HasField("dim_value")) else "?"
                 for d in t.shape.dim]
        spec = TensorSpec(name=value.name, shape=shape, dtype=_ONNX_DTYPES.get(t.elem_type, str(t.elem_type)))
        if i < len(given):
            g = given[i]
            spec = replace(spec, layout=g.layout, meaning=g.meaning, preprocess=g.preprocess)
        specs.append(spec)
    return specs


def _check_args(model: Any, inputs: tuple, path: Path, dynamic: str | None, opset: int) -> None:
    if not isinstance(model, torch.nn.Module):
        raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    if not inputs or not all(isinstance(x, torch.Tensor) for x in inputs):
        raise InputError("example_inputs must be a tensor or a tuple of tensors.")
    if path.suffix != ".onnx":
        raise InputError(f"Output path {path} must end in .onnx.")
    if dynamic not in DYNAMIC_MODES:
        raise InputError(f"dynamic must be one of None, 'batch', 'hw', 'all', got {dynamic!r}.")
    if opset < 18:
        raise InputError(f"opset must be 18 or newer (the exporter's minimum), got {opset}.")


def to_onnx(
    model: torch.nn.Module,
    example_inputs: torch.Tensor | Sequence[torch.Tensor],
    path: str | os.PathLike,
    *,
    task: str = "generic",
    arch: str | None = None,
    dynamic: str | None = None,
    opset: int = 18,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    input_specs: Sequence[TensorSpec | dict] | None = None,
    output_specs: Sequence[TensorSpec | dict] | None = None,
    extra: dict[str, Any] | None = None,
) -> Manifest:
    """Export ``model`` to the bundle ``path`` (``NAME.onnx`` + ``NAME.json``) and return its manifest.

    ``dynamic``: which dims stay symbolic -- ``"batch"`` (dim 0), ``"hw"`` (dims 2, 3 of NCHW
    inputs), ``"all"`` or None (static). Names default to those of ``input_specs`` /
    ``output_specs``. The model is exported in eval mode and put back in its former mode.
    """
    path = Path(path)
    inputs = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    _check_args(model, inputs, path, dynamic, opset)
    inputs = _batch_of_two(inputs, dynamic)
    try:  # before the (slow) export, so an impossible destination fails at once
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _cannot_write(path, exc) from exc
    input_names = list(input_names or [_name(s) for s in input_specs or []] or
                       (["input"] if len(inputs) == 1 else [f"input_{i}" for i in range(len(inputs))]))
    output_names = list(output_names or [_name(s) for s in output_specs or []]) or None

    was_training = model.training
    model.eval()
    try:
        with _quiet_exporter():
            program = torch.onnx.export(
                model, inputs, dynamo=True, opset_version=opset, verbose=False,
                custom_translation_table=custom_translation_table(),
                dynamic_shapes=_dynamic_shapes(inputs, dynamic),
                input_names=input_names, output_names=output_names,
            )
    except EdgeglocalError:
        raise
    except Exception as exc:  # the exporter raises many types; the user needs one sentence
        raise ExportError(
            f"Could not export {type(model).__name__} to ONNX ({_reason(exc)}); rerun with --debug for the trace."
        ) from exc
    finally:
        model.train(was_training)

    weight_bytes = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    graph, custom_ops = _write_model(program, path, external=weight_bytes > EXTERNAL_DATA_BYTES)
    manifest = Manifest(
        task=task,
        arch=arch or type(model).__name__,
        inputs=_value_specs(graph.input, input_specs),
        outputs=_value_specs(graph.output, output_specs),
        custom_ops=custom_ops,
        opset=opset,
        extra={
            **(extra or {}),
            "export": {
                "dynamic": dynamic,
                "example_shapes": {n: list(x.shape) for n, x in zip(input_names, inputs)},
                "torch": torch.__version__,
            },
        },
    )
    manifest.save(manifest_path(path))
    return manifest


def _name(spec: TensorSpec | dict) -> str:
    return spec["name"] if isinstance(spec, dict) else spec.name


def _cannot_write(path: Path, exc: OSError) -> SinkError:
    reason = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
    return SinkError(f"Cannot write {path}: {reason}.")


def _write_model(program: Any, path: Path, external: bool) -> tuple[onnx.GraphProto, list[str]]:
    """Save, run the graph pass, check and infer shapes in a scratch folder; then move into place.

    The pass never touches weights, so the model is reloaded without its external data.
    """
    try:
        scratch = tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.stem}.export-")
    except OSError as exc:
        raise _cannot_write(path, exc) from exc
    with scratch as work:
        tmp = Path(work) / path.name
        try:
            program.save(str(tmp), external_data=external)
        except OSError as exc:
            raise _cannot_write(path, exc) from exc
        try:
            proto = onnx.load(str(tmp), load_external_data=False)
            for node in iter_nodes(proto):  # stack traces and FX names: triple a small file, embed build paths
                del node.metadata_props[:]
            custom_ops = attach_edgeglocal_functions(proto)
            proto = onnx.shape_inference.infer_shapes(proto, check_type=True, data_prop=True)
            onnx.save(proto, str(tmp))
            onnx.checker.check_model(str(tmp), full_check=True)
        except EdgeglocalError:
            raise
        except Exception as exc:
            raise ExportError(f"The exported graph for {path.name} failed the ONNX checks ({_reason(exc)}).") from exc
        try:
            for produced in sorted(Path(work).iterdir(), key=lambda p: p == tmp):  # the .onnx last
                os.replace(produced, path.parent / produced.name)
        except OSError as exc:
            raise _cannot_write(path, exc) from exc
    return proto.graph, custom_ops
