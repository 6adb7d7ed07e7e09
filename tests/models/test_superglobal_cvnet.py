"""SuperGlobal loads the CVNet / SuperGlobal checkpoint layout (pycls ResNet) as well as torchvision's."""

from __future__ import annotations

import pytest
import torch
from state_origin import assert_own_layout_loads_unchanged, tensor_origins
from superglobal_layout import (
    CVNET_R50_PARAMS,
    CVNET_R50_TENSORS,
    GLOBAL_R50_PARAMS,
    GLOBAL_R50_TENSORS,
    cvnet_rerank_shapes,
    parameter_count,
    pycls_resnet_shapes,
    random_state,
)

from edgeglocal.models import create, load_checkpoint
from edgeglocal.models.checkpoint import CheckpointMismatch

#: A reduced SuperGlobal and the matching reduced CVNet layout.
SMALL = {"layers": (1, 1, 1, 1), "width": 8, "embed_dim": 16}
SMALL_CVNET = {"depths": (1, 1, 1, 1), "width": 8, "reduction_dim": 16}


def _cvnet_file(path, model_state: dict[str, torch.Tensor]) -> None:
    """As pycls' ``save_checkpoint`` writes it (plain types only, so weights_only reads it)."""
    optimizer = {"state": {}, "param_groups": [{"lr": 0.01, "momentum": 0.9, "params": [0, 1]}]}
    torch.save({"epoch": 25, "model_state": model_state, "optimizer_state": optimizer,
                "cfg": "MODEL:\n  DEPTH: 50\n"}, path)


def _assert_one_sentence(message: str) -> None:
    assert message.endswith(".") and "\n" not in message and message.replace("e.g. ", "").count(". ") == 0


def test_generated_layout_has_the_reference_counts_of_cvnet_r50():
    shapes = cvnet_rerank_shapes()
    assert len(shapes) == CVNET_R50_TENSORS and parameter_count(shapes) == CVNET_R50_PARAMS
    used = {k: v for k, v in shapes.items() if k.startswith("encoder_q.") and k != "encoder_q.head.pool.p"}
    assert len(used) == GLOBAL_R50_TENSORS and parameter_count(used) == GLOBAL_R50_PARAMS
    model = create("superglobal_r50")
    assert len(model.state_dict()) == GLOBAL_R50_TENSORS
    assert sum(p.numel() for p in model.parameters()) == GLOBAL_R50_PARAMS
    superglobal = cvnet_rerank_shapes(superglobal=True)  # SuperGlobal's class: + seb1, seb2, sefc
    assert len(superglobal) == CVNET_R50_TENSORS + 6 and set(shapes) < set(superglobal)


def test_official_cvnet_r50_file_puts_every_tensor_in_its_place(tmp_path):
    official = random_state(cvnet_rerank_shapes())
    path = tmp_path / "CVPR2022_CVNet_R50.pyth"
    _cvnet_file(path, official)
    model = create("superglobal_r50")
    report = load_checkpoint(model, path, arch="superglobal_r50")
    assert report.ok and report.loaded == GLOBAL_R50_TENSORS and not report.resized
    origin = tensor_origins(model, official)
    assert len(set(origin.values())) == len(origin)  # each official tensor used at most once
    dropped = set(official) - set(origin.values())
    assert dropped == {k for k in official if k.startswith(("conv2ds.", "cv_learner."))} | {"encoder_q.head.pool.p"}
    expected = {
        "backbone.conv1.weight": "encoder_q.stem.conv.weight",
        "backbone.bn1.weight": "encoder_q.stem.bn.weight",
        "backbone.bn1.running_mean": "encoder_q.stem.bn.running_mean",
        "backbone.bn1.num_batches_tracked": "encoder_q.stem.bn.num_batches_tracked",
        "backbone.layer1.0.downsample.0.weight": "encoder_q.s1.b1.proj.weight",
        "backbone.layer3.0.downsample.1.running_var": "encoder_q.s3.b1.bn.running_var",
        "backbone.layer4.0.downsample.1.bias": "encoder_q.s4.b1.bn.bias",
        "backbone.layer1.2.conv1.weight": "encoder_q.s1.b3.f.a.weight",
        "backbone.layer2.3.conv2.weight": "encoder_q.s2.b4.f.b.weight",
        "backbone.layer3.5.conv3.weight": "encoder_q.s3.b6.f.c.weight",
        "backbone.layer2.0.bn2.running_mean": "encoder_q.s2.b1.f.b_bn.running_mean",
        "backbone.layer4.2.bn3.running_var": "encoder_q.s4.b3.f.c_bn.running_var",
        "backbone.layer4.2.bn1.weight": "encoder_q.s4.b3.f.a_bn.weight",
        "whiten.weight": "encoder_q.head.fc.weight",
        "whiten.bias": "encoder_q.head.fc.bias",
    }
    assert {k: origin[k] for k in expected} == expected
    assert model.backbone.layer2[0].conv2.stride == (2, 2)  # pycls' STRIDE_1X1=False: same v1.5 ResNet
    assert torch.equal(model.whiten.weight, official["encoder_q.head.fc.weight"])  # (out, in): no transpose
    assert torch.equal(model.backbone.layer3[0].downsample[1].running_mean,
                       official["encoder_q.s3.b1.bn.running_mean"])


def _superglobal_state_dict() -> dict[str, torch.Tensor]:
    """SuperGlobal's own CVNet_Rerank (head fc first, + unused seb1/seb2/sefc), saved bare."""
    return random_state(cvnet_rerank_shapes(**SMALL_CVNET, superglobal=True))


def _prefixed(prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in random_state(pycls_resnet_shapes(**SMALL_CVNET)).items()}


@pytest.mark.parametrize("make, wrap", [
    (_superglobal_state_dict, lambda sd: sd),
    (lambda: _prefixed(""), lambda sd: sd),  # the encoder saved on its own
    (lambda: _prefixed("globalmodel."), lambda sd: {"model_state": sd}),  # DELG-pytorch's prefix
    (lambda: random_state(cvnet_rerank_shapes(**SMALL_CVNET)),  # DataParallel names
     lambda sd: {"model_state": {f"module.{k}": v for k, v in sd.items()}}),
], ids=["superglobal_class", "bare_encoder", "globalmodel_prefix", "data_parallel"])
def test_other_cvnet_layout_variants_load(tmp_path, make, wrap):
    state = make()
    path = tmp_path / "weights.pth"
    torch.save(wrap(state), path)
    model = create("superglobal_r50", **SMALL)
    report = load_checkpoint(model, path, arch="superglobal_r50")
    assert report.ok and report.loaded == len(model.state_dict())
    origin = tensor_origins(model, state)
    prefix = next(k for k in state if k.endswith("stem.conv.weight")).removesuffix("stem.conv.weight")
    assert origin["backbone.layer1.0.downsample.0.weight"] == f"{prefix}s1.b1.proj.weight"
    assert origin["backbone.layer4.0.bn3.running_var"] == f"{prefix}s4.b1.f.c_bn.running_var"
    assert origin["whiten.weight"] == f"{prefix}head.fc.weight"


def test_torchvision_layout_still_loads_unchanged():
    assert_own_layout_loads_unchanged(lambda: create("superglobal_r50", **SMALL), "superglobal_r50")


def test_other_architectures_still_fail_with_one_sentence():
    deeper = random_state(cvnet_rerank_shapes(**{**SMALL_CVNET, "depths": (1, 1, 3, 1)}))  # as R50 vs R101
    with pytest.raises(CheckpointMismatch) as info:
        load_checkpoint(create("superglobal_r50", **SMALL), deeper, arch="superglobal_r50")
    message = str(info.value)  # 2 extra blocks x (3 convs + 3 BNs x 4 tensors; BN counters are not counted)
    assert message == ("Checkpoint state dict does not match architecture superglobal_r50: 30 unexpected keys, "
                       "e.g. backbone.layer3.1.conv1.weight is unexpected.")
    wider = random_state(cvnet_rerank_shapes(**{**SMALL_CVNET, "reduction_dim": 32}))
    with pytest.raises(CheckpointMismatch, match=r": 2 shape-mismatched keys, e\.g\. whiten\.weight is \(32, 256\) "
                       r"in the checkpoint but \(16, 256\) in the model\.$"):
        load_checkpoint(create("superglobal_r50", **SMALL), wider, arch="superglobal_r50")
    with pytest.raises(CheckpointMismatch) as info:  # DOLG has no CVNet mapping
        load_checkpoint(create("dolg_r50"), random_state(cvnet_rerank_shapes()), arch="dolg_r50")
    message = str(info.value)
    assert message.startswith("Checkpoint state dict does not match architecture dolg_r50: ")
    assert "missing" in message and "unexpected" in message
    _assert_one_sentence(message)
    dolg = create("dolg_r50", layers=(1, 1, 1, 1), width=8, local_dim=32, embed_dim=16).state_dict()
    with pytest.raises(CheckpointMismatch) as info:
        load_checkpoint(create("superglobal_r50", **SMALL), dolg, arch="superglobal_r50")
    message = str(info.value)
    assert message.startswith("Checkpoint state dict does not match architecture superglobal_r50: ")
    assert ": 2 missing, " in message and message.endswith("keys, e.g. whiten.weight is missing.")
    _assert_one_sentence(message)


def _plausible_weights(shapes: dict[str, tuple[int, ...]], seed: int = 1) -> dict[str, torch.Tensor]:
    """Random weights at trained-network scale (He-scaled convs, positive BN variances), so that
    activations neither vanish nor explode through 16 blocks."""
    state = random_state(shapes, seed)
    for name, value in state.items():
        if value.ndim == 4:
            state[name] = value * (2.0 / value[0].numel()) ** 0.5
        elif name.endswith("running_var"):
            state[name] = value.abs() + 0.5
        elif name.endswith("_bn.weight") or name.endswith(".bn.weight"):
            state[name] = 1.0 + 0.1 * value
        elif name.endswith(("running_mean", "bias")) or name.startswith("head.fc.weight"):
            state[name] = 0.1 * value
    return state


def _official_descriptor(sd: dict[str, torch.Tensor], image: torch.Tensor, depths=(3, 4, 6, 3),
                         alpha: float = 0.014) -> torch.Tensor:
    """SuperGlobal's global descriptor at one scale, written from its code's semantics on the official
    (pycls) names: ReLU+ inside stage 1 (w_out == 256) and after every block whose w_out != 2048;
    Regional-GeM as LPPool over reflection padding; GeM+ p=4.6; L2 norm before ``head.fc``."""
    F = torch.nn.functional

    def conv(x, name, stride=1, padding=0):
        return F.conv2d(x, sd[f"{name}.weight"], stride=stride, padding=padding)

    def bn(x, name):
        return F.batch_norm(x, sd[f"{name}.running_mean"], sd[f"{name}.running_var"], sd[f"{name}.weight"],
                            sd[f"{name}.bias"], False, 0.0, 1e-5)

    x = F.max_pool2d(F.relu(bn(conv(image, "stem.conv", 2, 3), "stem.bn")), 3, 2, 1)
    for s, depth in enumerate(depths, start=1):
        w_out = 256 * 2 ** (s - 1)
        for b in range(1, depth + 1):
            p, stride = f"s{s}.b{b}", 2 if b == 1 and s > 1 else 1
            inner = alpha if w_out == 256 else 0.0
            f = bn(conv(x, f"{p}.f.a"), f"{p}.f.a_bn").clamp(min=inner)
            f = bn(conv(f, f"{p}.f.b", stride, 1), f"{p}.f.b_bn").clamp(min=inner)
            f = bn(conv(f, f"{p}.f.c"), f"{p}.f.c_bn")
            shortcut = bn(conv(x, f"{p}.proj", stride), f"{p}.bn") if f"{p}.proj.weight" in sd else x
            x = (shortcut + f).clamp(min=alpha if w_out != 2048 else 0.0)
    x = 0.5 * F.lp_pool2d(F.pad(x / 25 ** (1 / 2.5), (2, 2, 2, 2), mode="reflect"), 2.5, 5, stride=1) + 0.5 * x
    x = x.flatten(2).clamp(min=1e-8).pow(4.6).mean(-1).pow(1 / 4.6)
    return F.linear(F.normalize(x, dim=-1), sd["head.fc.weight"], sd["head.fc.bias"])


def test_official_weights_give_the_official_descriptor():
    """Not just names: with the official file's weights, superglobal_r50 computes what SuperGlobal's
    code computes (up to the final L2 norm it adds): ReLU+ placement, pooling, and the three scales
    (torchvision-style resize to int(size * s), then Scale-GeM = max of L2-normalised descriptors)."""
    F = torch.nn.functional
    official = _plausible_weights(pycls_resnet_shapes())
    model = create("superglobal_r50").eval()
    load_checkpoint(model, {f"encoder_q.{k}": v for k, v in official.items()}, arch="superglobal_r50")
    image = torch.rand(2, 3, 97, 131, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = model(image)
        scales = [F.interpolate(image, size=(int(97 * s), int(131 * s)), mode="bilinear", align_corners=False)
                  for s in (0.7071, 1.0, 1.4142)]
        per_scale = torch.stack([_official_descriptor(official, x) for x in scales])
        want = F.normalize(F.normalize(per_scale, dim=-1).amax(0), dim=-1)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    assert (got - want).abs().max() < 0.01 * (want - want.roll(1, 0)).abs().max()  # the images differ far more
