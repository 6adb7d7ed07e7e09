"""Checkpoint reading, unwrapping, strict key matching and position-table resizing on real files."""

from __future__ import annotations


import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from edgeglocal.errors import CheckpointError
from edgeglocal.models import create, load_checkpoint, read_state_dict
from edgeglocal.models.checkpoint import CheckpointMismatch, resize_pos_embed, resize_rel_pos_bias_table


def _small_gcvit(**kw):
    return create("gcvit_xxtiny", depths=(1, 2, 1, 1), embed_dim=16, num_heads=(1, 2, 2, 4), num_classes=5, **kw)


def _zeros(sd):
    return {k: torch.zeros_like(v) for k, v in sd.items()}


@pytest.mark.parametrize("suffix,wrap,ema", [
    (".pth", lambda sd: sd, False),
    (".pt", lambda sd: {"model": sd, "epoch": 3}, False),
    (".pth", lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}}, False),
    (".pth", lambda sd: {"model": _zeros(sd), "model_ema": sd}, True),
    (".pth", lambda sd: {"model": sd, "model_ema": _zeros(sd)}, False),
    (".pth", lambda sd: {"model_ema": sd, "optimizer": {}}, False),
    (".safetensors", None, False),
])
def test_round_trip_restores_every_tensor(tmp_path, suffix, wrap, ema):
    src = _small_gcvit()
    path = tmp_path / f"w{suffix}"
    state = {k: v.contiguous() for k, v in src.state_dict().items()}
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(wrap(state), path)
    dst = _small_gcvit()
    report = load_checkpoint(dst, path, arch="gcvit_xxtiny", ema=ema)
    assert report.ok and report.loaded == len(state)
    for k, v in dst.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_code_carrying_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": nn.Linear(2, 2)}, path)  # a pickled module, i.e. code to run on load
    with pytest.raises(CheckpointError, match="contains pickled code; edgeglocal only loads plain tensors"):
        read_state_dict(path)


@pytest.mark.parametrize("content", ["truncated", "text", "empty_dict"])
def test_broken_files_give_one_sentence(tmp_path, content):
    path = tmp_path / "bad.pth"
    if content == "truncated":
        torch.save(_small_gcvit().state_dict(), path)
        path.write_bytes(path.read_bytes()[:5000])
    elif content == "text":
        path.write_text("this is not a checkpoint\n")
    else:
        torch.save({}, path)
    with pytest.raises(CheckpointError) as info:
        read_state_dict(path)
    message = str(info.value)
    assert str(path) in message and message.count(". ") == 0 and message.endswith(".")


def test_truncated_safetensors_and_missing_file(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({"a": torch.ones(100)}, str(path))
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(CheckpointError, match="truncated or not a PyTorch/safetensors checkpoint"):
        read_state_dict(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_state_dict(tmp_path / "nope.pth")


def test_key_report_lists_missing_unexpected_and_mismatched_before_touching_the_model():
    model = _small_gcvit()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = dict(model.state_dict())
    state.pop("head.fc.bias")
    state["stem.conv1.weight"] = torch.zeros(8, 3, 3, 3)
    state["extra.thing"] = torch.zeros(1)
    state["stages.0.blocks.0.attn.qkv.weight"] = torch.full_like(state["stages.0.blocks.0.attn.qkv.weight"], 7.0)
    with pytest.raises(CheckpointMismatch) as info:
        load_checkpoint(model, state, arch="gcvit_xxtiny")
    report = info.value.report
    assert report.missing == ["head.fc.bias"]
    assert report.unexpected == ["extra.thing"]
    assert report.mismatched == [("stem.conv1.weight", (8, 3, 3, 3), (16, 3, 3, 3))]
    assert "1 missing, 1 unexpected, 1 shape-mismatched keys" in str(info.value)
    assert "gcvit_xxtiny" in str(info.value)
    rows = {row for row in report.to_table().columns[1].cells}
    assert {"head.fc.bias", "extra.thing", "stem.conv1.weight"} <= rows
    for k, v in model.state_dict().items():  # strict failure leaves the weights alone
        assert torch.equal(v, before[k])
    lenient = load_checkpoint(model, state, strict=False)
    assert not lenient.ok and torch.all(model.stages[0].blocks[0].attn.qkv.weight == 7.0)


def test_rel_table_resize_identity_shape_and_values():
    table = torch.randn(13 * 13, 3)
    assert resize_rel_pos_bias_table(table, (7, 7)) is table
    bigger = resize_rel_pos_bias_table(table, (9, 9))
    assert bigger.shape == (17 * 17, 3)
    const = torch.full((13 * 13, 2), 0.25)
    assert torch.allclose(resize_rel_pos_bias_table(const, (4, 4)), torch.full((7 * 7, 2), 0.25), atol=1e-6)
    # the centre offset (0, 0) of the grid stays where it was: same value at the grid centre
    grid = table.T.reshape(3, 13, 13)
    assert torch.allclose(bigger.T.reshape(3, 17, 17)[:, 8, 8], grid[:, 6, 6], atol=0.5)


def test_pos_embed_resize_identity_and_shapes():
    pos = torch.randn(1, 32, 7, 7)
    assert resize_pos_embed(pos, (7, 7)) is pos
    assert resize_pos_embed(pos, (8, 10)).shape == (1, 32, 8, 10)
    tokens = torch.randn(1, 1 + 49, 16)
    out = resize_pos_embed(tokens, (4, 4), num_prefix_tokens=1)
    assert out.shape == (1, 17, 16) and torch.equal(out[:, :1], tokens[:, :1])
    assert resize_pos_embed(tokens, (7, 7), num_prefix_tokens=1) is tokens


def test_checkpoint_from_another_input_size_loads_with_resized_tables():
    """A GC ViT trained at 224 (windows 7/14) fine-tunes at 256 (windows 8/16); VCMamba pos-embed 7 -> 8."""
    src = _small_gcvit()
    dst = _small_gcvit(img_size=256)
    report = load_checkpoint(dst, src.state_dict(), arch="gcvit_xxtiny")
    assert report.ok and report.resized
    assert all(k.endswith("relative_position_bias_table") for k in report.resized)
    assert dst.stages[0].blocks[0].attn.rel_pos.relative_position_bias_table.shape == (15 * 15, 1)
    vsrc = create("vcmamba_s", layers=(1, 1, 1, 2), embed_dims=(8, 16, 24, 32), mamba_blocks=1)
    vdst = create("vcmamba_s", layers=(1, 1, 1, 2), embed_dims=(8, 16, 24, 32), mamba_blocks=1, img_size=256)
    assert load_checkpoint(vdst, vsrc.state_dict()).resized == ["pos_embed"]
    with torch.no_grad():
        assert dst.eval()(torch.randn(1, 3, 256, 256)).shape == (1, 5)
