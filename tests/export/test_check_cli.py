"""`edgeglocal check` prints the parity table and exits non-zero when the bundle differs."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from export_models import tiny_window_net
from typer.testing import CliRunner

from edgeglocal.cli.app import app
from edgeglocal.export import to_onnx
from edgeglocal.models import register_model

HERE = Path(__file__).parent


@register_model("test_tiny_window_net", task="classify", input_size=(16, 16))
def _registered_tiny(seed: int = 0, **_):
    return tiny_window_net(seed)


def run(*args: str):
    return CliRunner().invoke(app, ["check", *map(str, args)])


def test_user_model_passes_and_is_saved(bundle_copy, monkeypatch):
    _, path = bundle_copy
    monkeypatch.syspath_prepend(str(HERE))
    result = run(path, "--model", "export_models:tiny_window_net", "--n", "2", "--save")
    assert result.exit_code == 0, result.output
    assert "PASSED" in result.output and "features" in result.output and "logits" in result.output, result.output
    assert json.loads(path.with_suffix(".json").read_text())["parity"]["n"] == 2
    assert "inputs: images 2x3x16x24 (seeded random, seed 0)" in result.output


def test_differing_model_exits_2_with_the_needed_atol(bundle, monkeypatch):
    _, path, _ = bundle
    monkeypatch.syspath_prepend(str(HERE))
    result = run(path, "--model", "export_models:tiny_window_net_perturbed", "--n", "1")
    assert result.exit_code == 2
    assert "FAILED" in result.output and "differs from PyTorch" in result.output and "atol >=" in result.output


def test_registered_arch_and_its_config_come_from_the_manifest(tmp_path):
    """As `edgeglocal export` writes it: the factory config in extra.model.config rebuilds the same model."""
    path = tmp_path / "reg.onnx"
    to_onnx(tiny_window_net(seed=7), torch.randn(1, 3, 16, 16), path, arch="test_tiny_window_net",
            extra={"model": {"config": {"seed": 7}}})
    result = run(path, "--n", "1")
    assert result.exit_code == 0, result.output
    assert "test_tiny_window_net" in result.output and "PASSED" in result.output
    assert run(path, "--n", "1", "--arch", "test_tiny_window_net").exit_code == 0
    manifest = json.loads(path.with_suffix(".json").read_text())
    manifest["extra"]["model"]["config"]["seed"] = 0  # a different model than the one exported
    path.with_suffix(".json").write_text(json.dumps(manifest))
    assert run(path, "--n", "1").exit_code == 2


def test_bad_model_path_is_one_red_sentence(bundle):
    _, path, _ = bundle
    result = run(path, "--model", "no_such_module:build")
    assert result.exit_code == 1
    assert "--model 'no_such_module:build' must name an importable module:callable" in " ".join(result.output.split())


def test_model_from_a_file_path(bundle):
    _, path, _ = bundle
    result = run(path, "--model", f"{HERE / 'export_models.py'}:tiny_window_net", "--n", "1")
    assert result.exit_code == 0, result.output
    assert "PASSED" in result.output


def test_unregistered_manifest_arch_asks_for_a_model(bundle_copy):
    _, path = bundle_copy
    result = run(path)  # exported with arch="tiny", which no registry knows
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert "architecture 'tiny' is not registered; pass --arch NAME or --model module:callable" in message
