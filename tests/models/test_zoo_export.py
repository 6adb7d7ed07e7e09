"""Every zoo architecture exports through to_onnx and matches PyTorch on ONNX Runtime CPU (fp32).

Default runs use reduced depth/width configs of the same code (full sizes are @slow); each family
is exported at its default input size and at one other size.
"""

from __future__ import annotations

import onnx
import pytest
import torch

from edgeglocal.export import check_parity, to_onnx
from edgeglocal.models import create, get_config, list_models

ATOL = 1e-4

SMALL = {
    "gcvit_xxtiny": dict(depths=(1, 2, 1, 1), embed_dim=16, num_heads=(1, 2, 2, 4), num_classes=7),
    "vcmamba_s": dict(layers=(1, 1, 1, 2), embed_dims=(8, 16, 24, 32), mamba_blocks=1, num_classes=7),
    # two stages: a regular + a shifted block, a merge, and a block with window 7 on a 28x28 map
    "coswin_tiny": dict(embed_dim=16, depths=(2, 1), num_heads=(1, 2), num_classes=7),
}
OTHER_SIZE = {"gcvit_xxtiny": (256, 256), "vcmamba_s": (160, 192)}
OWN = ["coswin_cifar", "coswin_tiny", "gcvit_tiny", "gcvit_xtiny", "gcvit_xxtiny",
       "vcmamba_b", "vcmamba_m", "vcmamba_s"]


def _export_and_compare(name, cfg, size, tmp_path, dynamic="batch"):
    config = get_config(name)
    if config.size_kwarg and size != config.input_size:
        cfg = {**cfg, config.size_kwarg: size}
    torch.manual_seed(0)
    model = create(name, **cfg).eval()
    path = tmp_path / f"{name}_{size[0]}x{size[1]}.onnx"
    manifest = to_onnx(model, torch.randn(1, 3, *size), path, task=config.task, arch=name, dynamic=dynamic,
                       input_specs=config.input_specs(size, dynamic), output_specs=config.output_specs())
    report = check_parity(model, path, atol=ATOL)
    assert report.passed, report.to_dict()
    ops = {n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node if n.domain == "edgeglocal"}
    return manifest, ops, model, path


def test_all_own_architectures_are_registered():
    assert set(OWN) <= set(list_models())
    for name in OWN:
        assert get_config(name).task == "classify"


@pytest.mark.parametrize("name", ["gcvit_xxtiny", "vcmamba_s"])
def test_fixed_size_architectures_export_at_default_and_other_size(name, tmp_path):
    """GC ViT and VCMamba bake window / scan-path geometry into the graph: one export per size."""
    expected = {"gcvit_xxtiny": {"WindowAttention"}, "vcmamba_s": {"SelectiveScan"}}[name]
    default = get_config(name).input_size
    manifest, ops, _, _ = _export_and_compare(name, SMALL[name], default, tmp_path)
    assert ops == expected
    assert manifest.inputs[0].preprocess.mean == list(get_config(name).mean)
    assert manifest.inputs[0].shape == ["batch", 3, *default]
    ops = _export_and_compare(name, SMALL[name], OTHER_SIZE[name], tmp_path)[1]
    assert ops == expected


def test_coswin_dynamic_hw_bundle_matches_at_default_and_other_sizes(tmp_path):
    """One CoSwin export with symbolic batch, H and W serves every size (windows pad inside blocks)."""
    manifest, ops, model, path = _export_and_compare("coswin_tiny", SMALL["coswin_tiny"], (224, 224), tmp_path,
                                                     dynamic="all")
    assert ops == {"WindowAttention"}
    assert manifest.inputs[0].shape == ["batch", 3, "height", "width"]
    # 100 x 164 -> maps 25x41 then 13x21: window padding (with the shift mask) and an odd merge.
    for shape in [(2, 3, 100, 164), (1, 3, 160, 224)]:
        assert check_parity(model, path, inputs=torch.randn(*shape).numpy(), atol=ATOL).passed


@pytest.mark.slow
@pytest.mark.parametrize("name", OWN)
def test_full_size_exports(name, tmp_path):
    _export_and_compare(name, {}, get_config(name).input_size, tmp_path)
