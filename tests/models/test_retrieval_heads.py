"""ResNet-50 (torchvision names), GeM family, DOLG and SuperGlobal retrieval heads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgeglocal.export import check_parity, to_onnx
from edgeglocal.models import create, get_config, load_checkpoint
from edgeglocal.models.resnet import resnet50
from edgeglocal.models.retrieval import orthogonal_fusion
from edgeglocal.nn.pooling import GeM, GeMPlus, RegionalGeM, ScaleGeM, gem

REDUCED = {
    "dolg_r50": dict(layers=(1, 1, 1, 1), width=8, local_dim=32, embed_dim=16),
    "superglobal_r50": dict(layers=(1, 1, 1, 1), width=8, embed_dim=16),
}


def torchvision_resnet50_keys() -> dict[str, tuple[int, ...]]:
    """torchvision's resnet50 state-dict names and shapes, written from its naming convention."""
    keys: dict[str, tuple[int, ...]] = {}

    def bn(prefix: str, c: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            keys[f"{prefix}.{name}"] = (c,)
        keys[f"{prefix}.num_batches_tracked"] = ()

    keys["conv1.weight"] = (64, 3, 7, 7)
    bn("bn1", 64)
    inplanes = 64
    for stage, (blocks, planes) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512)), start=1):
        for i in range(blocks):
            p = f"layer{stage}.{i}"
            keys[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
            bn(f"{p}.bn1", planes)
            keys[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            bn(f"{p}.bn2", planes)
            keys[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
            bn(f"{p}.bn3", planes * 4)
            if i == 0:
                keys[f"{p}.downsample.0.weight"] = (planes * 4, inplanes, 1, 1)
                bn(f"{p}.downsample.1", planes * 4)
            inplanes = planes * 4
    keys["fc.weight"] = (1000, 2048)
    keys["fc.bias"] = (1000,)
    return keys


def test_resnet50_matches_torchvision_names_shapes_and_size():
    model = resnet50()
    state = model.state_dict()
    expected = torchvision_resnet50_keys()
    assert len(state) == 320
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    assert sum(p.numel() for p in model.parameters()) == 25_557_032  # torchvision's published count
    # v1.5: the stride of a downsampling bottleneck sits on its 3x3 conv, not on the first 1x1.
    assert model.layer2[0].conv2.stride == (2, 2) and model.layer2[0].conv1.stride == (1, 1)
    strides = [s.shape[-1] for s in resnet50(num_classes=None).forward_stages(torch.rand(1, 3, 64, 64))]
    assert strides == [16, 8, 4, 2]


def test_torchvision_checkpoint_loads_into_retrieval_backbone(tmp_path):
    """A torchvision-layout file (with fc) loads strictly into the backbone once fc is dropped."""
    source = resnet50()
    path = tmp_path / "resnet50.pth"
    torch.save(source.state_dict(), path)
    backbone = resnet50(num_classes=None)
    state = {k: v for k, v in torch.load(path, weights_only=True).items() if not k.startswith("fc.")}
    report = load_checkpoint(backbone, state, strict=True)
    assert report.ok and report.loaded == len(state)
    assert torch.equal(backbone.layer4[2].conv3.weight, source.layer4[2].conv3.weight)


def test_gem_matches_its_definition_and_exponent_limits():
    x = torch.rand(2, 5, 7, 9) + 0.1
    assert torch.allclose(GeM(p=1.0)(x), x.mean(dim=(-2, -1)), atol=1e-6)
    # p grows from mean pooling (p=1) towards max pooling (p -> inf).
    mean, g3, g8, peak = x.mean(dim=(-2, -1)), gem(x, 3.0), gem(x, 8.0), x.amax(dim=(-2, -1))
    assert bool((mean < g3).all() and (g3 < g8).all() and (g8 <= peak).all())
    ref = (x.double() ** 3).mean(dim=(-2, -1)) ** (1 / 3)
    assert torch.allclose(GeM()(x).double(), ref, atol=1e-6)


@pytest.mark.parametrize("pool, scale", [(GeM(p=3.0), 100.0), (GeMPlus(), 20.0)])
def test_gem_is_fp16_safe_on_large_activations(pool, scale):
    x32 = torch.rand(2, 8, 6, 6) * scale + scale / 2
    x16 = x32.half()
    p = float(pool.p.detach())
    naive = x16.pow(p).mean(dim=(-2, -1))
    assert not torch.isfinite(naive).all(), "the activations must overflow a naive fp16 power"
    out = pool.half()(x16)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    assert torch.allclose(out.float(), pool.float()(x32), rtol=2e-3)


def test_regional_gem_is_a_local_generalised_mean():
    x = torch.rand(1, 2, 6, 7)
    out = RegionalGeM(p=2.5, size=5)(x)
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (2, 2), (2, 2)), mode="reflect")
    i, j = 3, 1
    local = (padded[0, :, i:i + 5, j:j + 5] ** 2.5).mean(axis=(1, 2)) ** (1 / 2.5)
    np.testing.assert_allclose(out[0, :, i, j].numpy(), 0.5 * local + 0.5 * x[0, :, i, j].numpy(), rtol=1e-5)


def test_scale_gem_limit_is_max_of_normalised_descriptors():
    descriptors = [torch.randn(3, 16) for _ in range(3)]
    merged = ScaleGeM()(descriptors)
    assert torch.allclose(merged, torch.stack([F.normalize(d, dim=-1) for d in descriptors]).amax(0))
    finite = ScaleGeM(p=10.0)(descriptors)
    for s in range(3):  # per-sample shift: each sample is independent of the others
        assert torch.allclose(finite[s], ScaleGeM(p=10.0)([d[s:s + 1] for d in descriptors])[0], atol=1e-5)


def test_orthogonal_fusion_removes_the_global_direction():
    local, g = torch.randn(2, 8, 5, 5), torch.randn(2, 8)
    orth = orthogonal_fusion(local, g)
    assert torch.allclose((orth * g).sum(dim=1), torch.zeros(2), atol=1e-5)
    parallel = g[:, :, None, None] * torch.rand(2, 1, 5, 5)  # purely global local features vanish
    assert orthogonal_fusion(parallel, g).abs().max() < 1e-5


@pytest.mark.parametrize("name", sorted(REDUCED))
def test_embeddings_are_unit_norm_and_per_sample(name):
    torch.manual_seed(0)
    model = create(name, **REDUCED[name]).eval()
    x = torch.rand(3, 3, 96, 128)
    with torch.no_grad():
        batch = model(x)
        single = model(x[1:2])
    assert batch.shape == (3, 16)
    assert torch.allclose(batch.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(batch[1], single[0], atol=1e-5)
    assert not torch.allclose(batch[0], batch[1], atol=1e-3)


# SuperGlobal's in-graph multi-scale resizes make its dynamic export several times slower.
@pytest.mark.parametrize("name", ["dolg_r50", pytest.param("superglobal_r50", marks=pytest.mark.slow)])
def test_export_matches_pytorch_at_two_sizes(name, tmp_path):
    torch.manual_seed(0)
    cfg = get_config(name)
    model = create(name, **REDUCED[name]).eval()
    path = tmp_path / f"{name}.onnx"
    h, w = 128, 128  # the registry's 512 x 512, scaled down with the reduced width
    manifest = to_onnx(model, torch.rand(2, 3, h, w), path, task=cfg.task, arch=name, dynamic="all",
                       input_specs=cfg.input_specs((h, w), "all"), output_specs=cfg.output_specs())
    assert manifest.task == "retrieve" and manifest.outputs[0].name == "embedding"
    for size in ((h, w), (96, 160)):
        report = check_parity(model, path, torch.rand(3, 3, *size), atol=1e-4, rtol=0.0)
        assert report.passed, report.to_dict()
        assert report.outputs[0].shape == [3, 16]


def test_default_sizes():
    dolg = create("dolg_r50")
    assert dolg.head.out_features == 512
    assert 35e6 < sum(p.numel() for p in dolg.parameters()) < 40e6
    assert create("superglobal_r50").whiten.out_features == 2048
