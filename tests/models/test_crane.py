"""Crane on a CLIP ViT: OpenAI key compatibility, text embeddings, per-sample maps, ONNX parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from edgeglocal.errors import CheckpointError, InputError
from edgeglocal.export import check_parity, to_onnx
from edgeglocal.models import create, get_config, load_checkpoint
from edgeglocal.models.crane import load_text_embeddings, random_text_embeddings
from edgeglocal.nn.eattn import e_attention

WIDTH, LAYERS, HEADS, DIM, PATCH = 32, 3, 2, 16, 16
TINY = dict(img_size=64, patch_size=PATCH, width=WIDTH, layers=LAYERS, heads=HEADS, output_dim=DIM,
            eattn_blocks=2, feature_layers=(1, 2, 3))


def tiny(**kw):
    with pytest.warns(UserWarning, match="random"):
        return create("crane_vit_b16", **{**TINY, **kw}).eval()


def openai_visual_state(grid: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors under OpenAI CLIP's image-tower names and shapes (model.visual.*)."""
    g = torch.Generator().manual_seed(seed)
    shapes = {
        "conv1.weight": (WIDTH, 3, PATCH, PATCH),
        "class_embedding": (WIDTH,),
        "positional_embedding": (grid * grid + 1, WIDTH),
        "ln_pre.weight": (WIDTH,), "ln_pre.bias": (WIDTH,),
        "ln_post.weight": (WIDTH,), "ln_post.bias": (WIDTH,),
        "proj": (WIDTH, DIM),
    }
    for i in range(LAYERS):
        p = f"transformer.resblocks.{i}"
        shapes.update({
            f"{p}.ln_1.weight": (WIDTH,), f"{p}.ln_1.bias": (WIDTH,),
            f"{p}.attn.in_proj_weight": (3 * WIDTH, WIDTH), f"{p}.attn.in_proj_bias": (3 * WIDTH,),
            f"{p}.attn.out_proj.weight": (WIDTH, WIDTH), f"{p}.attn.out_proj.bias": (WIDTH,),
            f"{p}.ln_2.weight": (WIDTH,), f"{p}.ln_2.bias": (WIDTH,),
            f"{p}.mlp.c_fc.weight": (4 * WIDTH, WIDTH), f"{p}.mlp.c_fc.bias": (4 * WIDTH,),
            f"{p}.mlp.c_proj.weight": (WIDTH, 4 * WIDTH), f"{p}.mlp.c_proj.bias": (WIDTH,),
        })
    return {k: torch.randn(s, generator=g) * 0.05 for k, s in shapes.items()}


def test_openai_image_encoder_state_dict_loads_strictly():
    model = tiny()
    state = openai_visual_state(grid=4)
    report = load_checkpoint(model, state, strict=True)
    assert report.ok and report.loaded == len(state)
    assert torch.equal(model.visual.transformer.resblocks[1].attn.in_proj_weight,
                       state["transformer.resblocks.1.attn.in_proj_weight"])


def test_full_clip_checkpoint_loads_image_tower_and_ignores_text(tmp_path):
    model = tiny()
    visual = openai_visual_state(grid=4, seed=1)
    full = {f"visual.{k}": v for k, v in visual.items()}
    full.update({  # the text tower reuses bare names that collide with the image tower's
        "positional_embedding": torch.zeros(77, 24), "transformer.resblocks.0.attn.in_proj_weight": torch.zeros(72, 24),
        "token_embedding.weight": torch.zeros(100, 24), "ln_final.weight": torch.zeros(24),
        "text_projection": torch.zeros(24, DIM), "logit_scale": torch.tensor(4.6),
    })
    path = tmp_path / "clip.pt"
    torch.save(full, path)
    with pytest.warns(UserWarning, match="Ignoring 6 text-tower keys"):
        report = load_checkpoint(model, path, strict=True)
    assert report.ok
    assert torch.equal(model.visual.proj, visual["proj"])


def test_checkpoint_at_another_resolution_is_interpolated():
    state = openai_visual_state(grid=4)
    model = tiny(img_size=96)  # grid 6
    load_checkpoint(model, state, strict=True)
    pos = model.visual.positional_embedding
    assert pos.shape == (37, WIDTH)
    assert torch.equal(pos[0], state["positional_embedding"][0])  # the class token is kept
    with torch.no_grad():
        amap, score = model(torch.rand(1, 3, 96, 96))
    assert amap.shape == (1, 1, 96, 96) and torch.isfinite(score).all()


def test_non_square_input_size_builds_a_non_square_grid():
    state = openai_visual_state(grid=4)
    model = tiny(img_size=(48, 96))  # what `edgeglocal export --imgsz 48 96` builds
    load_checkpoint(model, state, strict=True)
    assert model.visual.positional_embedding.shape == (3 * 6 + 1, WIDTH)
    with torch.no_grad():
        amap, _ = model(torch.rand(1, 3, 48, 96))
    assert amap.shape == (1, 1, 48, 96)


def test_mismatched_checkpoint_is_refused():
    state = openai_visual_state(grid=4)
    state["proj"] = torch.zeros(WIDTH, DIM + 1)
    with pytest.raises(CheckpointError, match="proj"):
        load_checkpoint(tiny(), state, strict=True)


def test_e_attention_is_the_sum_of_three_self_similarity_attentions():
    q, k, v = torch.randn(3, 1, 2, 5, 4).unbind(0)
    out = e_attention(q, k, v, scale=0.5)
    expected = torch.zeros_like(v)
    for b in range(1):
        for h in range(2):
            for t in (q, k, v):
                sim = torch.exp(0.5 * t[b, h] @ t[b, h].T)
                expected[b, h] += (sim / sim.sum(-1, keepdim=True)) @ v[b, h]
    assert torch.allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("suffix", [".npy", ".pt", ".safetensors"])
def test_text_embeddings_from_files(tmp_path, suffix):
    emb = torch.randn(2, DIM)
    path = tmp_path / f"text{suffix}"
    if suffix == ".npy":
        np.save(path, emb.numpy())
    elif suffix == ".pt":
        torch.save({"text_embeddings": emb}, path)
    else:
        save_file({"text_embeddings": emb}, str(path))
    loaded = load_text_embeddings(path, DIM)
    assert torch.allclose(loaded, emb / emb.norm(dim=1, keepdim=True), atol=1e-6)
    model = create("crane_vit_b16", **TINY, text_embeddings=path)
    assert torch.allclose(model.text_embeddings, loaded)
    model.set_text_embeddings(-emb)  # e.g. after loading image-tower weights
    assert torch.allclose(model.text_embeddings, -loaded, atol=1e-6)


def test_bad_text_embeddings_fail_with_one_sentence(tmp_path):
    path = tmp_path / "text.npy"
    np.save(path, np.zeros((3, DIM), np.float32))
    with pytest.raises(InputError, match=r"must hold one tensor of shape \(2, 16\).*got \(3, 16\)"):
        load_text_embeddings(path, DIM)
    with pytest.raises(InputError, match="does not exist"):
        load_text_embeddings(tmp_path / "missing.npy", DIM)


def test_missing_text_embeddings_warn_and_are_deterministic():
    a, b = tiny().text_embeddings, tiny().text_embeddings
    assert torch.equal(a, b) and torch.equal(a, random_text_embeddings(DIM))
    assert torch.allclose(a.norm(dim=1), torch.ones(2))


def test_maps_and_scores_are_per_sample_probabilities():
    torch.manual_seed(0)
    model = tiny()
    x = torch.rand(3, 3, 64, 80)
    with torch.no_grad():
        amap, score = model(x)
        amap1, score1 = model(x[1:2])
        amap_other, _ = model(torch.cat([x[1:2], torch.zeros(2, 3, 64, 80)]))
    assert amap.shape == (3, 1, 64, 80) and score.shape == (3,)
    assert amap.min() >= 0 and amap.max() <= 1
    flat = amap.flatten(1)
    assert ((score >= flat.mean(1) - 1e-6) & (score <= flat.max(1).values + 1e-6)).all()
    assert torch.allclose(amap[1], amap1[0], atol=1e-6) and torch.allclose(score[1], score1[0], atol=1e-6)
    assert torch.allclose(amap_other[0], amap1[0], atol=1e-6)


def test_map_is_gaussian_smoothed_inside_the_model():
    from scipy.ndimage import gaussian_filter

    model = tiny()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        smooth, _ = model(x)
        model.smooth_kernel = torch.tensor([1.0])  # identity kernel: the map before smoothing
        sharp, _ = model(x)
    expected = gaussian_filter(sharp[0, 0].double().numpy(), sigma=4.0, mode="nearest", truncate=3.0)
    np.testing.assert_allclose(smooth[0, 0].numpy(), expected, atol=1e-5)
    assert np.abs(expected - sharp[0, 0].numpy()).max() > 1e-3


def test_patch_size_mismatch_is_refused():
    with pytest.raises(InputError, match="multiple of the patch size 16"):
        tiny()(torch.rand(1, 3, 70, 64))


def _export_and_check(model, name, size, tmp_path):
    cfg = get_config(name)
    path = tmp_path / f"{name}_{size[0]}.onnx"
    manifest = to_onnx(model, torch.rand(2, 3, *size), path, task=cfg.task, arch=name, dynamic="batch",
                       input_specs=cfg.input_specs(size, "batch"), output_specs=cfg.output_specs())
    assert [o.name for o in manifest.outputs] == ["anomaly_map", "score"]
    report = check_parity(model, path, torch.rand(3, 3, *size), atol=1e-4, rtol=0.0)
    assert report.passed, report.to_dict()
    assert [o.shape for o in report.outputs] == [[3, 1, *size], [3]]


def test_export_matches_pytorch_at_default_size(tmp_path):
    torch.manual_seed(0)
    _export_and_check(tiny(), "crane_vit_b16", (64, 64), tmp_path)


@pytest.mark.slow
def test_export_matches_pytorch_at_another_size(tmp_path):
    torch.manual_seed(0)
    _export_and_check(tiny(), "crane_vit_b16", (48, 80), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name, size, params", [
    ("crane_vit_b16", (224, 224), 86.19e6),  # OpenAI CLIP ViT-B/16 image tower
    ("crane_vit_l14_336", (336, 336), 304.29e6),  # OpenAI CLIP ViT-L/14@336 image tower
])
def test_full_size_models(name, size, params, tmp_path):
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="random"):
        model = create(name).eval()
    assert abs(sum(p.numel() for p in model.parameters()) - params) < 0.01e6
    _export_and_check(model, name, size, tmp_path)
