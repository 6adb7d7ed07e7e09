"""ResNet (bottleneck) with torchvision's parameter names, without importing torchvision.

torchvision is not importable on every target, but its ImageNet checkpoints are the usual starting
point for retrieval heads; keeping the names (``conv1``, ``bn1``, ``layer1.0.downsample.0``, ...,
``fc``) lets those state dicts load strictly.

Retrieval research code (CVNet, SuperGlobal, feymanpriv's DELG and DOLG in PyTorch) builds the same
network with facebookresearch/pycls' names instead: ``stem.{conv,bn}``, ``s{1-4}.b{1..}.{proj,bn}`` (shortcut) and
``.f.{a,b,c}[_bn]`` (bottleneck), same shapes, stride on the 3x3 and BN eps 1e-5 as here.
``pycls_to_torchvision_key`` renames those, so their checkpoints need no second ResNet class.
"""

from __future__ import annotations

import re
from typing import Sequence

import torch
from torch import nn

__all__ = ["Bottleneck", "ResNet", "pycls_to_torchvision_key", "resnet50"]


def _relu(x: torch.Tensor, floor: float) -> torch.Tensor:
    """ReLU, or SuperGlobal's ReLU+ (clamp at a small positive ``floor``) when ``floor`` > 0."""
    return torch.relu(x) if floor == 0.0 else x.clamp(min=floor)


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: the stride sits on the 3x3 conv.

    ``floors`` = (inner, output): the clamp of the two inner activations and of the block output
    (0 = plain ReLU; parameter-free, so checkpoints are unaffected).
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None, floors: tuple[float, float] = (0.0, 0.0)) -> None:
        super().__init__()
        self.floors = floors
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inner, output = self.floors
        identity = x if self.downsample is None else self.downsample(x)
        out = _relu(self.bn1(self.conv1(x)), inner)
        out = _relu(self.bn2(self.conv2(out)), inner)
        out = self.bn3(self.conv3(out))
        return _relu(out + identity, output)


class ResNet(nn.Module):
    """Bottleneck ResNet; ``forward_stages`` returns the outputs of layer1..layer4.

    ``dilate_last``: replace layer4's stride with dilation (output stride 16), as retrieval and
    dense heads often do. ``num_classes=None`` drops ``fc`` (backbone use). ``floors``: per stage,
    the (inner, output) activation floors of its bottlenecks (see :class:`Bottleneck`).
    """

    def __init__(self, layers: Sequence[int] = (3, 4, 6, 3), width: int = 64,
                 num_classes: int | None = 1000, dilate_last: bool = False,
                 floors: Sequence[tuple[float, float]] = ((0.0, 0.0),) * 4) -> None:
        super().__init__()
        self.inplanes, self.dilation = width, 1
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(width, layers[0], floors=floors[0])
        self.layer2 = self._make_layer(width * 2, layers[1], stride=2, floors=floors[1])
        self.layer3 = self._make_layer(width * 4, layers[2], stride=2, floors=floors[2])
        self.layer4 = self._make_layer(width * 8, layers[3], stride=2, dilate=dilate_last, floors=floors[3])
        self.stage_channels = tuple(width * m * Bottleneck.expansion for m in (1, 2, 4, 8))
        if num_classes is not None:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(self.stage_channels[-1], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, planes: int, blocks: int, stride: int = 1, dilate: bool = False,
                    floors: tuple[float, float] = (0.0, 0.0)) -> nn.Sequential:
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * Bottleneck.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * Bottleneck.expansion),
            )
        layers = [Bottleneck(self.inplanes, planes, stride, previous_dilation, downsample, floors)]
        self.inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self.inplanes, planes, dilation=self.dilation, floors=floors) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        stages = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            stages.append(x)
        return stages

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not hasattr(self, "fc"):
            raise RuntimeError("this ResNet was built without a classifier (num_classes=None); "
                               "use forward_stages")
        return self.fc(self.avgpool(self.forward_stages(x)[-1]).flatten(1))


def resnet50(**kwargs) -> ResNet:
    """ResNet-50 (torchvision layout: 3-4-6-3 bottlenecks, width 64)."""
    return ResNet((3, 4, 6, 3), **kwargs)


_PYCLS_STEM = {"stem.conv.": "conv1.", "stem.bn.": "bn1."}
_PYCLS_BLOCK = re.compile(r"s([1-4])\.b(\d+)\.(.+)")
# Inside a pycls ResBlock: the projection shortcut, then the bottleneck transform ``f``.
_PYCLS_PARTS = {
    "proj.": "downsample.0.", "bn.": "downsample.1.",
    "f.a.": "conv1.", "f.a_bn.": "bn1.", "f.b.": "conv2.", "f.b_bn.": "bn2.", "f.c.": "conv3.", "f.c_bn.": "bn3.",
}


def pycls_to_torchvision_key(key: str) -> str:
    """The torchvision name of a pycls-style ResNet parameter (``s2.b1.f.b_bn.weight`` ->
    ``layer2.0.bn2.weight``); other names come back unchanged, so a strict key report shows them."""
    for old, new in _PYCLS_STEM.items():
        if key.startswith(old):
            return new + key.removeprefix(old)
    block = _PYCLS_BLOCK.fullmatch(key)
    if block is None:
        return key
    stage, index, rest = block[1], int(block[2]) - 1, block[3]
    for old, new in _PYCLS_PARTS.items():
        if rest.startswith(old):
            return f"layer{stage}.{index}.{new}{rest.removeprefix(old)}"
    return key
