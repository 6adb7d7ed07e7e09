"""State dicts in the layout of the checkpoints SuperGlobal runs on: CVNet's ``CVNet_Rerank``.

Built from the module structure of sungonce/CVNet (``model/CVNet_Rerank_model.py``,
``model/resnet.py``, ``core/checkpoint.py``; commit ea8e5ce3) and ShihaoShao-GH/SuperGlobal (the same
files plus ``model/CVlearner.py`` and HSNet's ``model/base/conv4d.py``; commit 6db11a7c), whose README
says to run it on "CVNet pretrained weights" (``CVPR2022_CVNet_R50.pyth``):

    CVNet_Rerank(50, 2048): encoder_q = pycls ResNet, conv2ds = 3 x Conv2d(1024, 256, 3, bias=False),
                            cv_learner = CVLearner([9, 9, 9])
    pycls ResNet: stem.{conv 7x7 (64, 3), bn}; s1..s4 = ResStage(b1..bd) with (w_in, w_out, w_b, stride)
                  (64, 256, 64, 1), (256, 512, 128, 2), (512, 1024, 256, 2), (1024, 2048, 512, 2);
                  ResBlock: proj 1x1 + bn (when w_in != w_out or stride != 1, i.e. each b1),
                  f = bottleneck a 1x1 / a_bn / b 3x3 / b_bn / c 1x1 / c_bn (no conv biases);
                  head = GlobalHead: pool.p (learnable GeM exponent, shape (1,)) and fc Linear(2048, 2048)
                  (CVNet registers pool first; SuperGlobal fc first and adds seb1, seb2, sefc)
    CVLearner: block1..4 = Sequential(CenterPivotConv4d(conv1, conv2: Conv2d with bias), GroupNorm(4),
               ReLU) x (1, 2, 3, 3) with channels 9->16 | 16->16->32 | 32->32->32->64 | 64->64->64->128,
               kernel 5 | 3; mlp = Linear(128, 128), ReLU, Linear(128, 2)

CVNet's own loader (``core/checkpoint.py``) reads ``checkpoint["model_state"]`` and refuses a file
holding any key its CVNet_Rerank lacks, so the official file's keys are these (downstream projects load
``CVPR2022_CVNet_R50.pyth`` through it). This file reproduces names and shapes only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

R50_DEPTHS = (3, 4, 6, 3)

#: Reference numbers for CVNet_Rerank(50, 2048), counted by hand from the constructors above:
#: encoder_q = torchvision ResNet-50 without fc (25,557,032 - 2,049,000 = 23,508,032; both numbers are
#: torchvision's) + head.fc 4,196,352 + head.pool.p 1 = 27,704,385; conv2ds 3 x 2,359,296 = 7,077,888;
#: cv_learner 7,264 + 14,016 + 74,240 + 295,936 + 16,770 (mlp) = 408,226. Total 35,190,499 parameters.
#: Tensors: ResNet-50 has 53 convs and 53 BNs (5 tensors each, num_batches_tracked included) = 318,
#: + head 3 = 321 in encoder_q; conv2ds 3; cv_learner 9 Conv4d (1 + 2 + 3 + 3) x 4 + 9 GroupNorm x 2
#: + mlp 4 = 58. Total 321 + 3 + 58 = 382.
CVNET_R50_PARAMS = 35_190_499
CVNET_R50_TENSORS = 382
#: Of those, what SuperGlobal's global descriptor runs (encoder_q without head.pool.p).
GLOBAL_R50_PARAMS = 27_704_384
GLOBAL_R50_TENSORS = 320


def _bn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.{n}": (c,) for n in ("weight", "bias", "running_mean", "running_var")} | {
        f"{prefix}.num_batches_tracked": ()
    }


def pycls_resnet_shapes(depths: Sequence[int] = R50_DEPTHS, width: int = 64, reduction_dim: int = 2048,
                        superglobal: bool = False) -> dict[str, tuple[int, ...]]:
    """Name -> shape of CVNet's ``ResNet(depth, reduction_dim).state_dict()`` (``superglobal``:
    SuperGlobal's variant of the class, head in the other order plus the unused seb1/seb2/sefc).
    ``width`` (64 in both repositories) scales every layer, for reduced test models."""
    shapes = {"stem.conv.weight": (width, 3, 7, 7)} | _bn("stem.bn", width)
    w_in = width
    for stage, depth in enumerate(depths, start=1):
        w_b = width * 2 ** (stage - 1)
        w_out = 4 * w_b
        for j in range(1, depth + 1):
            b = f"s{stage}.b{j}"
            b_in = w_in if j == 1 else w_out
            if j == 1:  # w_in != w_out in every stage of this ResNet
                shapes |= {f"{b}.proj.weight": (w_out, b_in, 1, 1)} | _bn(f"{b}.bn", w_out)
            shapes |= {f"{b}.f.a.weight": (w_b, b_in, 1, 1)} | _bn(f"{b}.f.a_bn", w_b)
            shapes |= {f"{b}.f.b.weight": (w_b, w_b, 3, 3)} | _bn(f"{b}.f.b_bn", w_b)
            shapes |= {f"{b}.f.c.weight": (w_out, w_b, 1, 1)} | _bn(f"{b}.f.c_bn", w_out)
        w_in = w_out
    fc = {"head.fc.weight": (reduction_dim, w_in), "head.fc.bias": (reduction_dim,)}
    if not superglobal:
        return shapes | {"head.pool.p": (1,)} | fc
    c = w_in  # 2048
    return shapes | fc | {"head.pool.p": (1,)} | {
        "seb1.weight": (c // 4, c, 7, 7), "seb1.bias": (c // 4,),
        "seb2.weight": (c, c // 4, 7, 7), "seb2.bias": (c,),
        "sefc.weight": (1, c), "sefc.bias": (1,),
    }


def _conv4d(prefix: str, c_in: int, c_out: int, k: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.conv{i}.{n}": s for i in (1, 2)
            for n, s in (("weight", (c_out, c_in, k, k)), ("bias", (c_out,)))}


def cv_learner_shapes() -> dict[str, tuple[int, ...]]:
    """Name -> shape of ``CVLearner([9, 9, 9])`` (3 scales x 3 scales of correlation)."""
    blocks = {1: ((9, 16, 5),), 2: ((16, 16, 3), (16, 32, 3)),
              3: ((32, 32, 3), (32, 32, 3), (32, 64, 3)), 4: ((64, 64, 3), (64, 64, 3), (64, 128, 3))}
    shapes: dict[str, tuple[int, ...]] = {}
    for i, layers in blocks.items():
        for j, (c_in, c_out, k) in enumerate(layers):  # Conv4d, GroupNorm, ReLU per layer
            shapes |= _conv4d(f"cv_learner.block{i}.{3 * j}", c_in, c_out, k)
            shapes |= {f"cv_learner.block{i}.{3 * j + 1}.weight": (c_out,),
                       f"cv_learner.block{i}.{3 * j + 1}.bias": (c_out,)}
    return shapes | {"cv_learner.mlp.0.weight": (128, 128), "cv_learner.mlp.0.bias": (128,),
                     "cv_learner.mlp.2.weight": (2, 128), "cv_learner.mlp.2.bias": (2,)}


def cvnet_rerank_shapes(depths: Sequence[int] = R50_DEPTHS, width: int = 64, reduction_dim: int = 2048,
                        superglobal: bool = False) -> dict[str, tuple[int, ...]]:
    """Name -> shape of ``CVNet_Rerank(depth, reduction_dim).state_dict()``, i.e. of the
    ``model_state`` in CVNet's released files (``superglobal``: SuperGlobal's class instead)."""
    encoder = pycls_resnet_shapes(depths, width, reduction_dim, superglobal)
    shapes = {f"encoder_q.{k}": v for k, v in encoder.items()}
    shapes |= {f"conv2ds.{i}.weight": (256, 1024, 3, 3) for i in range(3)}
    return shapes | cv_learner_shapes()


def random_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random values, every tensor distinct; BN counters are distinct int64 scalars."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for i, (name, shape) in enumerate(shapes.items()):
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(1000 + i)
        else:
            state[name] = torch.randn(shape, generator=gen)
    return state


def parameter_count(shapes: dict[str, tuple[int, ...]]) -> int:
    """Learnable elements: BN running statistics and counters are buffers."""
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    return sum(math.prod(shape) for name, shape in shapes.items() if not name.endswith(buffers))
