"""FP16 / INT8 bundles keep the accuracy of a really trained model on real photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch

pytest.importorskip("skimage.data")

from edgeglocal.bundle import Manifest, Preprocess, TensorSpec
from edgeglocal.errors import BundleError, InputError, SourceError
from edgeglocal.evaluation import metrics, synthetic
from edgeglocal.export.quant_report import compare_bundles
from edgeglocal.export.quantize import quantize, quantizable_nodes, run_all, snr_db

from tiny_aod import TinyAOD, photos


WEIGHTS = Path(__file__).parent / "data" / "tiny_aod.safetensors"


@pytest.fixture(scope="module")
def dehaze_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The trained TinyAOD (tiny_aod.py) exported as a bundle, plus held-out real photos to calibrate on."""
    from safetensors.torch import load_file

    model = TinyAOD()
    model.load_state_dict(load_file(str(WEIGHTS)))
    model.eval()
    root = tmp_path_factory.mktemp("aod")
    path = root / "aod.onnx"
    torch.onnx.export(model, (torch.rand(1, 3, 128, 160),), str(path), dynamo=True,
                      input_names=["image"], output_names=["dehazed"],
                      dynamic_shapes=({0: torch.export.Dim("batch")},))
    Manifest(
        task="dehaze", arch="tiny_aod",
        inputs=[TensorSpec("image", ["batch", 3, 128, 160], layout="NCHW",
                           preprocess=Preprocess(color="RGB", resize="stretch", size=[128, 160]))],
        outputs=[TensorSpec("dehazed", ["batch", 3, 128, 160], layout="NCHW", meaning="RGB in [0, 1]")],
    ).save(path.with_suffix(".json"))
    # Calibration / evaluation photos: other scenes than the ones TinyAOD was trained on.
    calib = root / "calib"
    calib.mkdir()
    for i, img in enumerate(photos(["hubble_deep_field", "immunohistochemistry", "retina"])
                            + [cv2.imread(str(p)) for p in _opencv_photos()]):
        cv2.imwrite(str(calib / f"{i:02d}.png"), img)
    return path, calib


def _opencv_photos() -> list[Path]:
    root = Path("/usr/share/doc/opencv-doc/examples/data")
    return [root / n for n in ("fruits.jpg", "building.jpg", "home.jpg", "baboon.jpg") if (root / n).exists()]


def test_int8_is_explicit_symmetric_qdq(dehaze_bundle: tuple[Path, Path]) -> None:
    bundle, calib = dehaze_bundle
    result = quantize(bundle, "int8", calib=calib, calib_size=8)
    model = onnx.load(str(result.path))
    q_nodes = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    dq_nodes = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    assert q_nodes and dq_nodes
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    # TensorRT needs symmetric int8: every zero point is an int8 zero.
    for node in q_nodes + dq_nodes:
        assert len(node.input) == 3
        zp = inits[node.input[2]]
        assert zp.dtype == np.int8 and not zp.any()
    # Every Conv reads its input and its weight through DequantizeLinear (explicit Q/DQ).
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert len(convs) == 5
    assert all(producers.get(c.input[0]) == "DequantizeLinear" for c in convs)
    assert all(producers.get(c.input[1]) == "DequantizeLinear" for c in convs)
    weight_dq = [n for n in dq_nodes if n.input[0] in inits]
    assert len(weight_dq) == 5 and all(inits[n.input[0]].dtype == np.int8 for n in weight_dq)
    assert result.manifest.precision["mode"] == "int8"
    assert Manifest.load(result.path.with_suffix(".json")).precision["calibration"]["frames"] == min(8, len(list(calib.iterdir())))


def test_int8_and_fp16_keep_dehazing_psnr(dehaze_bundle: tuple[Path, Path]) -> None:
    bundle, calib = dehaze_bundle
    int8 = quantize(bundle, "int8", calib=calib, calib_size=8).path
    fp16 = quantize(bundle, "fp16", calib=calib, calib_size=8).path
    rows = compare_bundles(bundle, [int8, fp16], calib=calib, calib_size=8)
    fp32_psnr, int8_psnr, fp16_psnr = (r.metric for r in rows)
    assert all(r.metric_name == "PSNR dB" for r in rows)
    # The trained model really dehazes: measured about +5 dB over the hazy input.
    rng = np.random.default_rng(0)
    clean = [cv2.resize(cv2.imread(str(p)), (160, 128), interpolation=cv2.INTER_AREA) for p in sorted(calib.iterdir())]
    hazy_psnr = np.mean([metrics.psnr(c, synthetic.haze(c, rng)[0]) for c in clean])
    assert fp32_psnr > hazy_psnr + 2.0
    assert abs(int8_psnr - fp32_psnr) < 0.5
    assert abs(fp16_psnr - fp32_psnr) < 0.05


def test_auto_keeps_sensitive_layers_until_budget(dehaze_bundle: tuple[Path, Path], tmp_path: Path) -> None:
    bundle, calib = dehaze_bundle
    plain = quantize(bundle, "int8", calib=calib, calib_size=6, output=tmp_path / "plain.onnx")
    budget = plain.output_snr_db + 3.0  # stricter than plain int8 reaches
    auto = quantize(bundle, "int8", calib=calib, calib_size=6, auto=True, budget_db=budget,
                    output=tmp_path / "auto.onnx")
    assert 1 <= len(auto.excluded) < 5
    assert auto.output_snr_db >= budget
    model = onnx.load(str(auto.path))
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    float_convs = [n.name for n in model.graph.node
                   if n.op_type == "Conv" and producers.get(n.input[1]) != "DequantizeLinear"]
    assert sorted(float_convs) == sorted(auto.excluded)


def test_exclude_pattern_keeps_nodes_float(dehaze_bundle: tuple[Path, Path], tmp_path: Path) -> None:
    bundle, calib = dehaze_bundle
    first = quantizable_nodes(onnx.load(str(bundle)))[0]
    result = quantize(bundle, "int8", calib=calib, calib_size=4, exclude=[first], output=tmp_path / "x.onnx")
    assert result.excluded == [first]


def test_clear_errors(dehaze_bundle: tuple[Path, Path], tmp_path: Path) -> None:
    bundle, calib = dehaze_bundle
    with pytest.raises(InputError, match="calibration data"):
        quantize(bundle, "int8")
    with pytest.raises(InputError, match="expected fp16 or int8"):
        quantize(bundle, "int4", calib=calib)
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(bundle.read_bytes())
    with pytest.raises(BundleError, match="no manifest"):
        quantize(bare, "fp16")
    int8 = quantize(bundle, "int8", calib=calib, calib_size=4, output=tmp_path / "q.onnx").path
    with pytest.raises(BundleError, match="already int8"):
        quantize(int8, "int8", calib=calib)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="matches no images"):
        quantize(bundle, "int8", calib=empty)


def test_snr_matches_definition() -> None:
    ref = [[np.array([3.0, 4.0])]]
    cand = [[np.array([3.0, 3.0])]]
    assert snr_db(ref, cand) == pytest.approx(10 * np.log10(25.0 / 1.0))


def test_cli_quantize_writes_bundle_and_report(dehaze_bundle: tuple[Path, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from edgeglocal.cli.app import app

    bundle, calib = dehaze_bundle
    out = tmp_path / "cli_int8.onnx"
    res = CliRunner().invoke(app, ["quantize", str(bundle), "--precision", "int8", "--calib", str(calib),
                                   "--calib-size", "4", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert out.exists() and out.with_suffix(".json").exists()
    assert "PSNR dB" in res.output and str(out) in res.output.replace("\n", "")
    outs = run_all(out, [{"image": np.random.default_rng(0).random((1, 3, 128, 160), dtype=np.float32)}])
    assert outs[0][0].shape == (1, 3, 128, 160)
    res = CliRunner().invoke(app, ["quantize", str(bundle), "--precision", "int8"])
    assert res.exit_code != 0 and "calibration data" in res.output


def test_cpu_target_uses_uint8_activations_and_tensorrt_refuses_it(dehaze_bundle: tuple[Path, Path],
                                                                    tmp_path: Path) -> None:
    from edgeglocal.export.trt_build import build_engine

    bundle, calib = dehaze_bundle
    cpu = quantize(bundle, "int8", calib=calib, calib_size=6, target="cpu", output=tmp_path / "cpu.onnx")
    model = onnx.load(str(cpu.path))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    act_q = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert act_q and all(inits[n.input[2]].dtype == np.uint8 for n in act_q)
    assert cpu.manifest.precision["target"] == "cpu"
    assert cpu.output_snr_db > 25.0
    with pytest.raises(InputError, match="--target tensorrt"):
        build_engine(cpu.path, tmp_path / "cpu_trt.engine")
    with pytest.raises(InputError, match="expected tensorrt or cpu"):
        quantize(bundle, "int8", calib=calib, target="gpu")
