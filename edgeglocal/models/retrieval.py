"""Image-retrieval heads over a ResNet-50: DOLG and SuperGlobal. Task "retrieve".

Both map an ImageNet-normalised RGB batch (b, 3, H, W) to one L2-normalised ``embedding`` (b, D)
per image, computed per sample (nothing depends on the rest of the batch), so a gallery can be
indexed with any batch size. Generalized-mean pooling runs in fp32 (see :mod:`edgeglocal.nn.pooling`).

Backbones use torchvision's names, so torchvision checkpoints load into ``backbone``. SuperGlobal
trains nothing of its own: its official code (ShihaoShao-GH/SuperGlobal) runs on CVNet's weights
(sungonce/CVNet, ``CVPR2022_CVNet_R50.pyth``), a pycls training file whose ``model_state`` holds the
global model under ``encoder_q.`` (pycls-named ResNet + ``head.fc`` whitening) next to CVNet's
reranker. So ``SuperGlobal.remap_checkpoint`` accepts that layout: it renames the global model and
drops what the descriptor never runs (:data:`CVNET_UNUSED`). DOLG has no such mapping: the official
DOLG is PaddlePaddle, and its PyTorch ports are built from other modules than this one.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgeglocal.models._registry import register_model
from edgeglocal.models.resnet import ResNet, pycls_to_torchvision_key
from edgeglocal.nn.pooling import GeM, GeMPlus, RegionalGeM, ScaleGeM

__all__ = ["CVNET_UNUSED", "DOLG", "MultiAtrous", "SuperGlobal", "dolg_r50", "orthogonal_fusion",
           "superglobal_r50"]

_RETRIEVE = dict(
    task="retrieve",
    input_size=(512, 512),
    hw_multiple=32,
    dynamic=("batch", "hw", "all"),
    outputs=(("embedding", "L2-normalised global descriptor; cosine similarity = dot product"),),
)


class MultiAtrous(nn.Module):
    """DOLG's local context: parallel dilated 3x3 convs plus an image-level branch, fused by 1x1s."""

    def __init__(self, in_ch: int, out_ch: int, dilations: Sequence[int] = (6, 12, 18)) -> None:
        super().__init__()
        branch_ch = out_ch // 4
        self.branches = nn.ModuleList(
            nn.Conv2d(in_ch, branch_ch, 3, padding=d, dilation=d) for d in dilations
        )
        self.image_branch = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_ch, branch_ch, 1), nn.ReLU())
        self.fuse = nn.Sequential(
            nn.Conv2d(branch_ch * (len(dilations) + 1), out_ch, 1), nn.ReLU(), nn.Conv2d(out_ch, out_ch, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [branch(x) for branch in self.branches]
        feats.append(self.image_branch(x).expand_as(feats[0]))
        return self.fuse(torch.cat(feats, dim=1))


class SpatialAttention(nn.Module):
    """DOLG's local attention: L2-normalised local features re-weighted by a softplus saliency map."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Conv2d(dim, dim, 1), nn.BatchNorm2d(dim), nn.ReLU(), nn.Conv2d(dim, 1, 1))
        self.norm = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.norm(x), dim=1) * F.softplus(self.score(x))


def orthogonal_fusion(local: torch.Tensor, global_: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """The component of each local vector orthogonal to the global one, averaged over positions.

    local (b, c, h, w), global_ (b, c) -> (b, c). Averaging commutes with the projection, but
    projecting per position keeps DOLG's definition explicit.
    """
    g = global_[:, :, None, None]
    coef = (local * g).sum(dim=1, keepdim=True) / (g.square().sum(dim=1, keepdim=True) + eps)
    return (local - coef * g).mean(dim=(-2, -1))


class DOLG(nn.Module):
    """DOLG (Yang et al., ICCV 2021): deep orthogonal fusion of local and global features.

    Global: GeM (p=3) of layer4 -> FC. Local: multi-atrous convs + spatial attention on layer3.
    Fusion: [global, mean(local orthogonal to global)] -> FC -> L2 norm.
    """

    def __init__(self, layers: Sequence[int] = (3, 4, 6, 3), width: int = 64, local_dim: int = 1024,
                 embed_dim: int = 512, dilations: Sequence[int] = (6, 12, 18)) -> None:
        super().__init__()
        self.backbone = ResNet(layers, width, num_classes=None)
        c3, c4 = self.backbone.stage_channels[2:]
        self.pool = GeM(p=3.0)
        self.global_fc = nn.Linear(c4, local_dim)
        self.local = nn.Sequential(MultiAtrous(c3, local_dim, dilations), SpatialAttention(local_dim))
        self.head = nn.Linear(2 * local_dim, embed_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _, _, f3, f4 = self.backbone.forward_stages(images)
        g = self.global_fc(self.pool(f4))
        orth = orthogonal_fusion(self.local(f3), g)
        return F.normalize(self.head(torch.cat([g, orth], dim=1)), dim=-1)


#: Prefixes of the global ResNet in CVNet / SuperGlobal files (``CVNet_Rerank.encoder_q``), in DELG-
#: pytorch-style ones (``globalmodel``, which SuperGlobal's ``extract_rop1m.py`` renames to
#: ``encoder_q``), or none for the ResNet saved on its own.
CVNET_PREFIXES = ("encoder_q.", "globalmodel.", "")
#: What a CVNet / SuperGlobal checkpoint holds that the SuperGlobal descriptor never runs. Beside the
#: global model: CVNet's correlation-verification reranker (scores image pairs, not images). Inside
#: it: the learnable GeM exponent ``head.pool.p``, which SuperGlobal replaces by GeM+ with a fixed p,
#: and ``seb1``/``seb2``/``sefc``, which SuperGlobal's ResNet builds but never calls.
CVNET_UNUSED = {
    "reranker": ("conv2ds.", "cv_learner."),
    "global model": ("head.pool.p", "seb1.", "seb2.", "sefc."),
}


def _cvnet_prefix(state: dict[str, torch.Tensor]) -> str | None:
    return next((p for p in CVNET_PREFIXES if f"{p}stem.conv.weight" in state), None)


class SuperGlobal(nn.Module):
    """SuperGlobal (Shao et al., ICCV 2023) global descriptor over a ResNet-50.

    Computed as the official code does, so that its checkpoints give its descriptors: ReLU+
    (clamp at ``relu_alpha``) after every block of layer1-3 and inside layer1's bottlenecks, plain
    ReLU in layer4; per scale, layer4 -> Regional-GeM -> GeM+ -> L2 norm -> whitening FC; scales
    merged by Scale-GeM (max of the L2-normalised descriptors). One difference: the result is
    L2-normalised once more (the official code leaves the max unnormalised), which changes no
    cosine ranking and makes inner-product search (FAISS IP) equal to cosine. The input is resized
    to every scale inside the graph (bilinear, no antialiasing, as the torchvision of the official
    code did for tensors), so one forward is the whole multi-scale extraction.
    """

    def __init__(self, layers: Sequence[int] = (3, 4, 6, 3), width: int = 64, embed_dim: int = 2048,
                 scales: Sequence[float] = (0.7071, 1.0, 1.4142), relu_alpha: float = 0.014,
                 regional_p: float = 2.5, regional_size: int = 5, gem_p: float = 4.6,
                 scale_p: float | None = None) -> None:
        super().__init__()
        self.scales = tuple(float(s) for s in scales)
        floors = ((relu_alpha, relu_alpha), (0.0, relu_alpha), (0.0, relu_alpha), (0.0, 0.0))
        self.backbone = ResNet(layers, width, num_classes=None, floors=floors)
        self.pool = nn.Sequential(RegionalGeM(regional_p, regional_size), GeMPlus(gem_p))
        self.whiten = nn.Linear(self.backbone.stage_channels[-1], embed_dim)
        self.merge = ScaleGeM(scale_p)

    def describe(self, images: torch.Tensor) -> torch.Tensor:
        """One scale: (b, 3, H, W) -> (b, D), whitened (Scale-GeM normalises it)."""
        return self.whiten(F.normalize(self.pool(self.backbone.forward_stages(images)[-1]), dim=-1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        descriptors = [  # resized to floor(size * s), sampled by the size ratio, as torchvision's resize
            self.describe(images if s == 1.0 else F.interpolate(
                images, scale_factor=s, mode="bilinear", align_corners=False, recompute_scale_factor=True))
            for s in self.scales
        ]
        return F.normalize(self.merge(descriptors), dim=-1)

    def remap_checkpoint(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rename a CVNet / SuperGlobal checkpoint (pycls ResNet, ``head.fc`` whitening) to this model's
        names and drop :data:`CVNET_UNUSED`; any other state dict is returned as it is."""
        prefix = _cvnet_prefix(state)
        if prefix is None:
            return state
        out: dict[str, torch.Tensor] = {}
        for key, value in state.items():
            if key.startswith(CVNET_UNUSED["reranker"]):
                continue
            if not key.startswith(prefix):  # not the global model's: left for the key report
                out[key] = value
                continue
            rest = key.removeprefix(prefix)
            if rest.startswith(CVNET_UNUSED["global model"]):
                continue
            if rest.startswith("head.fc."):  # Linear(2048, reduction dim), as ``whiten``
                out["whiten." + rest.removeprefix("head.fc.")] = value
            else:
                out["backbone." + pycls_to_torchvision_key(rest)] = value
        return out


@register_model(
    description="DOLG retrieval head (GeM global + multi-atrous local, orthogonal fusion) on ResNet-50", **_RETRIEVE
)
def dolg_r50(**kwargs) -> DOLG:
    return DOLG(**kwargs)


@register_model(
    description="SuperGlobal descriptor (ReLU+, Regional-GeM, GeM+, Scale-GeM) on ResNet-50", **_RETRIEVE
)
def superglobal_r50(**kwargs) -> SuperGlobal:
    return SuperGlobal(**kwargs)
