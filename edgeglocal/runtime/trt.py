"""TensorRT backend for ``.engine`` files, and the plugin-library lookup shared with the engine builder.

Engines that contain edgeglocal ops need ``libedgeglocal_trt_plugins.so`` registered before they
deserialize. It is searched, in order, at: an explicit path (``--plugins``),
``$EDGEGLOCAL_TRT_PLUGINS``, ``plugins_trt/build/`` of a source checkout, and ``edgeglocal/lib/``
inside the installed package. Device memory and the CUDA stream come from libcudart through ctypes
(``runtime.cudart``), so a deployed app needs TensorRT and the CUDA runtime, not PyTorch; tensorrt
is imported on first use, so importing this module needs neither.
"""

from __future__ import annotations

import ctypes
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from edgeglocal.bundle import Manifest, TensorSpec
from edgeglocal.errors import BackendUnavailable, BundleError, InputError
from edgeglocal.runtime.cudart import CudaRuntime, DeviceBuffers
from edgeglocal.runtime.elf import needed_libraries

TRT_MISSING = (
    "TensorRT is not installed: install the `tensorrt` package (pip install 'edgeglocal[gpu]') "
    "or JetPack's python3-libnvinfer."
)
PLUGIN_LIBRARY = "libedgeglocal_trt_plugins.so"
PLUGIN_ENV = "EDGEGLOCAL_TRT_PLUGINS"
_PACKAGE_DIR = Path(__file__).resolve().parents[1]
#: Default places for the plugin library after the explicit path and the environment variable.
DEFAULT_PLUGIN_DIRS = (_PACKAGE_DIR.parent / "plugins_trt" / "build", _PACKAGE_DIR / "lib")

_loaded_plugins: dict[str, Any] = {}


def import_tensorrt() -> Any:
    """The ``tensorrt`` module, or :class:`BackendUnavailable` saying how to install it."""
    try:
        import tensorrt
    except ImportError as exc:
        raise BackendUnavailable(TRT_MISSING) from exc
    return tensorrt


def trt_major(trt: Any) -> int:
    return int(str(trt.__version__).split(".")[0])


def find_plugin_library(explicit: str | os.PathLike | None = None) -> Path:
    """The plugin library to load; an explicit path or ``$EDGEGLOCAL_TRT_PLUGINS`` must exist."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise InputError(f"Plugin library {path} (--plugins) does not exist; build it with CMake in plugins_trt/.")
        return path
    env = os.environ.get(PLUGIN_ENV)
    if env:
        path = Path(env)
        if not path.is_file():
            raise InputError(f"${PLUGIN_ENV} points to {path}, which does not exist; unset it or fix the path.")
        return path
    for folder in DEFAULT_PLUGIN_DIRS:
        if (folder / PLUGIN_LIBRARY).is_file():
            return folder / PLUGIN_LIBRARY
    raise BackendUnavailable(
        f"The edgeglocal TensorRT plugin library {PLUGIN_LIBRARY} was not found (looked in "
        f"{', '.join(str(d) for d in DEFAULT_PLUGIN_DIRS)}); build it with `cmake -S plugins_trt -B "
        f"plugins_trt/build && cmake --build plugins_trt/build`, or set ${PLUGIN_ENV}."
    )


def plugin_library_status(explicit: str | os.PathLike | None = None) -> tuple[Path | None, str]:
    """``(path, how it was found)`` or ``(None, why not)``; never raises (for ``edgeglocal doctor``)."""
    try:
        path = find_plugin_library(explicit)
    except (InputError, BackendUnavailable) as exc:
        return None, str(exc)
    if explicit is not None:
        how = "given explicitly"
    elif os.environ.get(PLUGIN_ENV):
        how = f"from ${PLUGIN_ENV}"
    else:
        how = f"found in {path.parent}"
    return path, how


def plugin_tensorrt_major(path: str | os.PathLike) -> int | None:
    """The TensorRT major the plugin library was linked against (from its ``libnvinfer.so.N``
    dependency), or None when that cannot be read."""
    try:
        needed = needed_libraries(path)
    except (OSError, ValueError):
        return None
    majors = [int(m.group(1)) for n in needed if (m := re.fullmatch(r"libnvinfer\.so\.(\d+)", n))]
    return majors[0] if majors else None


def check_plugin_abi(trt: Any, path: str | os.PathLike) -> None:
    """Refuse a plugin library built for another TensorRT major: its interfaces' vtables differ
    (TensorRT 11 changed the logger's), so it would fail to load or misbehave once loaded."""
    built_for = plugin_tensorrt_major(path)
    if built_for is not None and built_for != trt_major(trt):
        raise BackendUnavailable(
            f"The plugin library {path} was built for TensorRT {built_for} (it links libnvinfer.so.{built_for}) "
            f"but TensorRT {trt.__version__} is installed; rebuild it against this TensorRT with "
            "`cmake -S plugins_trt -B plugins_trt/build -DTensorRT_ROOT=<prefix> && cmake --build plugins_trt/build`."
        )


def load_plugin_library(trt: Any, path: Path) -> None:
    """Register the library's creators with TensorRT's plugin registry, once per process.

    ``IPluginRegistry.load_library`` calls the library's ``getCreators``; older bindings without
    it fall back to ``dlopen`` + ``initEdgeglocalPlugins``. The library is first checked for the
    TensorRT major it was built for, and opened once with ``dlopen`` so that a missing dependency
    is reported by name (the registry only logs that it failed).
    """
    key = str(Path(path).resolve())
    if key in _loaded_plugins:
        return
    check_plugin_abi(trt, path)
    try:
        ctypes.CDLL(key, mode=os.RTLD_LAZY | os.RTLD_LOCAL)
        registry = trt.get_plugin_registry()
        if hasattr(registry, "load_library"):
            handle = registry.load_library(key)
            if handle is None:
                raise OSError("TensorRT's plugin registry rejected it")
        else:
            handle = ctypes.CDLL(key, mode=ctypes.RTLD_GLOBAL)
            if not handle.initEdgeglocalPlugins():
                raise OSError("initEdgeglocalPlugins() failed")
    except OSError as exc:
        raise BackendUnavailable(f"Cannot load the TensorRT plugin library {path} ({exc}).") from exc
    _loaded_plugins[key] = handle


def _engine_plugins(explicit: str | os.PathLike | None, recorded: str | None) -> Path:
    """The usual search, falling back on the library the engine was built with."""
    try:
        return find_plugin_library(explicit)
    except BackendUnavailable:
        if recorded and Path(recorded).is_file():
            return Path(recorded)
        raise


class TrtBackend:
    """One deserialized engine, one execution context and one CUDA stream; I/O bound by tensor name."""

    name = "tensorrt"

    def __init__(self, path: Path, manifest: Manifest | None, plugins: str | os.PathLike | None = None) -> None:
        trt = import_tensorrt()
        self._cuda = CudaRuntime()
        self._buffers = DeviceBuffers(self._cuda)
        self._trt = trt
        built = (manifest.engine or {}) if manifest else {}
        if plugins is not None or built.get("plugin_library"):
            load_plugin_library(trt, _engine_plugins(plugins, built.get("plugin_library")))
        elif not built and (found := plugin_library_status()[0]) is not None:
            load_plugin_library(trt, found)  # nothing says whether this engine holds our plugins
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(Path(path).read_bytes())
        if self._engine is None:
            raise BundleError(
                f"TensorRT {trt.__version__} could not deserialize {path} (built with TensorRT "
                f"{built.get('tensorrt', '?')} on {built.get('gpu', '?')}, or its plugins are not registered); "
                "rebuild it here with `edgeglocal build`."
            )
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        is_input = {n: self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self._dtypes = {n: np.dtype(trt.nptype(self._engine.get_tensor_dtype(n))) for n in names}
        specs = {s.name: s for s in ((manifest.inputs + manifest.outputs) if manifest else [])}
        self.inputs = [self._spec(n, specs.get(n)) for n in names if is_input[n]]
        self.outputs = [self._spec(n, specs.get(n)) for n in names if not is_input[n]]

    def _spec(self, name: str, known: TensorSpec | None) -> TensorSpec:
        """The engine's view of a tensor, keeping the manifest's dim names, layout and preprocessing."""
        shape: list[int | str] = list(self._engine.get_tensor_shape(name))
        if known is not None and len(known.shape) == len(shape):
            shape = [k if d < 0 else d for d, k in zip(shape, known.shape)]
        shape = [f"dim{i}" if isinstance(d, int) and d < 0 else d for i, d in enumerate(shape)]
        dtype = str(self._dtypes[name])
        if known is None:
            return TensorSpec(name=name, shape=shape, dtype=dtype)
        return TensorSpec(name, shape, dtype, known.layout, known.meaning, known.preprocess)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ctx, cuda = self._context, self._cuda
        staged = []  # host inputs must outlive their queued copies
        for spec in self.inputs:
            arr = np.ascontiguousarray(feeds[spec.name], dtype=self._dtypes[spec.name])
            if not ctx.set_input_shape(spec.name, tuple(arr.shape)):
                lo, _, hi = self._engine.get_tensor_profile_shape(spec.name, 0)
                raise InputError(
                    f"Input {spec.name!r} has shape {tuple(arr.shape)}, outside the engine's profile "
                    f"{tuple(lo)}..{tuple(hi)}; rebuild with `edgeglocal build --shapes`."
                )
            ptr = self._buffers.get(spec.name, arr.nbytes)
            cuda.to_device(ptr, arr)
            ctx.set_tensor_address(spec.name, ptr)
            staged.append(arr)
        outs = {}  # name -> (host array, device pointer)
        for spec in self.outputs:
            out = np.empty(tuple(ctx.get_tensor_shape(spec.name)), self._dtypes[spec.name])
            outs[spec.name] = out, self._buffers.get(spec.name, out.nbytes)
            ctx.set_tensor_address(spec.name, outs[spec.name][1])
        if not ctx.execute_async_v3(cuda.stream):
            raise BundleError("TensorRT failed to run the engine; the log above says why.")
        for out, ptr in outs.values():
            cuda.to_host(out, ptr)
        cuda.synchronize()
        return {name: out for name, (out, _) in outs.items()}

    def __del__(self) -> None:  # the device buffers and the stream go with the backend
        if getattr(self, "_buffers", None) is not None:
            self._buffers.release()
            self._cuda.close()


def create_backend(path: Path, manifest: Manifest | None, device: str, providers: Any = None) -> TrtBackend:
    """The ``edgeglocal.runtime`` entry point for ``.engine`` files (``device`` is CUDA whatever it says)."""
    return TrtBackend(Path(path), manifest)
