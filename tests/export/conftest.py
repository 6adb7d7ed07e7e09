"""One exported bundle shared by the export tests (exporting costs seconds)."""

from __future__ import annotations

import pytest
import torch
from export_models import EXAMPLE_SHAPE, tiny_window_net

from edgeglocal.bundle import Preprocess, TensorSpec
from edgeglocal.export import to_onnx


@pytest.fixture(scope="session")
def bundle(tmp_path_factory):
    """(model, path, manifest) of TinyWindowNet exported with dynamic batch, height and width."""
    model = tiny_window_net()
    path = tmp_path_factory.mktemp("bundle") / "tiny.onnx"
    spec = TensorSpec("images", [], layout="NCHW", meaning="image", preprocess=Preprocess(size=[16, 24], multiple=8))
    manifest = to_onnx(
        model, torch.randn(*EXAMPLE_SHAPE), path, task="classify", arch="tiny", dynamic="all",
        input_specs=[spec], output_specs=[TensorSpec("features", [], meaning="feature map"),
                                          TensorSpec("logits", [], meaning="class scores")],
        extra={"note": "kept"},
    )
    return model, path, manifest


@pytest.fixture
def bundle_copy(bundle, tmp_path):
    """(model, path) of a private copy of the shared bundle, for tests that write its manifest."""
    model, path, _ = bundle
    copy = tmp_path / path.name
    for suffix in (".onnx", ".json"):
        copy.with_suffix(suffix).write_bytes(path.with_suffix(suffix).read_bytes())
    return model, copy
