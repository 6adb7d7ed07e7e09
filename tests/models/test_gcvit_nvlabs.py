"""GC ViT loads checkpoints in NVIDIA's own layout (NVlabs/GCVit) as well as timm's, strictly."""

from __future__ import annotations

import pytest
import torch
from nvlabs_gcvit_layout import (
    XXTINY,
    XXTINY_INDEX_BUFFERS,
    XXTINY_PARAMS,
    XXTINY_TENSORS,
    nvlabs_gcvit_shapes,
    random_nvlabs_state,
)
from state_origin import assert_own_layout_loads_unchanged, tensor_origins

from edgeglocal.models import create, load_checkpoint
from edgeglocal.models.checkpoint import CheckpointMismatch

#: A reduced GC ViT both sides can build (SE widths agree from 32 channels up).
SMALL = {"depths": (1, 2, 1, 1), "num_heads": (1, 2, 2, 4), "mlp_ratio": 3}


def _small_model(**kw) -> torch.nn.Module:
    return create("gcvit_xxtiny", embed_dim=32, num_classes=5, **SMALL, **kw)


def _small_nvlabs(**kw) -> dict[str, torch.Tensor]:
    return random_nvlabs_state(nvlabs_gcvit_shapes(dim=32, window_size=(7, 7, 14, 7), num_classes=5, **SMALL, **kw))


def test_generated_layout_has_the_reference_counts_of_gc_vit_xxtiny():
    state = random_nvlabs_state(nvlabs_gcvit_shapes(**XXTINY))
    index = [k for k in state if k.endswith("relative_position_index")]
    assert len(state) == XXTINY_TENSORS and len(index) == XXTINY_INDEX_BUFFERS
    assert sum(v.numel() for k, v in state.items() if k not in index) == XXTINY_PARAMS
    model = create("gcvit_xxtiny")
    assert sum(p.numel() for p in model.parameters()) == XXTINY_PARAMS
    assert len(model.state_dict()) == XXTINY_TENSORS - XXTINY_INDEX_BUFFERS


@pytest.mark.parametrize("query_gen", [True, False], ids=["q_global_gen", "pre_2022_08_to_q_global"])
def test_nvlabs_xxtiny_checkpoint_puts_every_tensor_in_its_place(query_gen):
    nvlabs = random_nvlabs_state(nvlabs_gcvit_shapes(**XXTINY, query_gen=query_gen))
    model = create("gcvit_xxtiny")
    report = load_checkpoint(model, nvlabs, arch="gcvit_xxtiny")
    assert report.ok and report.loaded == XXTINY_TENSORS - XXTINY_INDEX_BUFFERS and not report.resized
    origin = tensor_origins(model, nvlabs)
    assert len(set(origin.values())) == len(origin)  # each NVlabs parameter used once
    assert not any(k.endswith("relative_position_index") for k in model.remap_checkpoint(nvlabs))  # rebuilt here
    q = "q_global_gen.to_q_global" if query_gen else "to_q_global"
    expected = {
        "stem.conv1.weight": "patch_embed.proj.weight",
        "stem.conv1.bias": "patch_embed.proj.bias",
        "stem.down.norm1.weight": "patch_embed.conv_down.norm1.weight",
        "stem.down.norm2.weight": "patch_embed.conv_down.norm2.weight",
        "stem.down.conv_block.conv_dw.weight": "patch_embed.conv_down.conv.0.weight",
        "stem.down.conv_block.se.fc1.weight": "patch_embed.conv_down.conv.2.fc.0.weight",
        "stem.down.conv_block.se.fc2.weight": "patch_embed.conv_down.conv.2.fc.2.weight",
        "stem.down.conv_block.conv_pw.weight": "patch_embed.conv_down.conv.3.weight",
        "stem.down.reduction.weight": "patch_embed.conv_down.reduction.weight",
        "stages.1.downsample.reduction.weight": "levels.0.downsample.reduction.weight",
        "stages.2.downsample.conv_block.se.fc1.weight": "levels.1.downsample.conv.2.fc.0.weight",
        "stages.3.downsample.norm1.bias": "levels.2.downsample.norm1.bias",
        "stages.3.downsample.norm2.bias": "levels.2.downsample.norm2.bias",
        "stages.0.global_block.blocks.conv1.conv_dw.weight": f"levels.0.{q}.0.conv.0.weight",
        "stages.0.global_block.blocks.conv3.conv_pw.weight": f"levels.0.{q}.2.conv.3.weight",
        "stages.1.global_block.blocks.conv2.se.fc1.weight": f"levels.1.{q}.1.conv.2.fc.0.weight",
        "stages.3.global_block.blocks.conv1.se.fc2.weight": f"levels.3.{q}.0.conv.2.fc.2.weight",
        "stages.0.blocks.0.norm1.weight": "levels.0.blocks.0.norm1.weight",
        "stages.2.blocks.4.attn.qkv.weight": "levels.2.blocks.4.attn.qkv.weight",  # local: q, k, v fused
        "stages.2.blocks.5.attn.qkv.weight": "levels.2.blocks.5.attn.qkv.weight",  # global: k, v
        "stages.2.blocks.5.attn.qkv.bias": "levels.2.blocks.5.attn.qkv.bias",
        "stages.2.blocks.5.attn.rel_pos.relative_position_bias_table":
            "levels.2.blocks.5.attn.relative_position_bias_table",
        "stages.1.blocks.1.attn.proj.weight": "levels.1.blocks.1.attn.proj.weight",
        "stages.3.blocks.1.mlp.fc2.bias": "levels.3.blocks.1.mlp.fc2.bias",
        "stages.3.norm.weight": "norm.weight",
        "head.fc.weight": "head.weight",
        "head.fc.bias": "head.bias",
    }
    assert {k: origin[k] for k in expected} == expected
    local, glob = model.stages[2].blocks[4].attn, model.stages[2].blocks[5].attn
    assert local.qkv.weight.shape == (3 * 256, 256) and glob.qkv.weight.shape == (2 * 256, 256)
    for part, src in zip(local.qkv.weight.chunk(3), nvlabs["levels.2.blocks.4.attn.qkv.weight"].chunk(3)):
        assert torch.equal(part, src)  # same q | k | v order and head split: no re-ordering needed


def test_nvlabs_training_checkpoint_file_with_layer_scale_loads(tmp_path):
    """NVlabs' train.py saves {"state_dict", "state_dict_ema", ...}; layer scales are gamma1/gamma2."""
    nvlabs = _small_nvlabs(layer_scale=True)
    path = tmp_path / "model_best.pth.tar"  # the name timm's / NVlabs' train.py gives it
    torch.save({"epoch": 3, "state_dict": nvlabs, "state_dict_ema": _small_nvlabs(layer_scale=True)}, path)
    model = _small_model(layer_scale=1e-5)
    assert load_checkpoint(model, path, arch="gcvit_xxtiny").ok
    origin = tensor_origins(model, nvlabs)
    assert origin["stages.1.blocks.1.ls1.gamma"] == "levels.1.blocks.1.gamma1"
    assert origin["stages.1.blocks.1.ls2.gamma"] == "levels.1.blocks.1.gamma2"
    assert origin["stages.3.blocks.0.ls1.gamma"] == "levels.3.blocks.0.gamma1"
    with torch.no_grad():
        assert torch.isfinite(model.eval()(torch.randn(1, 3, 224, 224))).all()


def test_timm_layout_still_loads_unchanged():
    assert_own_layout_loads_unchanged(_small_model, "gcvit_xxtiny")


def test_wrong_architecture_still_fails_with_one_sentence():
    nvlabs = random_nvlabs_state(nvlabs_gcvit_shapes(**XXTINY))
    with pytest.raises(CheckpointMismatch) as info:  # xxtiny weights, xtiny depths
        load_checkpoint(create("gcvit_xtiny"), nvlabs, arch="gcvit_xtiny")
    message = str(info.value)
    assert message.startswith("Checkpoint state dict does not match architecture gcvit_xtiny: ")
    assert "missing keys, e.g. stages.0.blocks.2." in message
    assert message.endswith(".") and "\n" not in message and message.replace("e.g. ", "").count(". ") == 0
    wider = random_nvlabs_state(nvlabs_gcvit_shapes(dim=48, window_size=(7, 7, 14, 7), num_classes=5, **SMALL))
    with pytest.raises(CheckpointMismatch, match=r"e\.g\. stem\.conv1\.weight is \(48, 3, 3, 3\) in the "
                       r"checkpoint but \(32, 3, 3, 3\) in the model\.$"):
        load_checkpoint(_small_model(), wider, arch="gcvit_xxtiny")
