"""FP16 and INT8 bundles of the zoo architectures run on ONNX Runtime CPU and stay close to fp32.

Reduced depth/width configs of the same code; the three default cases cover every edgeglocal op
(SelectiveScan in VCMamba, global-query WindowAttention in GC ViT, shifted WindowAttention in
MCAF-Net); the rest run with ``-m slow``.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch

from edgeglocal.export import to_onnx
from edgeglocal.export.quantize import quantize
from edgeglocal.models import create, get_config

SMALL = {
    "vcmamba_s": dict(layers=(1, 1, 1, 2), embed_dims=(8, 16, 24, 32), mamba_blocks=1, num_classes=7),
    "gcvit_xxtiny": dict(depths=(1, 2, 2, 1), embed_dim=16, num_heads=(1, 2, 2, 4), num_classes=7),
    "mcafnet": dict(dims=(8, 16, 32), depths=(1, 1, 1), decoder_depths=(1, 1), heads=(1, 2, 2), window=4),
    "coswin_tiny": dict(embed_dim=16, depths=(1, 2, 1, 1), num_heads=(1, 2, 2, 4), num_classes=7),
    "crane_vit_b16": dict(img_size=64, patch_size=16, width=32, layers=3, heads=2, output_dim=16,
                          eattn_blocks=2, feature_layers=(1, 2, 3)),
    "dolg_r50": dict(layers=(1, 1, 1, 1), width=8, local_dim=32, embed_dim=16),
    "superglobal_r50": dict(layers=(1, 1, 1, 1), width=8, embed_dim=16),
    "reid_small": dict(stages=((8, 1, 2), (16, 1, 2), (24, 1, 2), (32, 1, 1)), stem=8, feat_dim=64,
                       global_dim=32, part_dim=8),
}
DEFAULT = ["vcmamba_s", "gcvit_xxtiny", "mcafnet"]
CASES = [pytest.param(n, marks=() if n in DEFAULT else pytest.mark.slow) for n in SMALL]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", CASES)
def test_zoo_fp16_and_int8_bundles(name: str, tmp_path: Path, calib_video: Path) -> None:
    cfg = get_config(name)
    size = (64, 64) if name.startswith("crane") else cfg.input_size
    torch.manual_seed(0)
    model = create(name, **SMALL[name]).eval()
    bundle = tmp_path / f"{name}.onnx"
    to_onnx(model, torch.randn(1, 3, *size), bundle, task=cfg.task, arch=name, dynamic="batch",
            input_specs=cfg.input_specs(size, "batch"), output_specs=cfg.output_specs())
    custom = {n.op_type for n in onnx.load(str(bundle)).graph.node if n.domain == "edgeglocal"}

    fp16 = quantize(bundle, "fp16", calib=calib_video, calib_size=3)
    int8 = quantize(bundle, "int8", calib=calib_video, calib_size=3)
    assert fp16.output_snr_db > 35.0  # measured 40-72 dB across the zoo
    assert int8.output_snr_db > 22.0  # measured 28-45 dB across the zoo

    q = onnx.load(str(int8.path))
    producers = {o: n.op_type for n in q.graph.node for o in n.output}
    custom_nodes = [n for n in q.graph.node if n.domain == "edgeglocal"]
    assert {n.op_type for n in custom_nodes} == custom
    # Custom ops stay float (no input read through Q/DQ) and their function bodies travel with them.
    assert all(producers.get(i) not in ("QuantizeLinear", "DequantizeLinear") for n in custom_nodes for i in n.input)
    assert {f.name for f in q.functions} >= custom
    assert any(n.op_type == "DequantizeLinear" for n in q.graph.node)
